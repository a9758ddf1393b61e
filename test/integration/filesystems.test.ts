import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { decompressInto, initHashing } from '@ferry/protocol';
import { openStores } from '@ferry/appliance/testing';
import { enrollAgent, ferryOk, sh, startAppliance, TEST_PASSPHRASE, type RunningAppliance } from '../lib/cli.js';
import { textBlob, type BackupJson } from '../lib/fixture-data.js';
import { attach, detach, treeChecksums } from '../lib/disk-image.js';

/*
 * More of the disk, on real things: XFS made by mkfs.xfs, an LVM physical volume made by pvcreate/vgcreate/
 * lvcreate, an ext4 with an excluded directory; backed up by the agent CLI, restored by the restore CLI,
 * compared file by file. This kernel has no device-mapper, so logical volumes are never activated: the test
 * reaches a (linear) volume through a loop device over the extents LVM reports for it, which is exactly
 * where its bytes are; lvm is told to see only the test's own loop devices.
 */

const MIB = 1024 * 1024;
const SMALL_XFS = ['TEST_DIR=1', 'TEST_DEV=1', 'QA_CHECK_FS=1'];

/** mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests. */
function mkfsXfs(dev: string): Promise<string> {
  return sh('env', [...SMALL_XFS, 'mkfs.xfs', '-q', '-f', dev]);
}

/** Mounts `dev` (rw, or ro without log replay), runs fn, unmounts. */
async function mounted<T>(dev: string, fsType: 'ext4' | 'xfs', readOnly: boolean, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-fs-'));
  const ro = fsType === 'xfs' ? 'ro,norecovery' : 'ro,noload';
  try {
    await sh('mount', ['-t', fsType, ...(readOnly ? ['-o', ro] : []), dev, dir]);
    try {
      return await fn(dir);
    } finally {
      await sh('umount', [dir]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A few MiB of text in many files and random data in a few: what both filesystem kinds hold. */
async function fill(dir: string, seed: number): Promise<void> {
  await mkdir(path.join(dir, 'etc', 'app'), { recursive: true });
  for (let i = 0; i < 60; i++) await writeFile(path.join(dir, 'etc', 'app', `conf-${i}.txt`), textBlob(seed + i, 20_000 + i * 311));
  await mkdir(path.join(dir, 'data'));
  for (let i = 0; i < 4; i++) await writeFile(path.join(dir, 'data', `blob-${i}.bin`), randomBytes(6 * MIB + i * 4096));
  await sh('sync', []);
}

function gpt(image: string, sizeMiB: number, parts: { sizeMiB: number; type: string }[]): Promise<string> {
  const args = ['-o'];
  parts.forEach((p, i) => args.push('-n', `${i + 1}:0:+${p.sizeMiB}M`, '-t', `${i + 1}:${p.type}`));
  return sh('truncate', ['-s', `${sizeMiB}M`, image]).then(() => sh('sgdisk', [...args, image]));
}

/** `ferry-agent backup` of one image as a fresh source; returns its numbers and its log (stderr). */
async function backup(a: RunningAppliance, work: string, name: string, disk: string, extra: string[] = []): Promise<{ r: BackupJson; log: string }> {
  const state = path.join(work, `agent-${name}`);
  await enrollAgent(a, state, name);
  const out = await ferryOk('agent', ['backup', '--disk', disk, '--state', state, '--json', ...extra]);
  return { r: JSON.parse(out.stdout) as BackupJson, log: out.stderr };
}

async function restore(a: RunningAppliance, point: number, target: string, sizeMiB: number): Promise<void> {
  await sh('truncate', ['-s', `${sizeMiB}M`, target]);
  await ferryOk('restore', ['--appliance', a.url, '--fingerprint', a.fingerprint, '--token', a.adminToken, '--point', String(point), '--target', target]);
}

/** Bytes a clean XFS uses, by its own account: every block its superblock does not count free. */
async function xfsUsedBytes(dev: string): Promise<number> {
  const out = await sh('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p blocksize dblocks fdblocks', dev]);
  const f = (n: string): number => Number(new RegExp(`^${n} = (\\d+)`, 'm').exec(out)?.[1]);
  return (f('dblocks') - f('fdblocks')) * f('blocksize');
}

async function ext4UsedBytes(dev: string): Promise<number> {
  const out = await sh('dumpe2fs', ['-h', dev]);
  const f = (n: string): number => Number(new RegExp(`^${n}:\\s+(\\d+)`, 'm').exec(out)?.[1]);
  return (f('Block count') - f('Free blocks')) * f('Block size');
}

/** LVM commands that see only `devices` (other tests' and sessions' volume groups stay invisible), never activating. */
function lvm(devices: string[]): (cmd: string, args: string[]) => Promise<string> {
  const accept = devices.map((d) => `"a|^${d}$|"`).join(', ');
  const config = `activation { udev_sync = 0 udev_rules = 0 monitoring = 0 } devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 global_filter = [ ${accept}, "r|.*|" ] }`;
  return (cmd, args) => sh('env', ['LVM_SUPPRESS_FD_WARNINGS=1', cmd, '--config', config, ...args]);
}

/** Where each linear volume of `vg` lies on the physical volume `pv`, in bytes from the PV's start. */
async function linearVolumes(run: ReturnType<typeof lvm>, vg: string, pv: string): Promise<Map<string, { offset: number; size: number }>> {
  const pvs = JSON.parse(await run('pvs', ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'pe_start,vg_extent_size', pv])) as {
    report: { pv: { pe_start: string; vg_extent_size: string }[] }[];
  };
  const peStart = Number(pvs.report[0]?.pv[0]?.pe_start);
  const extent = Number(pvs.report[0]?.pv[0]?.vg_extent_size);
  const lvs = JSON.parse(await run('lvs', ['--driverloaded', 'n', '--reportformat', 'json', '--segments', '-o', 'lv_name,seg_pe_ranges,segtype', vg])) as {
    report: { seg: { lv_name: string; seg_pe_ranges: string; segtype: string }[] }[];
  };
  const out = new Map<string, { offset: number; size: number }>();
  for (const s of lvs.report[0]?.seg ?? []) {
    const m = /:(\d+)-(\d+)$/.exec(s.seg_pe_ranges);
    assert.ok(m && s.segtype === 'linear', `${s.lv_name} is one linear segment (${s.seg_pe_ranges})`);
    out.set(s.lv_name, { offset: peStart + Number(m[1]) * extent, size: (Number(m[2]) - Number(m[1]) + 1) * extent });
  }
  return out;
}

/** Attaches a loop device over [offset, offset+size) of a file or device, runs fn with it, detaches. */
async function window<T>(file: string, offset: number, size: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const dev = (await sh('losetup', ['-f', '--show', '-o', String(offset), '--sizelimit', String(size), file])).trim();
  try {
    return await fn(dev);
  } finally {
    await detach(dev);
  }
}

/** How many stored chunks contain `needle` (decrypted and decompressed, through the appliance's own store). */
async function chunksContaining(dataDir: string, needle: Buffer): Promise<number> {
  const { chunks } = await openStores(dataDir, TEST_PASSPHRASE);
  let hits = 0;
  for await (const key of chunks.keys()) {
    const { header, payload } = await chunks.readRawByKey(key);
    if (decompressInto(header.codec, payload, Buffer.alloc(header.rawLength)).includes(needle)) hits++;
  }
  return hits;
}

describe('XFS, LVM and exclusions: backed up, restored, compared', { timeout: 20 * 60_000 }, () => {
  let work: string;
  let appliance: RunningAppliance;

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-fs-it-'));
    appliance = await startAppliance(path.join(work, 'appliance'));
  });

  after(async () => {
    await appliance?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('an XFS partition restores to an equal file tree, and only its used blocks are read', async () => {
    const image = path.join(work, 'xfs.img');
    await gpt(image, 256, [{ sizeMiB: 224, type: '8300' }]);
    const dev = await attach(image, 1);
    let expected: Map<string, string>;
    let used: number;
    try {
      await mkfsXfs(`${dev}p1`);
      expected = await mounted(`${dev}p1`, 'xfs', false, async (dir) => {
        await fill(dir, 1);
        return treeChecksums(dir);
      });
      used = await xfsUsedBytes(`${dev}p1`);
    } finally {
      await detach(dev);
    }
    const { r } = await backup(appliance, work, 'xfs-source', image);
    // GPT areas (1 MiB + 33 sectors) and the AG free lists (counted free by the superblock) on top of the used blocks.
    assert.ok(r.bytesRead <= used + 2 * MIB, `read ${r.bytesRead} bytes; XFS uses ${used}`);
    assert.ok(r.bytesRead >= used, `read ${r.bytesRead} bytes; XFS uses ${used}`);
    assert.ok(r.bytesRead < 128 * MIB, 'the free space of the 224 MiB filesystem is not read');

    const target = path.join(work, 'xfs-restored.img');
    await restore(appliance, r.point.id, target, 256);
    const tdev = await attach(target, 1);
    try {
      await sh('xfs_repair', ['-n', `${tdev}p1`]);
      assert.deepEqual(await mounted(`${tdev}p1`, 'xfs', true, treeChecksums), expected);
    } finally {
      await detach(tdev);
    }
    await rm(target);
  });

  test('an LVM physical volume with an ext4 and an XFS volume restores to equal file trees; unallocated extents are not read', async () => {
    const image = path.join(work, 'lvm.img');
    await gpt(image, 320, [{ sizeMiB: 300, type: '8e00' }]);
    const vg = `ferryit-${process.pid}`;
    const expected = new Map<string, Map<string, string>>();
    let used = 0;
    const dev = await attach(image, 1);
    try {
      const pv = `${dev}p1`;
      const run = lvm([pv]);
      await run('pvcreate', ['-q', pv]);
      await run('vgcreate', ['-q', '-s', '4M', vg, pv]);
      await run('lvcreate', ['--driverloaded', 'n', '-an', '-Zn', '-y', '-n', 'root', '-L', '96M', vg]);
      await run('lvcreate', ['--driverloaded', 'n', '-an', '-Zn', '-y', '-n', 'srv', '-L', '96M', vg]);
      const lvs = await linearVolumes(run, vg, pv);
      for (const [name, fsType] of [
        ['root', 'ext4'],
        ['srv', 'xfs'],
      ] as const) {
        const at = lvs.get(name);
        assert.ok(at);
        await window(pv, at.offset, at.size, async (lvDev) => {
          if (fsType === 'ext4') await sh('mkfs.ext4', ['-q', '-F', lvDev]);
          else await mkfsXfs(lvDev);
          expected.set(
            name,
            await mounted(lvDev, fsType, false, async (dir) => {
              await fill(dir, name.length);
              return treeChecksums(dir);
            }),
          );
          used += fsType === 'ext4' ? await ext4UsedBytes(lvDev) : await xfsUsedBytes(lvDev);
        });
      }
      await run('vgchange', ['--driverloaded', 'n', '-an', vg]).catch(() => '');
    } finally {
      await detach(dev);
    }

    const { r } = await backup(appliance, work, 'lvm-source', image);
    // PV label and metadata area (1 MiB before the first extent), GPT areas, AG free lists.
    assert.ok(r.bytesRead <= used + 4 * MIB, `read ${r.bytesRead} bytes; the two filesystems use ${used}`);
    assert.ok(r.bytesRead >= used, `read ${r.bytesRead} bytes; the two filesystems use ${used}`);
    assert.ok(r.bytesRead < 300 * MIB - 100 * MIB, 'the ~100 MiB of unallocated extents and the volumes\' free space are not read');

    const target = path.join(work, 'lvm-restored.img');
    await restore(appliance, r.point.id, target, 320);
    const tdev = await attach(target, 1);
    try {
      const pv = `${tdev}p1`;
      const run = lvm([pv]);
      const lvs = await linearVolumes(run, vg, pv);
      assert.deepEqual([...lvs.keys()], ['root', 'srv'], 'the restored volume group has both volumes and no other');
      for (const [name, fsType] of [
        ['root', 'ext4'],
        ['srv', 'xfs'],
      ] as const) {
        const at = lvs.get(name)!;
        await window(pv, at.offset, at.size, async (lvDev) => {
          await sh(fsType === 'ext4' ? 'e2fsck' : 'xfs_repair', [fsType === 'ext4' ? '-fn' : '-n', lvDev]);
          assert.deepEqual(await mounted(lvDev, fsType, true, treeChecksums), expected.get(name), `${name} restores equal`);
        });
      }
    } finally {
      await detach(tdev);
    }
    await rm(target);
  });

  test('an excluded directory\'s files restore as zeros, and their blocks were neither read nor sent', async () => {
    const image = path.join(work, 'excl.img');
    await gpt(image, 256, [{ sizeMiB: 224, type: '8300' }]);
    const big = [randomBytes(24 * MIB), randomBytes(16 * MIB), randomBytes(8 * MIB + 777)];
    const dev = await attach(image, 1);
    let expected: Map<string, string>;
    let withExclusion: { r: BackupJson; log: string };
    const mnt = path.join(work, 'excl-mnt');
    await mkdir(mnt);
    try {
      await sh('mkfs.ext4', ['-q', '-F', '-b', '4096', `${dev}p1`]);
      expected = await mounted(`${dev}p1`, 'ext4', false, async (dir) => {
        await fill(dir, 7);
        const sums = await treeChecksums(dir);
        await mkdir(path.join(dir, 'var', 'cache', 'deep'), { recursive: true });
        await writeFile(path.join(dir, 'var', 'cache', 'a.bin'), big[0]!);
        await writeFile(path.join(dir, 'var', 'cache', 'deep', 'b.bin'), big[1]!);
        await writeFile(path.join(dir, 'var', 'cache', 'deep', 'c.bin'), big[2]!);
        await sh('sync', []);
        return sums;
      });
      // The source system: the filesystem mounted (read-only here, so its bitmaps are final) at a path the agent excludes.
      await sh('mount', ['-t', 'ext4', '-o', 'ro', `${dev}p1`, mnt]);
      try {
        withExclusion = await backup(appliance, work, 'excl-source', dev, ['--exclude', path.join(mnt, 'var', 'cache')]);
      } finally {
        await sh('umount', [mnt]);
      }
    } finally {
      await detach(dev);
    }
    const excluded = big.reduce((n, b) => n + Math.ceil(b.length / 4096) * 4096, 0);
    assert.match(withExclusion.log, new RegExp(`exclusion ${mnt}/var/cache: 3 files, ${excluded} bytes of /dev/loop\\d+ not read or sent`));
    const samples = big.map((b) => b.subarray(b.length - 4096 - 64, b.length - 4096));
    for (const sample of samples) assert.equal(await chunksContaining(appliance.dataDir, sample), 0, 'no stored chunk holds excluded data');
    // The same disk without the exclusion, for comparison (the image holds the same bytes as the loop device).
    const { r: whole } = await backup(appliance, work, 'excl-compare', image);
    assert.ok((await chunksContaining(appliance.dataDir, samples[0]!)) >= 1, 'without the exclusion the data is stored: the check above can see it');
    const { r } = withExclusion;
    // Reads span from a block's first used byte to its last, so a partly excluded 1 MiB block may still be read through.
    assert.ok(whole.bytesRead - r.bytesRead >= excluded - 2 * MIB, `read ${r.bytesRead} bytes with the exclusion, ${whole.bytesRead} without`);
    // bytesChanged: the blocks new to this source, before the appliance's dedupe (which spares the comparison run the shared files).
    assert.ok(whole.bytesChanged - r.bytesChanged >= excluded - 2 * MIB, `changed ${r.bytesChanged} bytes with the exclusion, ${whole.bytesChanged} without`);
    assert.ok(r.bytesSent < whole.bytesChanged - excluded + 2 * MIB, `sent ${r.bytesSent} bytes with the exclusion; the disk without it has ${whole.bytesChanged}`);

    const target = path.join(work, 'excl-restored.img');
    await restore(appliance, r.point.id, target, 256);
    const tdev = await attach(target, 1);
    try {
      await sh('e2fsck', ['-fn', `${tdev}p1`]);
      await mounted(`${tdev}p1`, 'ext4', true, async (dir) => {
        const got = await treeChecksums(dir);
        const cache = path.join('var', 'cache');
        for (const [i, f] of ['a.bin', 'deep/b.bin', 'deep/c.bin'].entries()) {
          const file = path.join(dir, cache, f);
          assert.equal((await stat(file)).size, big[i]!.length, `${f} exists with its size`);
          const content = await readFile(file);
          assert.ok(content.every((b) => b === 0), `${f} reads as zeros`);
          got.delete(path.join(cache, f));
        }
        assert.deepEqual(got, expected, 'everything else restores equal');
      });
    } finally {
      await detach(tdev);
    }
    await rm(target);
  });
});
