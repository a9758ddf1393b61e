import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, open, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApplianceClient, API_PREFIX, BlockIndex, BlockKind, initHashing, type Point } from '@ferry/protocol';
import { openStores } from '@ferry/appliance/testing';
import { enrollAgent, TEST_PASSPHRASE, type RunningAppliance } from '../lib/cli.js';
import { backup, faultSeed, kill9, MIB, restoreEqual, restoreTo, Rng, startFaulty, verify } from './lib.js';

/*
 * Bit rot on an encrypted appliance's disks, on real things: ten points of a raw image, then chunk files and
 * index files damaged in four ways each (bits flipped, truncated, emptied, deleted) while the appliance is
 * stopped. `ferry-appliance verify` must report every damaged point and chunk, and no other; restoring a damaged
 * point fails loudly (CHUNK_DAMAGED naming the block, or INDEX_DAMAGED); the undamaged points restore equal.
 * encryption.test.ts flips one byte of one chunk; this goes wider. docs/reliability.md, "Bit rot".
 */

const IMAGE_MIB = 16;
const POINTS = 10;
const HARMS = ['flip bits in', 'truncate', 'empty', 'delete'] as const;
type Harm = (typeof HARMS)[number];

async function harm(file: string, how: Harm, rng: Rng): Promise<void> {
  if (how === 'delete') return unlink(file);
  if (how === 'empty') return truncate(file, 0);
  const fh = await open(file, 'r+');
  try {
    const { size } = await fh.stat();
    if (how === 'truncate') return await fh.truncate(Math.floor(size / 2));
    // A few single-bit flips anywhere in the file (header, nonce, ciphertext or tag).
    for (let i = 0; i < 3; i++) {
      const at = rng.int(size);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0]! ^= 1 << rng.int(8);
      await fh.write(b, 0, 1, at);
    }
  } finally {
    await fh.close();
  }
}

describe('bit rot: damaged chunk and index files are reported by point and never restored silently', { timeout: 15 * 60_000 }, () => {
  const seed = faultSeed('bitrot');
  const rng = new Rng(seed);
  let work: string;
  let dataDir: string;
  let appliance: RunningAppliance | undefined;
  /** Each point: its id, disk, index, and a copy of the image it must restore to. */
  const points: { id: number; diskId: number; index: BlockIndex; copy: string }[] = [];

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bitrot-'));
    dataDir = path.join(work, 'appliance');
    appliance = await startFaulty(dataDir);
    const state = path.join(work, 'agent');
    await enrollAgent(appliance, state, 'bitrot');
    const image = path.join(work, 'source.img');
    await writeFile(image, rng.bytes(IMAGE_MIB * MIB));
    const admin = new ApplianceClient(appliance.url, appliance.fingerprint, appliance.adminToken);
    try {
      for (let p = 0; p < POINTS; p++) {
        // Cycle p rewrites blocks p-1 and p: its chunk at block p is used by point p alone (cycle p+1 rewrites it).
        if (p > 0) {
          const fh = await open(image, 'r+');
          await fh.write(rng.bytes(2 * MIB), 0, 2 * MIB, (p - 1) * MIB);
          await fh.close();
        }
        const r = await backup(state, image);
        assert.equal(r.code, 0, r.stderr);
        const copy = path.join(work, `point-${p}.img`);
        await copyFile(image, copy);
        const info = await admin.json<Point>(`${API_PREFIX}/points/${r.pointId}`);
        const diskId = info.disks[0]!.diskId;
        const index = BlockIndex.parse(await admin.bytes(`${API_PREFIX}/points/${r.pointId}/disks/${diskId}/index`));
        points.push({ id: r.pointId!, diskId, index, copy });
      }
    } finally {
      admin.close();
    }
  });

  after(async () => {
    if (appliance) await kill9(appliance);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('four harms to chunk files and four to index files: verify names each, restores fail loudly or restore equal', async () => {
    assert.equal(points.length, POINTS, 'needs the points made above');
    await appliance!.stop();
    const { chunks, indexes } = await openStores(dataDir, TEST_PASSPHRASE);

    /** Which points use each chunk, and at which blocks. */
    const users = new Map<string, Map<number, number[]>>();
    for (const p of points) {
      for (let n = 0; n < p.index.header.blockCount; n++) {
        if (p.index.kind(n) !== BlockKind.Data) continue;
        const id = p.index.chunkIdHex(n);
        let byPoint = users.get(id);
        if (!byPoint) users.set(id, (byPoint = new Map<number, number[]>()));
        byPoint.set(p.id, [...(byPoint.get(p.id) ?? []), n]);
      }
    }
    // Chunk harms on points 2..5 (the chunk each rewrote at its own block), index harms on points 6..9; 1 and 10 untouched.
    const chunkVictims = HARMS.map((how, i) => {
      const p = points[1 + i]!;
      const id = p.index.chunkIdHex(1 + i);
      assert.deepEqual([...users.get(id)!.keys()], [p.id], `the chunk at block ${1 + i} of point ${p.id} is its own`);
      return { how, id, point: p.id, blocks: users.get(id)!.get(p.id)! };
    });
    const indexVictims = HARMS.map((how, i) => ({ how, point: points[5 + i]! }));
    for (const v of chunkVictims) await harm(chunks.pathOf(v.id), v.how, rng);
    for (const v of indexVictims) await harm(indexes.pathOf(v.point.id, v.point.diskId), v.how, rng);
    process.stdout.write(
      `# damaged: ${chunkVictims.map((v) => `${v.how} chunk of point ${v.point}`).join(', ')}; ${indexVictims.map((v) => `${v.how} index of point ${v.point.id}`).join(', ')}\n`,
    );

    const v = await verify(dataDir);
    assert.equal(v.code, 1, `verify exits 1 on damage: ${v.stderr}`);
    assert.equal(v.report.ok, false);
    const damaged = new Set([...chunkVictims.map((c) => c.point), ...indexVictims.map((x) => x.point.id)]);
    assert.deepEqual(
      v.report.points.filter((p) => !p.ok).map((p) => p.id),
      points.filter((p) => damaged.has(p.id)).map((p) => p.id),
      'verify reports exactly the damaged points',
    );
    assert.deepEqual(v.report.damagedChunks.map((c) => c.id).sort(), chunkVictims.map((c) => c.id).sort(), 'verify names every damaged chunk');
    const problems = (id: number): string => v.report.points.find((p) => p.id === id)!.problems.join('\n');
    for (const c of chunkVictims) {
      assert.match(problems(c.point), new RegExp(`chunk ${c.id}`), `point ${c.point} (${c.how} chunk)`);
      if (c.how === 'delete') assert.match(problems(c.point), /missing/);
    }
    for (const x of indexVictims) assert.match(problems(x.point.id), /index/i, `point ${x.point.id} (${x.how} index)`);

    appliance = await startFaulty(dataDir);
    for (const c of chunkVictims) {
      const target = path.join(work, `damaged-${c.point}.img`);
      const r = await restoreTo(appliance, c.point, target, IMAGE_MIB * MIB);
      assert.notEqual(r.code, 0, `restoring point ${c.point} (${c.how} chunk) fails`);
      assert.match(r.output, /CHUNK_DAMAGED/, r.output);
      assert.match(r.output, new RegExp(`block ${c.blocks[0]}\\b`), `names block ${c.blocks[0]}: ${r.output}`);
      await rm(target, { force: true });
    }
    for (const x of indexVictims) {
      const target = path.join(work, `damaged-${x.point.id}.img`);
      const r = await restoreTo(appliance, x.point.id, target, IMAGE_MIB * MIB);
      assert.notEqual(r.code, 0, `restoring point ${x.point.id} (${x.how} index) fails`);
      assert.match(r.output, /INDEX_DAMAGED/, r.output);
      await rm(target, { force: true });
    }
    for (const p of points.filter((x) => !damaged.has(x.id))) await restoreEqual(appliance, p.id, p.copy, work);
  });
});
