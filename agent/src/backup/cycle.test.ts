import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  API_PREFIX,
  FerryError,
  FrameType,
  initHashing,
  readFrames,
  type ApplianceClient,
  type CycleState,
  type RequestOptions,
  type UploadResponse,
} from '@ferry/protocol';
import type { Disk } from '../disk/block-reader.js';
import { UsageMap } from '../disk/usage-map.js';
import { runCycle, type CycleProgress, type SourceDisk } from './cycle.js';
import { LiveThrottle, type ThrottleClock } from './throttle.js';

/*
 * The appliance here is a stand-in that keeps only what runCycle talks to (cycle position, acknowledged
 * blocks, commit), so a stop can be placed at an exact block or frame. The real appliance is covered by the
 * integration tests (test/integration), which run `ferry-agent run` against it.
 */

const MIB = 1024 * 1024;
const BLOCKS = 12;

before(() => initHashing());

class FakeAppliance {
  nextBlock = 0;
  commits = 0;
  uploads = 0;
  /** Called for each frame of an upload as it arrives. */
  onFrame: (() => void) | null = null;

  constructor(private readonly disk: Disk) {}

  asClient(): ApplianceClient {
    return this as unknown as ApplianceClient;
  }

  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const reply = await this.#route(path, opts);
    return reply as T;
  }

  async #route(path: string, opts: RequestOptions): Promise<unknown> {
    if (path === `${API_PREFIX}/cycles`) {
      const state: CycleState = {
        id: 1,
        sourceId: 1,
        state: 'running',
        resumed: this.nextBlock > 0,
        disks: [{ slot: 0, diskId: 1, key: this.disk.path, size: this.disk.size, blockSize: MIB, blockCount: BLOCKS, nextBlock: this.nextBlock, previousPointId: null }],
      };
      return state;
    }
    if (path === `${API_PREFIX}/chunks/missing`) return { missing: (opts.body as { ids: string[] }).ids };
    if (path === `${API_PREFIX}/cycles/1/stream`) {
      this.uploads++;
      let blocks = 0;
      // Like the real appliance: blocks count once the stream ended whole.
      for await (const f of readFrames(opts.stream as AsyncIterable<Buffer>)) {
        this.onFrame?.();
        if (f.type === FrameType.Block) blocks++;
      }
      this.nextBlock += blocks;
      const r: UploadResponse = { chunksStored: 0, chunksDeduplicated: 0, bytesStored: 0, disks: [{ slot: 0, nextBlock: this.nextBlock }] };
      return r;
    }
    if (path === `${API_PREFIX}/cycles/1/commit`) {
      this.commits++;
      return { pointId: 1, name: 'CYCLE_1' };
    }
    throw new Error(`unexpected request ${path}`);
  }
}

/** An in-memory disk of random blocks that counts its reads and those in flight. */
function memoryDisk(): { disk: Disk; reads: () => number; maxInFlight: () => number; onRead: (fn: (n: number) => void) => void } {
  const data = randomBytes(BLOCKS * MIB);
  let reads = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let hook: (n: number) => void = () => undefined;
  const disk: Disk = {
    path: '/dev/fake',
    size: data.length,
    sectorSize: 512,
    read: async (offset, length) => {
      reads++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      hook(reads);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return Buffer.from(data.subarray(offset, offset + length));
    },
    close: () => Promise.resolve(),
  };
  return { disk, reads: () => reads, maxInFlight: () => maxInFlight, onRead: (fn) => (hook = fn) };
}

function source(disk: Disk): SourceDisk {
  const usage = new UsageMap();
  usage.add(0, disk.size);
  return { key: disk.path, disk, layout: null, usage };
}

/** Time moves only when a throttle sleeps: the test runs at full speed whatever the rate. */
function sleepyClock(): ThrottleClock {
  let t = 0;
  return {
    now: () => t,
    sleep: (ms) => {
      t += ms;
      return Promise.resolve();
    },
  };
}

void test('runCycle() stops between blocks once its signal aborts, commits nothing, and a later run resumes', async () => {
  const m = memoryDisk();
  const appliance = new FakeAppliance(m.disk);
  const stop = new AbortController();
  m.onRead((n) => {
    if (n === 7) stop.abort('pause');
  });
  const opts = { client: appliance.asClient(), disks: [source(m.disk)], batchBytes: 2 * MIB, readAhead: 1 };
  await assert.rejects(runCycle({ ...opts, signal: stop.signal }), (err: unknown) => err instanceof FerryError && err.code === 'CYCLE_STOPPED' && /\(pause\)/.test(err.message));
  assert.equal(appliance.commits, 0);
  const acknowledged = appliance.nextBlock;
  assert.ok(acknowledged > 0 && acknowledged < BLOCKS, `acknowledged ${acknowledged} blocks before the stop`);

  const result = await runCycle(opts);
  assert.equal(result.resumed, true);
  assert.equal(appliance.commits, 1);
  assert.equal(appliance.nextBlock, BLOCKS);
  assert.equal(result.bytesRead, (BLOCKS - acknowledged) * MIB);
});

void test('runCycle() stopped in the middle of an upload ends the stream with CYCLE_STOPPED', async () => {
  const m = memoryDisk();
  const appliance = new FakeAppliance(m.disk);
  const stop = new AbortController();
  appliance.onFrame = () => stop.abort('cancel');
  await assert.rejects(
    runCycle({ client: appliance.asClient(), disks: [source(m.disk)], batchBytes: 4 * MIB, signal: stop.signal }),
    (err: unknown) => err instanceof FerryError && err.code === 'CYCLE_STOPPED',
  );
  assert.equal(appliance.uploads, 1);
  assert.equal(appliance.nextBlock, 0, 'the broken-off upload acknowledged nothing');
  assert.equal(appliance.commits, 0);
});

void test('runCycle() with an already aborted signal sends nothing', async () => {
  const m = memoryDisk();
  const appliance = new FakeAppliance(m.disk);
  await assert.rejects(runCycle({ client: appliance.asClient(), disks: [source(m.disk)], signal: AbortSignal.abort('pause') }), /stopped/);
  assert.equal(m.reads(), 0);
  assert.equal(appliance.uploads, 0);
});

void test('runCycle() paces every byte it sends through the network throttle and reads at the queue depth', async () => {
  const m = memoryDisk();
  const appliance = new FakeAppliance(m.disk);
  const throttle = new LiveThrottle({ networkMbps: 100, diskPercent: 100, queueDepth: 3 }, sleepyClock());
  let taken = 0;
  const take = throttle.network.take.bind(throttle.network);
  throttle.network.take = (bytes, signal) => {
    taken += bytes;
    return take(bytes, signal);
  };
  const result = await runCycle({ client: appliance.asClient(), disks: [source(m.disk)], batchBytes: 2 * MIB, throttle });
  assert.equal(taken, result.bytesSent);
  assert.ok(result.bytesSent > BLOCKS * MIB, 'random blocks do not compress');
  assert.equal(m.maxInFlight(), 3);
});

void test('runCycle() reports progress from start to end with the phase and per-disk counts', async () => {
  const m = memoryDisk();
  const appliance = new FakeAppliance(m.disk);
  const reports: CycleProgress[] = [];
  await runCycle({ client: appliance.asClient(), disks: [source(m.disk)], batchBytes: 2 * MIB, onProgress: (p) => reports.push(p) });
  const first = reports[0]!;
  const last = reports.at(-1)!;
  assert.deepEqual({ ...first, disks: undefined }, {
    cycleId: 1,
    phase: 'Comparing',
    resumed: false,
    bytesDone: 0,
    bytesTotal: BLOCKS * MIB,
    bytesChanged: 0,
    bytesSent: 0,
    disks: undefined,
  });
  assert.ok(reports.some((r) => r.phase === 'Transferring'));
  assert.equal(last.bytesDone, BLOCKS * MIB);
  assert.equal(last.bytesChanged, BLOCKS * MIB);
  assert.deepEqual(last.disks, [{ slot: 0, key: '/dev/fake', blocksDone: BLOCKS, blockCount: BLOCKS, bytesDone: BLOCKS * MIB, bytesTotal: BLOCKS * MIB }]);
});
