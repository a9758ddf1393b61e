import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, openSync, utimesSync, writeFileSync, writeSync, closeSync, readSync } from 'node:fs';
import { INDEX_HEADER_BYTES, type BlockIndex } from '@ferry/protocol';
import { ChunkStore } from '../store/chunk-store.js';
import { IndexFiles } from '../store/index-file.js';
import { ChunkGuard } from './guard.js';
import { GcRepository } from './repository.js';
import { GcService } from './service.js';
import { addCycle, captureLog, makeTestData, putChunk, setState, STORE_MODES, storedChunkBytes, writeEntries, writeIndex, type StoreMode, type TestData } from './test-store.js';

/** A store that runs a hook when a sweep starts listing chunks: between the mark phase and the sweep. */
class HookedStore extends ChunkStore {
  beforeList: (() => Promise<void>) | undefined;
  listings = 0;
  listingNow = 0;
  maxListing = 0;

  override async *keys(): AsyncGenerator<string> {
    this.listings++;
    this.listingNow++;
    this.maxListing = Math.max(this.maxListing, this.listingNow);
    try {
      const hook = this.beforeList;
      this.beforeList = undefined;
      await hook?.();
      yield* super.keys();
    } finally {
      this.listingNow--;
    }
  }
}

/** Index files that run a hook before the first index the mark phase loads. */
class HookedIndexes extends IndexFiles {
  beforeFirstLoad: (() => Promise<void>) | undefined;

  override async load(cycleId: number, diskId: number): Promise<BlockIndex> {
    const hook = this.beforeFirstLoad;
    this.beforeFirstLoad = undefined;
    await hook?.();
    return super.load(cycleId, diskId);
  }
}

interface Setup {
  mode: StoreMode;
  t: TestData;
  store: HookedStore;
  indexes: HookedIndexes;
  guard: ChunkGuard;
  gc: GcService;
  lines: Record<string, unknown>[];
}

/** Registers the test once per store mode: plain files named by chunk id, and sealed files named by keyed id. */
function gcTest(name: string, fn: (s: Setup) => Promise<void>): void {
  for (const mode of STORE_MODES) void test(`${name} (${mode})`, () => withGc(mode, fn));
}

async function withGc(mode: StoreMode, fn: (s: Setup) => Promise<void>): Promise<void> {
  const t = await makeTestData(
    (root, keys) => new HookedStore(root, keys),
    (root, keys) => new HookedIndexes(root, keys),
    mode,
  );
  try {
    const guard = new ChunkGuard();
    const { log, lines } = captureLog();
    const store = t.chunks as HookedStore;
    const indexes = t.indexes as HookedIndexes;
    await fn({ mode, t, store, indexes, guard, gc: new GcService(new GcRepository(t.db), store, indexes, guard, log), lines });
  } finally {
    t.close();
  }
}

gcTest('run() deletes a chunk no point names and keeps the chunks a committed point names', async ({ mode, t, store, gc, lines }) => {
  const kept = await putChunk(store, 'kept');
  const garbage = await putChunk(store, 'garbage');
  const point = addCycle(t, 'committed');
  await writeIndex(t, point, [kept, null, kept, null], { seal: true });

  const report = await gc.run();
  assert.equal(await store.has(kept), true);
  assert.equal(await store.has(garbage), false);
  assert.equal(report.chunksBefore, 2);
  assert.equal(report.chunksReferenced, 1);
  assert.equal(report.chunksDeleted, 1);
  assert.equal(report.bytesFreed, storedChunkBytes(mode, 'plaintext of chunk garbage'.length));
  assert.equal(report.chunksProtected, 0);
  assert.equal(lines.filter((l) => l.msg === 'garbage collection done').length, 1);
});

gcTest('run() keeps the chunks named by the entries a running cycle has written so far', async ({ t, store, guard, gc }) => {
  const written = await putChunk(store, 'written');
  const garbage = await putChunk(store, 'garbage');
  const cycle = addCycle(t, 'running');
  guard.cycleStarted(cycle);
  await writeIndex(t, cycle, [written]);

  const report = await gc.run();
  assert.equal(await store.has(written), true);
  assert.equal(await store.has(garbage), false);
  assert.equal(report.chunksReferenced, 1);
});

gcTest('run() keeps chunks a running cycle touched before and during the collection, even if the cycle commits during the sweep', async ({ t, store, guard, gc }) => {
  const cycle = addCycle(t, 'running');
  guard.cycleStarted(cycle);
  await writeIndex(t, cycle, []);
  // Reported present by /chunks/missing before the collection; its block is not written yet.
  const before = await putChunk(store, 'touched before');
  guard.touch(store.keyOf(before));
  const during = await putChunk(store, 'touched during');
  const garbage = await putChunk(store, 'garbage');
  store.beforeList = async () => {
    // After the mark phase read the cycle's index: the cycle writes its blocks, commits, and another touch comes.
    await writeEntries(t, cycle, 0, [before, null, null, null]);
    await t.indexes.seal(cycle, t.diskId, await t.indexes.loadForCommit(cycle, t.diskId));
    setState(t, cycle, 'committed');
    guard.cycleEnded(cycle);
    guard.touch(store.keyOf(during));
  };

  const report = await gc.run();
  assert.equal(await store.has(before), true);
  assert.equal(await store.has(during), true);
  assert.equal(await store.has(garbage), false);
  assert.equal(report.chunksProtected, 2);
  assert.equal(report.chunksDeleted, 1);

  // Next run: the point names `before`; nothing protects `during` any more.
  const again = await gc.run();
  assert.equal(await store.has(before), true);
  assert.equal(await store.has(during), false);
  assert.equal(again.chunksReferenced, 1);
  assert.equal(guard.remembered, 0);
});

gcTest('run() re-reads a point committed while marking, so chunks it took over from a point deleted meanwhile stay', async ({ t, store, indexes, gc }) => {
  const shared = await putChunk(store, 'unchanged block');
  const old = addCycle(t, 'committed');
  await writeIndex(t, old, [shared], { seal: true });
  let next = 0;
  indexes.beforeFirstLoad = async () => {
    // Before the mark phase reads the old point: a new cycle compares against it, reuses its chunk without
    // touching it, commits, and retention deletes the old point.
    next = addCycle(t, 'committed', { previous: old });
    await writeIndex(t, next, [shared, null, null, null], { seal: true });
    setState(t, old, 'deleted');
    await t.indexes.removeCycle(old);
  };

  const report = await gc.run();
  assert.ok(next > 0);
  assert.equal(await store.has(shared), true);
  assert.equal(report.chunksReferenced, 1);
  assert.equal(report.chunksDeleted, 0);
});

gcTest('run() removes index directories of abandoned, deleted and unknown cycles, and keeps those still in use', async ({ t, guard, gc }) => {
  const abandoned = addCycle(t, 'abandoned');
  const deleted = addCycle(t, 'deleted');
  const compared = addCycle(t, 'deleted');
  const point = addCycle(t, 'committed');
  const running = addCycle(t, 'running', { previous: compared });
  guard.cycleStarted(running);
  for (const c of [abandoned, deleted, compared, running]) await writeIndex(t, c, []);
  await writeIndex(t, point, [null, null, null, null], { seal: true });
  await t.indexes.create(999, t.diskId, { blockSize: 65536, diskSize: 65536, blockCount: 1 });

  const report = await gc.run();
  assert.equal(report.indexDirsRemoved, 3);
  assert.deepEqual(await t.indexes.cycleIds(), [compared, point, running]);
});

gcTest('run() removes temporary chunk files older than an hour and keeps fresh ones', async ({ store, gc }) => {
  const id = await putChunk(store, 'garbage');
  const stale = `${store.pathOf(id)}.tmp-0123456789ab`;
  const fresh = `${store.pathOf(id)}.tmp-ba9876543210`;
  writeFileSync(stale, 'x');
  writeFileSync(fresh, 'x');
  const past = new Date(Date.now() - 2 * 3600_000);
  utimesSync(stale, past, past);

  const report = await gc.run();
  assert.equal(report.tempFilesRemoved, 1);
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(fresh), true);
});

gcTest('a damaged index of a committed point makes run() fail with INDEX_DAMAGED, having deleted nothing', async ({ t, store, gc, lines }) => {
  const named = await putChunk(store, 'named by the damaged point');
  const garbage = await putChunk(store, 'garbage');
  const point = addCycle(t, 'committed');
  await writeIndex(t, point, [named, null, null, null], { seal: true });
  const abandoned = addCycle(t, 'abandoned');
  await writeIndex(t, abandoned, []);
  const stale = `${store.pathOf(garbage)}.tmp-0123456789ab`;
  writeFileSync(stale, 'x');
  const past = new Date(Date.now() - 2 * 3600_000);
  utimesSync(stale, past, past);
  // One flipped byte in the chunk id of block 0.
  const fd = openSync(t.indexes.pathOf(point, t.diskId), 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, INDEX_HEADER_BYTES + 20);
  writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, INDEX_HEADER_BYTES + 20); // inverted: a constant would match 1 byte in 256
  closeSync(fd);

  await assert.rejects(gc.run(), (err: Error & { code?: string }) => err.code === 'INDEX_DAMAGED' && /deleted nothing/.test(err.message));
  assert.equal(await store.has(named), true);
  assert.equal(await store.has(garbage), true);
  assert.equal(existsSync(stale), true);
  assert.deepEqual(await t.indexes.cycleIds(), [point, abandoned]);
  assert.equal(lines.filter((l) => l.msg === 'garbage collection failed').length, 1);
});

gcTest('a committed point whose index file is missing makes run() fail with INDEX_DAMAGED', async ({ t, store, gc }) => {
  const garbage = await putChunk(store, 'garbage');
  addCycle(t, 'committed');
  await assert.rejects(gc.run(), { code: 'INDEX_DAMAGED' });
  assert.equal(await store.has(garbage), true);
});

gcTest('a running cycle whose index was never made names nothing and does not stop the collection', async ({ t, store, guard, gc }) => {
  const garbage = await putChunk(store, 'garbage');
  guard.cycleStarted(addCycle(t, 'running'));
  const report = await gc.run();
  assert.equal(report.chunksDeleted, 1);
  assert.equal(await store.has(garbage), false);
});

gcTest('concurrent run() calls do not run in parallel; calls during a run share one more run', async ({ store, gc }) => {
  const garbage = await putChunk(store, 'garbage');
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  store.beforeList = () => held;
  const first = gc.run();
  const second = gc.run();
  const third = gc.run();
  assert.equal(second, third);
  release();
  const [a, b] = await Promise.all([first, second]);
  assert.equal(store.listings, 2);
  assert.equal(store.maxListing, 1);
  assert.equal(a.chunksDeleted, 1);
  assert.equal(b.chunksDeleted, 0);
  assert.equal(await store.has(garbage), false);
});
