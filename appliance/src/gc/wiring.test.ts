import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { BlockKind, encodeBlockFrame, encodeEndFrame, encodeStreamHeader } from '@ferry/protocol';
import { CycleRepository } from '../cycles/repository.js';
import { CycleService, type CycleHooks } from '../cycles/service.js';
import { SourceRepository } from '../sources/repository.js';
import { ChunkGuard } from './guard.js';
import { GcRepository } from './repository.js';
import { GcService } from './service.js';
import { addCycle, BLOCK, captureLog, makeTestData, putChunk, STORE_MODES } from './test-store.js';

const noJobs: CycleHooks = {
  beforeCycleStart: () => null,
  cycleStarted: () => undefined,
  cycleCommitted: () => Promise.resolve(),
};

/** An upload body as the HTTP layer hands it over: header, frames, END. */
function stream(frames: Buffer[]): AsyncIterable<Buffer> {
  return Readable.from([encodeStreamHeader(), ...frames, encodeEndFrame(frames.length)]);
}

for (const mode of STORE_MODES) void test(`a chunk CycleService.missing() reported present survives a collection until the cycle commits a point naming it (${mode})`, async () => {
  const t = await makeTestData(undefined, undefined, mode);
  try {
    const { log } = captureLog();
    const guard = new ChunkGuard();
    const cycles = new CycleService(new CycleRepository(t.db), new SourceRepository(t.db), t.chunks, t.indexes, BLOCK, log, noJobs, guard);
    const gc = new GcService(new GcRepository(t.db), t.chunks, t.indexes, guard, log);
    const present = await putChunk(t.chunks, 'left by an abandoned cycle');
    const garbage = await putChunk(t.chunks, 'garbage');

    const cycle = await cycles.start(t.sourceId, { disks: [{ key: 'sdb', size: 2 * BLOCK }] });
    assert.deepEqual(await cycles.missing([present]), []);
    const during = await gc.run();
    assert.equal(during.chunksProtected, 1);
    assert.equal(await t.chunks.has(present), true);
    assert.equal(await t.chunks.has(garbage), false);

    await cycles.ingest(
      cycle.id,
      stream([
        encodeBlockFrame({ disk: 0, kind: BlockKind.Data, blockNo: 0, xxh64: 1n, chunkId: Buffer.from(present, 'hex') }),
        encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo: 1, xxh64: 0n, chunkId: Buffer.alloc(32) }),
      ]),
    );
    await cycles.commit(cycle.id, { stats: { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 0 } });
    assert.equal(guard.isRunning(cycle.id), false);
    assert.equal(guard.remembered, 0);
    const after = await gc.run();
    assert.equal(after.chunksReferenced, 1);
    assert.equal(await t.chunks.has(present), true);
  } finally {
    t.close();
  }
});

void test('CycleService guards the cycles already running when it is constructed', async () => {
  const t = await makeTestData();
  try {
    const running = addCycle(t, 'running');
    const committed = addCycle(t, 'committed');
    const guard = new ChunkGuard();
    new CycleService(new CycleRepository(t.db), new SourceRepository(t.db), t.chunks, t.indexes, BLOCK, captureLog().log, noJobs, guard);
    assert.equal(guard.isRunning(running), true);
    assert.equal(guard.isRunning(committed), false);
  } finally {
    t.close();
  }
});
