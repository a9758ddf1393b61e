import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  API_PREFIX,
  BlockIndex,
  BlockKind,
  chunkIdOf,
  encodeIndexEntry,
  encodeIndexHeader,
  FerryError,
  FrameType,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  initHashing,
  readFrames,
  xxh64,
  type ApplianceClient,
  type CycleState,
  type ProgressSink,
  type RequestOptions,
  type UploadResponse,
} from '@ferry/protocol';
import type { Disk } from '../disk/block-reader.js';
import { UsageMap } from '../disk/usage-map.js';
import { runCycle } from './cycle.js';
import { PREVIOUS_INDEX_RANGE_ENTRIES, PreviousIndex } from './previous-index.js';

/*
 * The appliance here is a stand-in serving a previous point's index by ranges as the real index route does
 * (GET …/index?from=&to= → header + entries), so a reply can be damaged at an exact range and pass. The real
 * route and the real agent run together in the integration tests (backup-restore, jobs, crash).
 */

before(() => initHashing());

const MIB = 1024 * 1024;
const POINT = 7;
const DISK = 1;
const INDEX_PATH = `${API_PREFIX}/points/${POINT}/disks/${DISK}/index`;

/** A sealed index for `blocks` (null: an Unused block). */
function indexOf(blocks: (Buffer | null)[], blockSize: number, diskSize: number): Buffer {
  const entries = Buffer.alloc(blocks.length * INDEX_ENTRY_BYTES);
  blocks.forEach((b, n) => {
    const e = b ? { kind: BlockKind.Data, xxh64: xxh64(b), chunkId: chunkIdOf(b) } : { kind: BlockKind.Unused, xxh64: 0n, chunkId: Buffer.alloc(32) };
    encodeIndexEntry(e, entries, n * INDEX_ENTRY_BYTES);
  });
  return Buffer.concat([encodeIndexHeader({ blockSize, diskSize, blockCount: blocks.length, sealed: true, entriesXxh64: xxh64(entries) }), entries]);
}

/** Serves `file` by ranges like the appliance's index route; `damage` may change a reply (request number, from). */
class IndexServer {
  requests = 0;
  largestReply = 0;
  damage: ((request: number, from: number, reply: Buffer) => void) | null = null;

  constructor(public file: Buffer) {}

  bytes(path: string): Promise<Buffer> {
    const m = new RegExp(`^${INDEX_PATH}\\?from=(\\d+)&to=(\\d+)$`).exec(path);
    if (!m) return Promise.reject(new Error(`unexpected request ${path}`));
    const from = Number(m[1]);
    const to = Number(m[2]);
    const count = (this.file.length - INDEX_HEADER_BYTES) / INDEX_ENTRY_BYTES;
    if (from >= to || to > count) return Promise.reject(new FerryError('BAD_REQUEST', `entry range [${from}, ${to}) outside ${count}`));
    const reply = Buffer.concat([this.file.subarray(0, INDEX_HEADER_BYTES), this.file.subarray(INDEX_HEADER_BYTES + from * INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES + to * INDEX_ENTRY_BYTES)]);
    this.requests++;
    this.damage?.(this.requests, from, reply);
    this.largestReply = Math.max(this.largestReply, reply.length);
    return Promise.resolve(reply);
  }
}

/** An index of `count` blocks of 64 KiB with a made-up entry for each: the reader's behaviour, not a disk's. */
function bigIndex(count: number): Buffer {
  const entries = Buffer.alloc(count * INDEX_ENTRY_BYTES);
  for (let n = 0; n < count; n++) encodeIndexEntry({ kind: n % 4 === 0 ? BlockKind.Zero : BlockKind.Data, xxh64: BigInt(n + 1), chunkId: Buffer.alloc(32, n % 251) }, entries, n * INDEX_ENTRY_BYTES);
  return Buffer.concat([encodeIndexHeader({ blockSize: 65536, diskSize: count * 65536, blockCount: count, sealed: true, entriesXxh64: xxh64(entries) }), entries]);
}

const asClient = (s: IndexServer): ApplianceClient => s as unknown as ApplianceClient;
const isDamage = (err: unknown): boolean => err instanceof FerryError && err.code === 'PREVIOUS_INDEX_DAMAGED';

void test('PreviousIndex reads every entry by ranges of at most 16384 entries, twice, from any starting block', async () => {
  const count = 3 * PREVIOUS_INDEX_RANGE_ENTRIES + 5;
  const server = new IndexServer(bigIndex(count));
  const whole = BlockIndex.parse(server.file);
  const prev = await PreviousIndex.open(asClient(server), POINT, DISK);
  // First pass: 1 + 4 requests; the second has asked for its first reply only.
  assert.equal(server.requests, 6);
  for (let n = 20_000; n < count; n += 7) assert.deepEqual(await prev.entry(n), whole.entry(n));
  assert.equal(await prev.entry(count), null, 'past the last block of the previous point');
  await prev.finish();
  await prev.close();
  assert.equal(server.requests, 10);
  assert.equal(server.largestReply, INDEX_HEADER_BYTES + PREVIOUS_INDEX_RANGE_ENTRIES * INDEX_ENTRY_BYTES);
});

void test('PreviousIndex refuses an index whose entries do not match its checksum before handing out any entry', async () => {
  const server = new IndexServer(bigIndex(40_000));
  server.damage = (request, from, reply) => {
    if (from === 16_385) reply[INDEX_HEADER_BYTES + 9]! ^= 1; // the same damage in every reply of that range
  };
  await assert.rejects(PreviousIndex.open(asClient(server), POINT, DISK), (err: Error) => isDamage(err) && /checksum mismatch/.test(err.message) && /previous point 7 \(disk 1\)/.test(err.message));
});

void test('PreviousIndex refuses a range that differs in the second pass before handing out any entry of it', async () => {
  const server = new IndexServer(bigIndex(40_000));
  // The first pass is requests 1–4; request 7 is the second pass's range [16385, 32769).
  server.damage = (request, _from, reply) => {
    if (request === 7) reply[INDEX_HEADER_BYTES + 100 * INDEX_ENTRY_BYTES + 20]! ^= 1;
  };
  const whole = BlockIndex.parse(server.file);
  const prev = await PreviousIndex.open(asClient(server), POINT, DISK);
  assert.deepEqual(await prev.entry(16_384), whole.entry(16_384), 'the range before is intact and used');
  await assert.rejects(prev.entry(16_385), (err: Error) => isDamage(err) && /entries \[16385, 32769\) differ/.test(err.message));
  await prev.close();
});

void test('PreviousIndex refuses a truncated reply, a changed header and an unsealed index', async () => {
  const short = new IndexServer(bigIndex(20_000));
  short.bytes = async function (this: IndexServer, path: string) {
    const reply = await IndexServer.prototype.bytes.call(this, path);
    return this.requests === 2 ? reply.subarray(0, reply.length - 1) : reply;
  };
  await assert.rejects(PreviousIndex.open(asClient(short), POINT, DISK), (err: Error) => isDamage(err) && /has 786495 bytes, not 786496/.test(err.message));

  const other = new IndexServer(bigIndex(20_000));
  const otherHeader = bigIndex(20_001).subarray(0, INDEX_HEADER_BYTES);
  other.damage = (request, _from, reply) => {
    if (request === 2) otherHeader.copy(reply);
  };
  await assert.rejects(PreviousIndex.open(asClient(other), POINT, DISK), (err: Error) => isDamage(err) && /header .* differs/.test(err.message));

  const file = bigIndex(100);
  encodeIndexHeader({ ...BlockIndex.parse(file).header, sealed: false, entriesXxh64: 0n }).copy(file);
  await assert.rejects(PreviousIndex.open(asClient(new IndexServer(file)), POINT, DISK), (err: Error) => isDamage(err) && /not sealed/.test(err.message));
});

// runCycle against a previous point: a stand-in appliance that keeps what it is sent.

const BLOCKS = 12;

class IncrementalAppliance extends IndexServer {
  readonly stored = new Set<string>();
  readonly recorded = new Map<number, { kind: BlockKind; xxh64: bigint; chunkId: string }>();
  chunksSent = 0;
  nextBlock = 0;
  commits = 0;

  constructor(
    private readonly disk: Disk,
    previous: Buffer,
  ) {
    super(previous);
    const index = BlockIndex.parse(previous);
    for (let n = 0; n < index.header.blockCount; n++) if (index.kind(n) === BlockKind.Data) this.stored.add(index.chunkIdHex(n));
  }

  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    if (path === `${API_PREFIX}/cycles`) {
      const state: CycleState = {
        id: 1,
        sourceId: 1,
        state: 'running',
        resumed: this.nextBlock > 0,
        disks: [{ slot: 0, diskId: DISK, key: this.disk.path, size: this.disk.size, blockSize: MIB, blockCount: BLOCKS, nextBlock: this.nextBlock, previousPointId: POINT }],
      };
      return state as T;
    }
    if (path === `${API_PREFIX}/chunks/missing`) return { missing: (opts.body as { ids: string[] }).ids.filter((id) => !this.stored.has(id)) } as T;
    if (path === `${API_PREFIX}/cycles/1/stream`) {
      const blocks: { blockNo: number; kind: BlockKind; xxh64: bigint; chunkId: string }[] = [];
      for await (const f of readFrames(opts.stream as AsyncIterable<Buffer>)) {
        if (f.type === FrameType.Chunk) {
          this.stored.add(f.id.toString('hex'));
          this.chunksSent++;
        } else if (f.type === FrameType.Block) {
          assert.equal(f.blockNo, this.nextBlock + blocks.length, 'blocks in order from the next unacknowledged one');
          blocks.push({ blockNo: f.blockNo, kind: f.kind, xxh64: f.xxh64, chunkId: f.chunkId.toString('hex') });
        }
      }
      for (const b of blocks) this.recorded.set(b.blockNo, b);
      this.nextBlock += blocks.length;
      const r: UploadResponse = { chunksStored: 0, chunksDeduplicated: 0, bytesStored: 0, disks: [{ slot: 0, nextBlock: this.nextBlock }] };
      return r as T;
    }
    if (path === `${API_PREFIX}/cycles/1/commit`) {
      this.commits++;
      return { pointId: 8, name: 'CYCLE_2' } as T;
    }
    throw new Error(`unexpected request ${path}`);
  }
}

/** A disk whose previous point is `previous`, with blocks 3 and 9 rewritten since. */
function changedDisk(): { disk: Disk; previous: Buffer; now: Buffer[] } {
  const before = Array.from({ length: BLOCKS }, () => randomBytes(MIB));
  const now = before.map((b, n) => (n === 3 || n === 9 ? randomBytes(MIB) : b));
  const data = Buffer.concat(now);
  const disk: Disk = {
    path: '/dev/fake',
    size: data.length,
    sectorSize: 512,
    read: async (offset, length) => {
      await new Promise((r) => setImmediate(r));
      return Buffer.from(data.subarray(offset, offset + length));
    },
    close: () => Promise.resolve(),
  };
  return { disk, previous: indexOf(before, MIB, data.length), now };
}

function sourceOf(disk: Disk): { key: string; disk: Disk; layout: null; usage: UsageMap } {
  const usage = new UsageMap();
  usage.add(0, disk.size);
  return { key: disk.path, disk, layout: null, usage };
}

function assertRecordsMatch(appliance: IncrementalAppliance, now: Buffer[]): void {
  assert.equal(appliance.recorded.size, BLOCKS);
  for (const [n, b] of now.entries()) {
    const r = appliance.recorded.get(n)!;
    assert.deepEqual(r, { blockNo: n, kind: BlockKind.Data, xxh64: xxh64(b), chunkId: chunkIdOf(b).toString('hex') }, `block ${n}`);
  }
}

void test('runCycle() compares against the previous index read by ranges and sends only the changed blocks', async () => {
  const { disk, previous, now } = changedDisk();
  const appliance = new IncrementalAppliance(disk, previous);
  const result = await runCycle({ client: appliance as unknown as ApplianceClient, disks: [sourceOf(disk)], batchBytes: 2 * MIB });
  assert.equal(appliance.commits, 1);
  assert.equal(result.bytesChanged, 2 * MIB);
  assert.equal(appliance.chunksSent, 2);
  assertRecordsMatch(appliance, now);
  // Two passes of two requests each (entry 0, then the rest).
  assert.equal(appliance.requests, 4);
});

void test('runCycle() with a previous index damaged in the second pass stops using it before the damaged range and finishes without trusting it', async () => {
  const { disk, previous, now } = changedDisk();
  const appliance = new IncrementalAppliance(disk, previous);
  // Request 4 is the second pass's range [1, 12): block 0 was compared with an intact entry, nothing after it.
  appliance.damage = (request, _from, reply) => {
    if (request === 4) reply[INDEX_HEADER_BYTES + 5 * INDEX_ENTRY_BYTES + 8]! ^= 1;
  };
  let log = '';
  const progress: ProgressSink = { write: (s: string) => (log += s), isTTY: false };
  const result = await runCycle({ client: appliance as unknown as ApplianceClient, disks: [sourceOf(disk)], batchBytes: 2 * MIB, progress });
  assert.match(log, /index of the previous point 7 \(disk 1\) arrived damaged: entries \[1, 12\) differ/);
  assert.match(log, /resending from the last acknowledged block without trusting the previous point/);
  assert.equal(appliance.commits, 1);
  assertRecordsMatch(appliance, now);
  assert.equal(appliance.chunksSent, 2, 'the untrusting attempt asks which chunks are missing: only the changed ones are sent');
  assert.equal(appliance.requests, 4, 'the second attempt does not read the previous index');
  assert.ok(result.point.id === 8);
});

void test('runCycle() with a previous index that fails its checksum compares nothing against it', async () => {
  const { disk, previous, now } = changedDisk();
  const appliance = new IncrementalAppliance(disk, previous);
  appliance.damage = (_request, from, reply) => {
    if (from === 1) reply[reply.length - 1]! ^= 1;
  };
  const result = await runCycle({ client: appliance as unknown as ApplianceClient, disks: [sourceOf(disk)], batchBytes: 2 * MIB });
  assert.equal(appliance.commits, 1);
  assert.equal(result.bytesChanged, BLOCKS * MIB, 'every block was hashed in full: nothing was taken from the damaged index');
  assert.equal(appliance.chunksSent, 2);
  assertRecordsMatch(appliance, now);
});
