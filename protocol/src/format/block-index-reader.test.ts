import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createXxh64, initHashing, xxh64 } from '../hash.js';
import {
  BlockIndex,
  BlockIndexReader,
  BlockKind,
  encodeIndexEntry,
  encodeIndexHeader,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  IndexFormatError,
} from './block-index.js';

before(() => initHashing());

const BLOCK = 1024 * 1024;

/** A sealed index of `count` blocks: every third Zero, every fifth Unused, the others Data with ids derived from n. */
function makeIndex(count: number, sealed = true): Buffer {
  const entries = Buffer.alloc(count * INDEX_ENTRY_BYTES);
  for (let n = 0; n < count; n++) {
    const kind = n % 3 === 0 ? BlockKind.Zero : n % 5 === 0 ? BlockKind.Unused : BlockKind.Data;
    const chunkId = createHash('sha256').update(String(n)).digest();
    encodeIndexEntry({ kind, xxh64: BigInt(n) * 7919n + 1n, chunkId }, entries, n * INDEX_ENTRY_BYTES);
  }
  const header = encodeIndexHeader({ blockSize: BLOCK, diskSize: count * BLOCK - 4096, blockCount: count, sealed, entriesXxh64: sealed ? xxh64(entries) : 0n });
  return Buffer.concat([header, entries]);
}

/** The file in pieces of `size` bytes (not aligned to entries, so entries and the header straddle pieces). */
async function* pieces(file: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < file.length; at += size) {
    await Promise.resolve(); // a piece at a time, as from a network
    yield file.subarray(at, Math.min(file.length, at + size));
  }
}

async function readAll(reader: BlockIndexReader, from = 0): Promise<void> {
  for (let n = from; n < reader.header.blockCount; n++) await reader.entry(n);
}

test('createXxh64() over pieces equals xxh64() of the whole', () => {
  const data = makeIndex(1000);
  const h = createXxh64();
  for (let at = 0; at < data.length; at += 777) h.update(data.subarray(at, at + 777));
  assert.equal(h.digest(), xxh64(data));
});

test('BlockIndexReader gives every entry of a valid index as BlockIndex does, whatever the piece size', async () => {
  const file = makeIndex(5000);
  const whole = BlockIndex.parse(file);
  for (const size of [1, 47, 48, 64, 1000, 65536, file.length]) {
    const reader = await BlockIndexReader.open(pieces(file, size));
    assert.deepEqual(reader.header, whole.header);
    // A bounded check for the 1-byte pieces (slow), every entry for the others.
    const step = size === 1 ? 97 : 1;
    for (let n = 0; n < whole.header.blockCount; n += step) assert.deepEqual(await reader.entry(n), whole.entry(n), `entry ${n}, pieces of ${size}`);
    await reader.finish();
    assert.ok(reader.complete);
    await reader.close();
  }
});

test('BlockIndexReader starts mid-way: the entries before are skipped but still checked', async () => {
  const file = makeIndex(20_000);
  const whole = BlockIndex.parse(file);
  const reader = await BlockIndexReader.open(Readable.from(pieces(file, 4096)));
  assert.deepEqual(await reader.entry(12_345), whole.entry(12_345));
  assert.deepEqual(await reader.entry(12_345), whole.entry(12_345), 'the same entry twice');
  assert.deepEqual(await reader.entry(19_999), whole.entry(19_999));
  assert.ok(reader.complete, 'the last entry was read, so the checksum was checked');
  await assert.rejects(reader.entry(12_000), RangeError, 'no going back');
  await reader.close();

  // Damage in the skipped part is still found.
  const damaged = Buffer.from(file);
  damaged[INDEX_HEADER_BYTES + 100 * INDEX_ENTRY_BYTES + 9]! ^= 1;
  const r2 = await BlockIndexReader.open(pieces(damaged, 4096));
  await assert.rejects(readAll(r2, 15_000), (err: Error) => err instanceof IndexFormatError && /checksum mismatch/.test(err.message));
  await r2.close();
});

test('BlockIndexReader refuses a truncated stream, in the header or in the entries', async () => {
  const file = makeIndex(3000);
  await assert.rejects(BlockIndexReader.open(pieces(file.subarray(0, 40), 16)), (err: Error) => err instanceof IndexFormatError && /truncated.*40 header bytes/.test(err.message));
  const reader = await BlockIndexReader.open(pieces(file.subarray(0, file.length - 1), 1000));
  await assert.rejects(readAll(reader), (err: Error) => err instanceof IndexFormatError && /truncated: the stream ended after 143999 of 144000 entry bytes/.test(err.message));
  await reader.close();
  // finish() reads to the end, so a truncation after the last entry asked for is found too.
  const r2 = await BlockIndexReader.open(pieces(file.subarray(0, file.length - INDEX_ENTRY_BYTES * 10), 1000));
  await r2.entry(10);
  await assert.rejects(r2.finish(), /truncated/);
  await r2.close();
});

test('BlockIndexReader refuses bytes after the last entry, even in a piece of their own', async () => {
  const file = makeIndex(100);
  const extra = Buffer.concat([file, Buffer.alloc(1)]);
  await assert.rejects(BlockIndexReader.open(pieces(extra, extra.length)), /bytes after its 100 entries/);
  const reader = await BlockIndexReader.open(
    (async function* () {
      yield* pieces(file, file.length);
      yield Buffer.alloc(48);
    })(),
  ).catch((err: unknown) => err);
  assert.ok(reader instanceof IndexFormatError && /bytes after its 100 entries/.test(reader.message), String(reader));
});

test('BlockIndexReader refuses a sealed index whose entries do not match the checksum, before handing out the last piece', async () => {
  const file = makeIndex(2000);
  file[file.length - 1]! ^= 0x80; // the last entry's chunk id
  const reader = await BlockIndexReader.open(pieces(file, 8192));
  // Entries of earlier pieces are handed out (the checksum cannot be known yet) ...
  await reader.entry(0);
  // ... but not one of the piece that completes the index.
  await assert.rejects(reader.entry(1999), (err: Error) => err instanceof IndexFormatError && /checksum mismatch/.test(err.message));
  await reader.close();
});

test('BlockIndexReader does not check the entries of an unsealed index', async () => {
  const file = makeIndex(500, false);
  file[file.length - 1]! ^= 1;
  const reader = await BlockIndexReader.open(pieces(file, 1000));
  await reader.finish();
  assert.equal(reader.header.sealed, false);
});

test('BlockIndexReader reads an index of no block', async () => {
  const file = encodeIndexHeader({ blockSize: BLOCK, diskSize: 0, blockCount: 0, sealed: true, entriesXxh64: xxh64(Buffer.alloc(0)) });
  const reader = await BlockIndexReader.open(pieces(file, 64));
  assert.ok(reader.complete);
  await assert.rejects(reader.entry(0), RangeError);
});

test('BlockIndexReader keeps a Readable paused: a 100 000-entry index read slowly is never buffered beyond one piece', async () => {
  const count = 100_000;
  const file = makeIndex(count);
  const PIECE = 16 * 1024;
  const HIGH_WATER = 64 * 1024;
  let produced = 0;
  let readCalls = 0;
  const stream = new Readable({
    highWaterMark: HIGH_WATER,
    read() {
      readCalls++;
      if (produced >= file.length) {
        this.push(null);
        return;
      }
      const piece = file.subarray(produced, Math.min(file.length, produced + PIECE));
      produced += piece.length;
      this.push(piece);
    },
  });
  const reader = await BlockIndexReader.open(stream);
  let maxAhead = 0;
  let maxHeld = 0;
  let maxQueued = 0;
  for (let n = 0; n < count; n++) {
    await reader.entry(n);
    // "Slowly": the consumer yields to the event loop between entries, so a stream that ignored back-pressure
    // would keep producing meanwhile.
    if (n % 64 === 0) await new Promise((r) => setImmediate(r));
    const consumed = INDEX_HEADER_BYTES + (n + 1) * INDEX_ENTRY_BYTES;
    maxAhead = Math.max(maxAhead, produced - consumed);
    maxHeld = Math.max(maxHeld, reader.bufferedBytes);
    maxQueued = Math.max(maxQueued, stream.readableLength);
  }
  await reader.finish();
  assert.ok(reader.complete);
  assert.ok(readCalls > file.length / PIECE, 'the stream was pulled piece by piece');
  // What was produced but not yet consumed: the stream's own buffer (up to its high-water mark, plus the piece
  // that crossed it) and the piece the reader holds (a Readable's iterator hands out its whole buffer at once, so
  // that piece is bounded by the same). Nowhere near the 4.8 MB index.
  const window = HIGH_WATER + PIECE;
  assert.ok(maxQueued <= window, `stream buffer peaked at ${maxQueued} bytes`);
  assert.ok(maxHeld <= window + INDEX_ENTRY_BYTES, `reader window peaked at ${maxHeld} bytes`);
  assert.ok(maxAhead <= 2 * window + INDEX_ENTRY_BYTES, `produced ahead of use peaked at ${maxAhead} bytes of ${file.length}`);
});

test('BlockIndexReader.close() stops a Readable source early', async () => {
  const file = makeIndex(10_000);
  const stream = Readable.from(pieces(file, 4096));
  const reader = await BlockIndexReader.open(stream);
  await reader.entry(5);
  await reader.close();
  assert.ok(stream.destroyed);
});
