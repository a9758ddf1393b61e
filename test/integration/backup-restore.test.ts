import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, open, readFile, rm, unlink, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { decompressInto, initHashing } from '@ferry/protocol';
import { openStores } from '@ferry/appliance/testing';
import { enrollAgent, ferryOk, sh, startAppliance, TEST_PASSPHRASE, type RunningAppliance } from '../lib/cli.js';
import { textBlob, type BackupJson } from '../lib/fixture-data.js';
import { createPartitionedImage, fsckClean, treeChecksums, withMounted, type TableType } from '../lib/disk-image.js';

/*
 * The core promise on real things: ext4 built by mkfs on partitioned image files (loop devices), a real
 * appliance process, the agent and restore CLIs as a user runs them.
 */

const MARKER = Buffer.from('FERRY-DELETED-DATA-MARKER-7f3a9c1e|');
const MIB = 1024 * 1024;



/** ~190 MiB of files: compressible text in many small files, incompressible random data in large ones. */
async function fill(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'text'));
  for (let i = 0; i < 300; i++) await writeFile(path.join(dir, 'text', `log-${i}.txt`), textBlob(i, 100 * 1024 + i * 37));
  await mkdir(path.join(dir, 'random'));
  for (let i = 0; i < 8; i++) await writeFile(path.join(dir, 'random', `blob-${i}.bin`), randomBytes(20 * MIB + i * 4096));
  // Data that is deleted before the backup: its blocks are free and must never be read into a chunk.
  const secret = Buffer.alloc(12 * MIB);
  for (let at = 0; at + MARKER.length <= secret.length; at += MARKER.length) MARKER.copy(secret, at);
  await writeFile(path.join(dir, 'deleted-secret.bin'), secret);
  await sh('sync', []);
  await unlink(path.join(dir, 'deleted-secret.bin'));
}

/** About 1 % of the data: an in-place overwrite, an append, a new file, a deletion. */
async function change(dir: string): Promise<void> {
  const fh = await open(path.join(dir, 'random', 'blob-3.bin'), 'r+');
  await fh.write(randomBytes(768 * 1024), 0, 768 * 1024, 5 * MIB + 12345);
  await fh.close();
  await appendFile(path.join(dir, 'text', 'log-7.txt'), textBlob(999, 200 * 1024));
  await writeFile(path.join(dir, 'random', 'new-after-full.bin'), randomBytes(512 * 1024));
  await unlink(path.join(dir, 'text', 'log-100.txt'));
}

/** Chunks whose plaintext contains `needle` (opened with the test passphrase: the appliance is encrypted). */
async function chunksContain(dataDir: string, needle: Buffer): Promise<number> {
  const { chunks } = await openStores(dataDir, TEST_PASSPHRASE);
  let hits = 0;
  for await (const key of chunks.keys()) {
    const { header, payload } = await chunks.readRawByKey(key);
    const plain = decompressInto(header.codec, payload, Buffer.alloc(header.rawLength));
    if (plain.includes(needle)) hits++;
  }
  return hits;
}

describe('backup and restore of partitioned ext4 disks', { timeout: 20 * 60_000 }, () => {
  let work: string;
  let appliance: RunningAppliance;

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-it-'));
    appliance = await startAppliance(path.join(work, 'appliance'));
  });

  after(async () => {
    await appliance?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const images: Partial<Record<TableType, { image: string; full: BackupJson }>> = {};

  for (const table of ['mbr', 'gpt'] as const) {
    test(`full then incremental backup of an ${table.toUpperCase()} disk restores each point byte-exact at file level`, async (t) => {
      const image = path.join(work, `source-${table}.img`);
      await createPartitionedImage(image, table, 512, 400, 32);
      const before1 = await withMounted(image, 1, async (dir) => {
        await fill(dir);
        return treeChecksums(dir);
      });
      const state = path.join(work, `agent-${table}`);
      await enrollAgent(appliance, state, `server-${table}`);

      const full = JSON.parse((await ferryOk('agent', ['backup', '--disk', image, '--state', state, '--json'])).stdout) as BackupJson;
      assert.equal(full.point.name, 'CYCLE_1');
      // Only used blocks are read: free ext4 space, swap beyond its header and unpartitioned space are not.
      assert.ok(full.bytesRead < 260 * MIB, `full read ${full.bytesRead} bytes of a 512 MiB disk holding ~200 MiB`);
      assert.ok(full.bytesRead > 180 * MIB, `full read only ${full.bytesRead} bytes`);

      const before2 = await withMounted(image, 1, async (dir) => {
        await change(dir);
        return treeChecksums(dir);
      });
      const incr = JSON.parse((await ferryOk('agent', ['backup', '--disk', image, '--state', state, '--json'])).stdout) as BackupJson;
      assert.equal(incr.point.name, 'CYCLE_2');
      t.diagnostic(`full: read ${full.bytesRead}, sent ${full.bytesSent}, stored ${full.bytesStored}; incremental: changed ${incr.bytesChanged}, sent ${incr.bytesSent}`);
      assert.ok(incr.bytesSent < 0.05 * full.bytesSent, `incremental sent ${incr.bytesSent} bytes, full ${full.bytesSent}: must be < 5 %`);
      assert.ok(incr.bytesChanged > 0, 'the incremental saw the changes');

      for (const [point, expected] of [
        [full.point.id, before1],
        [incr.point.id, before2],
      ] as const) {
        const target = path.join(work, `restore-${table}-${point}.img`);
        await sh('truncate', ['-s', '512M', target]);
        await ferryOk('restore', ['--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', String(point), '--target', target]);
        await fsckClean(target, 1);
        const got = await withMounted(target, 1, (dir) => treeChecksums(dir), true);
        assert.deepEqual(got, expected, `files restored from point ${point} equal the source at that point`);
        const restored = await readFile(target);
        assert.equal(restored.indexOf(MARKER), -1, 'deleted data is not in the restored disk');
        await rm(target);
      }
      images[table] = { image, full };
    });
  }

  test('deleted and free filesystem blocks never reach the appliance', async () => {
    assert.ok(images.mbr && images.gpt, 'needs the backups above');
    assert.equal(await chunksContain(appliance.dataDir, MARKER), 0);
  });

  test('a GPT point restored to a larger disk gets its backup header moved to the end', async () => {
    const src = images.gpt;
    assert.ok(src, 'needs the GPT backup above');
    const target = path.join(work, 'restore-gpt-larger.img');
    await sh('truncate', ['-s', '768M', target]);
    const r = await ferryOk('restore', ['--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', String(src.full.point.id), '--target', target, '--json']);
    const result = JSON.parse(r.stdout) as { disks: { gptRelocated: boolean; verified: boolean }[] };
    assert.equal(result.disks[0]?.gptRelocated, true);
    assert.equal(result.disks[0]?.verified, true);
    const verify = await sh('sgdisk', ['-v', target]);
    assert.match(verify, /No problems found/);
    const info = await sh('sgdisk', ['-p', target]);
    assert.match(info, /last usable sector is 1572830/);
    await fsckClean(target, 1);
    await rm(target);
  });

  test('a second source sharing most data with the first stores only the difference', async () => {
    const src = images.mbr;
    assert.ok(src, 'needs the MBR backup above');
    const clone = path.join(work, 'clone.img');
    await copyFile(src.image, clone);
    await withMounted(clone, 1, (dir) => writeFile(path.join(dir, 'only-on-clone.bin'), randomBytes(2 * MIB)));
    const state = path.join(work, 'agent-clone');
    await enrollAgent(appliance, state, 'clone-server');
    const r = JSON.parse((await ferryOk('agent', ['backup', '--disk', clone, '--state', state, '--json'])).stdout) as BackupJson;
    assert.equal(r.point.name, 'CYCLE_1');
    assert.ok(r.bytesChanged > 150 * MIB, 'a first backup of the clone compares everything as new');
    assert.ok(r.bytesStored < 0.1 * src.full.bytesStored, `clone stored ${r.bytesStored} bytes; first source stored ${src.full.bytesStored}`);
    await rm(clone);
  });

  test('verify re-reads every chunk and finds all points intact', async () => {
    const r = await ferryOk('appliance', ['verify', '--data', appliance.dataDir, '--json']);
    const report = JSON.parse(r.stdout) as { ok: boolean; points: unknown[]; chunksChecked: number; damagedChunks: unknown[] };
    assert.equal(report.ok, true);
    assert.equal(report.points.length, 5);
    assert.ok(report.chunksChecked > 100);
    assert.deepEqual(report.damagedChunks, []);
  });
});
