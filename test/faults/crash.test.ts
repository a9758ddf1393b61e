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
/** Random kills: two disks (the agent sends them one after the other), bigger, so that more kills land inside a cycle. */
const RANDOM_MIB = [32, 16];

/** The running cycle's acknowledged position per disk, straight from the catalog (null: no cycle is running). */
async function runningPosition(dataDir: string): Promise<{ cycle: number; nextBlock: number; blockCount: number; disks: { nextBlock: number; blockCount: number }[] } | null> {
  const out = (
    await sh('sqlite3', [
      path.join(dataDir, 'catalog.sqlite'),
      "SELECT c.id, d.next_block, d.block_count FROM cycles c JOIN cycle_disks d ON d.cycle_id = c.id WHERE c.state = 'running' ORDER BY d.slot;",
    ])
  ).trim();
  if (!out) return null;
  const rows = out.split('\n').map((line) => line.split('|').map(Number));
  const disks = rows.map(([, nextBlock, blockCount]) => ({ nextBlock: nextBlock!, blockCount: blockCount! }));
  return { cycle: rows[0]![0]!, ...disks[0]!, disks };
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
    case 'index-sealed':
      // Every block acknowledged, the commit interrupted: the point is not committed, the cycle still runs.
      return { nextBlock: IMAGE_MIB, streamed: IMAGE_MIB };
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

  const POINTS = ['chunk-written', 'chunk-fsynced', 'chunk-renamed', 'index-written', 'before-ack', 'index-sealed', 'catalog-committed'] as const;
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
      const n = point === 'catalog-committed' || point === 'index-sealed' ? 1 : point === 'chunk-written' || point === 'chunk-renamed' ? 1 + rng.int(IMAGE_MIB - 2) : 1 + rng.int(IMAGE_MIB / BATCH_BLOCKS - 1);
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

  test('random kills during backup cycles of two disks (FERRY_FAULT_FULL=1: 50 cycles)', async () => {
    const cycles = process.env.FERRY_FAULT_FULL === '1' ? 50 : 8;
    const rng = new Rng(seed + 100);
    const dir = path.join(work, 'random');
    const dataDir = path.join(dir, 'appliance');
    const state = path.join(dir, 'agent');
    const images = RANDOM_MIB.map((_, i) => path.join(dir, `disk-${i}.img`));
    await sh('mkdir', ['-p', dir]);
    const copies = async (tag: string): Promise<string[]> => {
      const out = images.map((img) => `${img}.${tag}`);
      for (const [i, img] of images.entries()) await copyFile(img, out[i]!);
      return out;
    };
    for (const [i, img] of images.entries()) await writeFile(img, rng.bytes(RANDOM_MIB[i]! * MIB));
    let a = await start(dataDir);
    await enrollAgent(a, state, 'crash-random');
    /** Points acknowledged to the agent, with copies of the images they must restore to (checked after the next kill). */
    const unchecked: { id: number; copy: string[] }[] = [];
    const first = await copies('first');
    const firstPoint = ok(await backup(state, images), 'first backup');
    let kills = 0;
    let resumes = 0;
    for (let c = 0; c < cycles; c++) {
      for (const [i, img] of images.entries()) await scribble(img, rng, RANDOM_MIB[i]! / 4 + rng.int(RANDOM_MIB[i]! / 2));
      const copy = await copies(`cycle-${c}`);
      // Killed at a random moment of the cycle: `delay` ms after the catalog shows it running (or when the backup ended).
      const delay = rng.int(500);
      const agentRun = { finished: false };
      const run = backup(state, images).finally(() => (agentRun.finished = true));
      // Watch the catalog while the cycle runs: whatever position it has committed must survive the kill.
      let seen: { cycle: number; disks: number[] } | null = null;
      let until = Date.now() + 60_000;
      while (Date.now() < until && !agentRun.finished) {
        const pos = await runningPosition(dataDir).catch(() => null);
        if (pos && !seen) until = Date.now() + delay;
        if (pos && (!seen || pos.cycle !== seen.cycle)) seen = { cycle: pos.cycle, disks: pos.disks.map((d) => d.nextBlock) };
        else if (pos && seen) seen.disks = seen.disks.map((n, i) => Math.max(n, pos.disks[i]!.nextBlock));
        await sleep(Math.max(0, Math.min(50, until - Date.now())));
      }
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
        for (const f of p.copy) await rm(f);
      }
      let outcome = 'the cycle had completed';
      if (r.code !== 0) {
        const pos = await runningPosition(dataDir);
        const at = pos?.disks.map((d) => `${d.nextBlock}/${d.blockCount}`).join(' + ');
        outcome = pos ? `cycle ${pos.cycle} interrupted at blocks ${at} (seen before the kill: ${seen?.disks.join(' + ') ?? '-'})` : 'killed before the cycle started';
        if (seen && pos?.cycle === seen.cycle) {
          for (const [i, d] of pos.disks.entries()) {
            assert.ok(d.nextBlock >= seen.disks[i]!, `cycle ${pos.cycle} disk ${i} was at block ${seen.disks[i]} before the kill, ${d.nextBlock} after`);
          }
        } else if (seen) {
          assert.ok((await committedPoints(dataDir)).includes(seen.cycle), `cycle ${seen.cycle}, running before the kill, is still running or committed`);
        }
        const resumed = await backup(state, images);
        const id = ok(resumed, `backup after the kill in cycle ${c}`);
        // A cycle killed before its first acknowledgement may lack its index files (killed while creating them): it starts anew.
        if (pos?.disks.some((d) => d.nextBlock > 0)) {
          assert.match(resumed.stderr, new RegExp(`resuming cycle ${pos.cycle}\\b`), 'the agent continued the interrupted cycle');
          assert.equal(id, pos.cycle, 'the interrupted cycle is the one committed');
        }
        if (/resuming cycle/.test(resumed.stderr)) resumes++;
        await restoreEqual(a, id, copy, dir);
        for (const f of copy) await rm(f);
      }
      process.stdout.write(`# random kill ${c + 1}/${cycles}, ${delay} ms into the cycle: ${outcome}\n`);
    }
    await restoreEqual(a, firstPoint, first, dir);
    await verifyClean(dataDir);
    await a.stop();
    process.stdout.write(`# random kills: ${kills} kills, ${resumes} interrupted cycles resumed\n`);
  });
});
