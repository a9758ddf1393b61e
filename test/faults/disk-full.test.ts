import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { enrollAgent, sh, type RunningAppliance } from '../lib/cli.js';
import { attach, detach } from '../lib/disk-image.js';
import { backup, catalogIntegrity, faultSeed, kill9, MIB, repoint, restoreEqual, Rng, startFaulty, verifyClean } from './lib.js';

/*
 * The appliance's data directory on a small ext4 file system (a 64 MiB image on a loop device, mounted by the
 * test): a backup larger than the free space stops with APPLIANCE_DISK_FULL, nothing committed is harmed, and
 * after the data disk is grown (appliance stopped, image enlarged, e2fsck + resize2fs, started again) the same
 * cycle resumes and completes. docs/reliability.md, "Disk full".
 */

const FS_MIB = 64;
const GROWN_MIB = 192;
const IMAGE_MIB = 96;
const FIRST_MIB = 16;

describe('disk full: the appliance runs out of space mid-cycle', { timeout: 10 * 60_000 }, () => {
  const seed = faultSeed('disk-full');
  const rng = new Rng(seed);
  let work: string;
  let fsImage: string;
  let mnt: string;
  let dev: string | undefined;
  let mounted = false;
  let appliance: RunningAppliance | undefined;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-diskfull-'));
    fsImage = path.join(work, 'data-fs.img');
    mnt = path.join(work, 'mnt');
    await mkdir(mnt);
    await sh('truncate', ['-s', `${FS_MIB}M`, fsImage]);
    // No reserved blocks: the appliance runs as root here and would otherwise get 5 % more than an operator's would.
    await sh('mkfs.ext4', ['-q', '-F', '-m', '0', fsImage]);
    dev = await attach(fsImage);
    await sh('mount', [dev, mnt]);
    mounted = true;
  });

  after(async () => {
    if (appliance) await kill9(appliance);
    if (mounted) await sh('umount', [mnt]).catch(() => sh('umount', ['-l', mnt]));
    if (dev) await detach(dev);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a backup larger than the free space stops with APPLIANCE_DISK_FULL, committed points stay intact, the cycle resumes after growing', async () => {
    const dataDir = path.join(mnt, 'appliance');
    const state = path.join(work, 'agent');
    const image = path.join(work, 'source.img');
    // Point 1: FIRST_MIB of data, the rest zeros (nothing stored for them).
    await sh('truncate', ['-s', `${IMAGE_MIB}M`, image]);
    const fh = await open(image, 'r+');
    await fh.write(rng.bytes(FIRST_MIB * MIB), 0, FIRST_MIB * MIB, 0);
    await fh.close();
    const v1 = path.join(work, 'v1.img');
    await copyFile(image, v1);

    appliance = await startFaulty(dataDir);
    await enrollAgent(appliance, state, 'disk-full');
    const first = await backup(state, image);
    assert.equal(first.code, 0, first.stderr);

    // Now every block holds new incompressible data: far more than the file system has left.
    await writeFile(image, rng.bytes(IMAGE_MIB * MIB));
    const full = await backup(state, image);
    process.stdout.write(`# the backup on a full disk: ${full.stderr.trim().split('\n').slice(-3).join(' | ')}\n`);
    assert.notEqual(full.code, 0, 'the backup fails');
    assert.match(full.stderr, /APPLIANCE_DISK_FULL/);
    assert.match(full.stderr, /full/);
    assert.match(full.stderr, /grow the data disk/, 'the hint says what to do');
    assert.equal(appliance.process.exitCode, null, 'the appliance keeps running');
    const df = (await sh('df', ['-k', '--output=avail', mnt])).trim().split('\n').pop();
    process.stdout.write(`# free on the data file system after the failure: ${df} KiB\n`);

    // Nothing committed is harmed.
    await catalogIntegrity(dataDir);
    await verifyClean(dataDir);
    await restoreEqual(appliance, first.pointId!, v1, work);

    // The operator stops the appliance, grows the data disk and its file system, and starts it again (online
    // resize2fs is refused in this container), then runs the backup again: the same cycle continues.
    await appliance.stop();
    await sh('umount', [mnt]);
    mounted = false;
    await sh('truncate', ['-s', `${GROWN_MIB}M`, fsImage]);
    await sh('losetup', ['-c', dev!]);
    await sh('e2fsck', ['-f', '-y', dev!]);
    await sh('resize2fs', [dev!]);
    await sh('mount', [dev!, mnt]);
    mounted = true;
    appliance = await startFaulty(dataDir);
    await repoint(state, appliance.url);
    const again = await backup(state, image);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming cycle/, 'the interrupted cycle resumed');
    assert.ok(again.bytesSent! < IMAGE_MIB * MIB, `only the unacknowledged part was sent (${again.bytesSent} bytes)`);
    await catalogIntegrity(dataDir);
    await verifyClean(dataDir);
    await restoreEqual(appliance, first.pointId!, v1, work);
    await restoreEqual(appliance, again.pointId!, image, work);
    process.stdout.write(`# resumed after growing: sent ${(again.bytesSent! / MIB).toFixed(1)} MiB of ${IMAGE_MIB}\n`);
    await appliance.stop();
  });
});
