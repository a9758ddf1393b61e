import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { enrollAgent, sh, type RunningAppliance } from '../lib/cli.js';
import {
  backup,
  catalogIntegrity,
  exited,
  faultSeed,
  kill9,
  MIB,
  repoint,
  restoreEqual,
  Rng,
  scribble,
  startFaulty,
  verifyClean,
  type BackupRun,
} from './lib.js';

/*
 * The appliance killed with SIGKILL (a power cut, `kill -9`) during backup cycles, on real processes: the
 * agent CLI backs up a raw image file to `ferry-appliance serve`, which dies at a named point of the write path
 * (FERRY_FAULT, appliance/src/faults.ts) or at a random moment. After each restart: the catalog passes SQLite's
 * integrity check, `verify` is clean, every point acknowledged before the kill restores byte-equal, and the
 * agent's next backup resumes the interrupted cycle. docs/reliability.md, "Crash".
 *
 * Images are raw files of incompressible 1 MiB blocks, so the agent sends every block and each upload batch
 * (DEFAULT_BATCH_BYTES, 2 MiB of payload) holds exactly BATCH_BLOCKS blocks: the position a named-point kill
 * leaves is known exactly.
 */

const IMAGE_MIB = 24;
const BATCH_BLOCKS = 2;
/** Random kills: a bigger image, so that more of the span a kill can land in is inside the cycle. */
const RANDOM_MIB = 48;

/** The running cycle's acknowledged position, straight from the catalog (null: no cycle is running). */
async function runningPosition(dataDir: string): Promise<{ cycle: number; nextBlock: number; blockCount: number } | null> {
  const out = (
    await sh('sqlite3', [
      path.join(dataDir, 'catalog.sqlite'),
      "SELECT c.id, d.next_block, d.block_count FROM cycles c JOIN cycle_disks d ON d.cycle_id = c.id WHERE c.state = 'running';",
    ])
  ).trim();
  if (!out) return null;
  const [cycle, nextBlock, blockCount] = out.split('|').map(Number);
  return { cycle: cycle!, nextBlock: nextBlock!, blockCount: blockCount! };
}

/** Committed points' ids, oldest first. */
async function committedPoints(dataDir: string): Promise<number[]> {
  const out = (await sh('sqlite3', [path.join(dataDir, 'catalog.sqlite'), "SELECT id FROM cycles WHERE state = 'committed' ORDER BY id;"])).trim();
  return out ? out.split('\n').map(Number) : [];
}

function ok(r: BackupRun, what: string): number {
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  return r.pointId!;
}

/** Where one named point's kill must leave the cycle, for a kill the n-th time the point is reached. */
function expectedAfterKill(point: string, n: number): { nextBlock: number | 'committed'; streamed: number } {
  // The agent streams one batch at a time and sends the next only after the previous one's acknowledgement.
  const batchOf = (chunk: number): number => Math.ceil(chunk / BATCH_BLOCKS);
  switch (point) {
    case 'chunk-written':
    case 'chunk-renamed':
      return { nextBlock: (batchOf(n) - 1) * BATCH_BLOCKS, streamed: batchOf(n) * BATCH_BLOCKS };
    case 'chunk-fsynced':
    case 'index-written':
      return { nextBlock: (n - 1) * BATCH_BLOCKS, streamed: n * BATCH_BLOCKS };
    case 'before-ack':
      return { nextBlock: n * BATCH_BLOCKS, streamed: n * BATCH_BLOCKS };
    default:
      return { nextBlock: 'committed', streamed: IMAGE_MIB };
  }
}

describe('crash: the appliance killed at named points and at random moments', { timeout: 30 * 60_000 }, () => {
  let work: string;
  const running = new Set<RunningAppliance>();
  const seed = faultSeed('crash');

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-crash-'));
  });

  after(async () => {
    for (const a of running) await kill9(a);
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function start(dataDir: string, fault?: string): Promise<RunningAppliance> {
    const a = await startFaulty(dataDir, fault);
    running.add(a);
    void exited(a).then(() => running.delete(a));
    return a;
  }

  const POINTS = ['chunk-written', 'chunk-fsynced', 'chunk-renamed', 'index-written', 'before-ack', 'catalog-committed'] as const;
  for (const [i, point] of POINTS.entries()) {
    test(`killed at ${point}: nothing acknowledged is lost, the cycle resumes re-sending at most one batch`, async () => {
      const rng = new Rng(seed + i);
      const dir = path.join(work, point);
      const dataDir = path.join(dir, 'appliance');
      const state = path.join(dir, 'agent');
      const image = path.join(dir, 'source.img');
      const v1 = path.join(dir, 'v1.img');
      await sh('mkdir', ['-p', dir]);
      await writeFile(image, rng.bytes(IMAGE_MIB * MIB));
      await copyFile(image, v1);

      // Point 1, acknowledged: it must survive the crash of the next cycle.
      let a = await start(dataDir);
      await enrollAgent(a, state, `crash-${point}`);
      const p1 = ok(await backup(state, image), 'first backup');
      await a.stop();

      // Every block changes, so the second cycle sends IMAGE_MIB new chunks in IMAGE_MIB / BATCH_BLOCKS batches.
      await writeFile(image, rng.bytes(IMAGE_MIB * MIB));
      const n = point === 'catalog-committed' ? 1 : point.startsWith('chunk-written') || point === 'chunk-renamed' ? 1 + rng.int(IMAGE_MIB - 2) : 1 + rng.int(IMAGE_MIB / BATCH_BLOCKS - 1);
      const fault = `${point}:${n}`;
      a = await start(dataDir, fault);
      await repoint(state, a.url);
      const killed = await backup(state, image);
      assert.equal(await exited(a), 'SIGKILL', `the appliance died at ${fault}`);
      assert.notEqual(killed.code, 0, 'the agent reports the lost appliance');
      assert.match(killed.stderr, /APPLIANCE_UNREACHABLE/);

      a = await start(dataDir);
      await repoint(state, a.url);
      await catalogIntegrity(dataDir);
      await verifyClean(dataDir);
      await restoreEqual(a, p1, v1, dir);

      const want = expectedAfterKill(point, n);
      const pos = await runningPosition(dataDir);
      if (want.nextBlock === 'committed') {
        assert.equal(pos, null, 'no cycle is left running: the point was committed before the kill');
        const points = await committedPoints(dataDir);
        assert.equal(points.length, 2, 'the point committed just before the kill is there');
        await restoreEqual(a, points[1]!, image, dir);
        // Its agent never heard of it: the next run is an incremental that finds nothing changed.
        const again = await backup(state, image);
        ok(again, 'backup after the kill');
        assert.ok(again.bytesSent! < MIB, `nothing is sent again (${again.bytesSent} bytes)`);
        await restoreEqual(a, again.pointId!, image, dir);
      } else {
        assert.ok(pos, 'the interrupted cycle is still running');
        assert.equal(pos.nextBlock, want.nextBlock, `acknowledged position after a kill at ${fault}`);
        const resent = want.streamed - pos.nextBlock;
        assert.ok(resent <= BATCH_BLOCKS, `re-sends ${resent} blocks (at most one batch of ${BATCH_BLOCKS})`);
        const resumed = await backup(state, image);
        const p2 = ok(resumed, 'resumed backup');
        assert.match(resumed.stderr, new RegExp(`resuming cycle ${pos.cycle}\\b`), 'the agent continued the interrupted cycle');
        assert.equal(p2, pos.cycle);
        // Only blocks from the acknowledged position on went over the wire (1 MiB each, plus framing), less the
        // chunks of the killed batch that were already durable (renamed into place): those are not sent again.
        const blocksSent = Math.round(resumed.bytesSent! / MIB);
        const remaining = IMAGE_MIB - pos.nextBlock;
        assert.ok(blocksSent <= remaining && blocksSent >= remaining - BATCH_BLOCKS, `the resumed run sent ${resumed.bytesSent} bytes for ${remaining} blocks`);
        await restoreEqual(a, p2, image, dir);
      }
      await verifyClean(dataDir);
      await a.stop();
      process.stdout.write(`# ${fault}: resumed from block ${pos?.nextBlock ?? 'committed'}\n`);
    });
  }

  test('random kills during backup cycles (FERRY_FAULT_FULL=1: 50 cycles)', async () => {
    const cycles = process.env.FERRY_FAULT_FULL === '1' ? 50 : 8;
    const rng = new Rng(seed + 100);
    const dir = path.join(work, 'random');
    const dataDir = path.join(dir, 'appliance');
    const state = path.join(dir, 'agent');
    const image = path.join(dir, 'source.img');
    await sh('mkdir', ['-p', dir]);
    await writeFile(image, rng.bytes(RANDOM_MIB * MIB));
    let a = await start(dataDir);
    await enrollAgent(a, state, 'crash-random');
    /** Points acknowledged to the agent, with a copy of the image they must restore to (checked after the next kill). */
    const unchecked: { id: number; copy: string }[] = [];
    const first = path.join(dir, 'first.img');
    await copyFile(image, first);
    const firstPoint = ok(await backup(state, image), 'first backup');
    let kills = 0;
    let resumes = 0;
    for (let c = 0; c < cycles; c++) {
      await scribble(image, rng, RANDOM_MIB / 2 + rng.int(RANDOM_MIB));
      const copy = path.join(dir, `cycle-${c}.img`);
      await copyFile(image, copy);
      // The agent starts in ~0.8 s, its cycle then takes ~0.1–0.6 s: kill anywhere in that span (or just after it).
      const delay = 700 + rng.int(900);
      const run = backup(state, image);
      await sleep(delay);
      await kill9(a);
      kills++;
      const r = await run;
      if (r.code === 0) unchecked.push({ id: r.pointId!, copy });

      a = await start(dataDir);
      await repoint(state, a.url);
      await catalogIntegrity(dataDir);
      await verifyClean(dataDir);
      for (const p of unchecked.splice(0)) {
        await restoreEqual(a, p.id, p.copy, dir);
        await rm(p.copy);
      }
      if (r.code !== 0) {
        const pos = await runningPosition(dataDir);
        const resumed = await backup(state, image);
        const id = ok(resumed, `backup after the kill in cycle ${c}`);
        if (pos && /resuming cycle/.test(resumed.stderr)) {
          resumes++;
          assert.equal(id, pos.cycle, 'the interrupted cycle is the one committed');
        }
        await restoreEqual(a, id, copy, dir);
        await rm(copy);
      }
      process.stdout.write(`# random kill ${c + 1}/${cycles} after ${delay} ms: ${r.code === 0 ? 'cycle had completed' : 'cycle interrupted'}\n`);
    }
    await restoreEqual(a, firstPoint, first, dir);
    await verifyClean(dataDir);
    await a.stop();
    process.stdout.write(`# random kills: ${kills} kills, ${resumes} interrupted cycles resumed\n`);
  });
});
