import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { initHashing, xxh64 } from '../hash.js';
import { Codec, Compressor, CodecError, decompressInto } from '../codec.js';
import { CHUNK_MAGIC, INDEX_MAGIC, STREAM_MAGIC } from '../constants.js';
import { CHUNK_HEADER_BYTES, ChunkFormatError, decodeChunkHeader, encodeChunkHeader } from './chunk-file.js';
import {
  BlockIndex,
  BlockKind,
  blockCountFor,
  blockLength,
  decodeIndexEntry,
  decodeIndexHeader,
  encodeIndexEntry,
  encodeIndexHeader,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  IndexFormatError,
  type IndexHeader,
} from './block-index.js';
import {
  encodeBlockFrame,
  encodeChunkFrame,
  encodeEndFrame,
  encodeStreamHeader,
  FrameType,
  MAX_FRAME_BYTES,
  readFrames,
  StreamFormatError,
  type Frame,
} from './frame-stream.js';

/*
 * The expected bytes below were written by hand from the tables in docs/spec/*.md, not produced by the code
 * under test. Hash values come from published test vectors: SHA-256("abc") and XXH64("abc", seed 0) =
 * 0x44bc2cf5ad770999. The index header checksums were computed with an independent XXH64 implementation.
 * If one of these tests fails, a format changed: bump its version instead of editing the expected bytes.
 */

const ABC = Buffer.from('abc', 'ascii');
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const ABC_XXH64 = 0x44bc2cf5ad770999n;
const ABC_XXH64_LE = '990977adf52cbc44';
const ZERO8 = '00'.repeat(8);

function hex(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

before(async () => {
  await initHashing();
});

// ---------------------------------------------------------------------------------------------- magic numbers

test('magic numbers are FRYC, FRYI and FRYS', () => {
  assert.equal(CHUNK_MAGIC.toString('hex'), '46525943');
  assert.equal(INDEX_MAGIC.toString('hex'), '46525949');
  assert.equal(STREAM_MAGIC.toString('hex'), '46525953');
});

test('the hash vectors the pinned bytes rely on hold', () => {
  assert.equal(createHash('sha256').update(ABC).digest('hex'), ABC_SHA256);
  assert.equal(xxh64(ABC), ABC_XXH64);
  assert.equal(xxh64(Buffer.alloc(0)), 0xef46db3751d8e999n);
});

// ------------------------------------------------------------------------------------------------ chunk file

const CHUNK_HEADER_ABC_RAW = hex(
  '46525943', // magic FRYC
  '01', // version
  '00', // codec: none
  '0000', // reserved
  '03000000', // rawLength 3
  '03000000', // payloadLength 3
  ABC_XXH64_LE, // payload xxh64
  ABC_SHA256, // id
  ZERO8, // reserved
);

test('encodeChunkHeader() writes the v1 header byte for byte', () => {
  const h = encodeChunkHeader(Buffer.from(ABC_SHA256, 'hex'), Codec.None, 3, ABC);
  assert.equal(h.length, CHUNK_HEADER_BYTES);
  assert.equal(h.toString('hex'), CHUNK_HEADER_ABC_RAW.toString('hex'));
});

test('encodeChunkHeader() keeps raw length and payload length apart', () => {
  // Not a real LZ4 payload: the header does not look inside it, and distinct lengths show which field is which.
  const h = encodeChunkHeader(Buffer.from(ABC_SHA256, 'hex'), Codec.Lz4Block, 1024 * 1024, ABC);
  const expected = hex('46525943', '01', '01', '0000', '00001000', '03000000', ABC_XXH64_LE, ABC_SHA256, ZERO8);
  assert.equal(h.toString('hex'), expected.toString('hex'));
});

test('decodeChunkHeader() reads back every field of the header', () => {
  const h = decodeChunkHeader(CHUNK_HEADER_ABC_RAW);
  assert.equal(h.codec, Codec.None);
  assert.equal(h.rawLength, 3);
  assert.equal(h.payloadLength, 3);
  assert.equal(h.payloadXxh64, ABC_XXH64);
  assert.equal(h.id.toString('hex'), ABC_SHA256);
});

test('encodeChunkHeader() refuses an id that is not 32 bytes', () => {
  assert.throws(() => encodeChunkHeader(Buffer.alloc(31), Codec.None, 3, ABC), ChunkFormatError);
});

function withByte(b: Buffer, at: number, value: number): Buffer {
  const c = Buffer.from(b);
  c[at] = value;
  return c;
}

function flip(b: Buffer, at: number): void {
  b[at] = b[at]! ^ 0x80;
}

test('decodeChunkHeader() refuses an unknown codec', () => {
  assert.throws(() => decodeChunkHeader(withByte(CHUNK_HEADER_ABC_RAW, 5, 2)), /unknown codec 2/);
});

test('decodeChunkHeader() refuses a bad magic, another version and a truncated header', () => {
  assert.throws(() => decodeChunkHeader(withByte(CHUNK_HEADER_ABC_RAW, 3, 0x44)), /bad magic/);
  assert.throws(() => decodeChunkHeader(withByte(CHUNK_HEADER_ABC_RAW, 4, 2)), /version 2/);
  assert.throws(() => decodeChunkHeader(CHUNK_HEADER_ABC_RAW.subarray(0, 63)), /truncated/);
});

test('decodeChunkHeader() refuses lengths above 64 MiB', () => {
  const big = Buffer.from(CHUNK_HEADER_ABC_RAW);
  big.writeUInt32LE(64 * 1024 * 1024 + 1, 8);
  assert.throws(() => decodeChunkHeader(big), /out of range/);
  const bigPayload = Buffer.from(CHUNK_HEADER_ABC_RAW);
  bigPayload.writeUInt32LE(64 * 1024 * 1024 + 1, 12);
  assert.throws(() => decodeChunkHeader(bigPayload), /out of range/);
});

// ----------------------------------------------------------------------------------------------- block index

/** 10 GiB + 512 KiB at 1 MiB blocks: 10 241 blocks, the last one half long. */
const GEOMETRY = { blockSize: 1024 * 1024, diskSize: 10 * 1024 ** 3 + 512 * 1024, blockCount: 10241 };

const INDEX_HEADER_SEALED = hex(
  '46525949', // magic FRYI
  '0100', // version 1
  '4000', // header bytes 64
  '00001000', // block size 1 MiB
  '3000', // entry bytes 48
  '0100', // flags: sealed
  '0000088002000000', // disk size 0x2_8008_0000
  '0128000000000000', // block count 10241
  'efcdab8967452301', // entries xxh64
  '00'.repeat(16), // reserved
  'e075be73e601797e', // xxh64 of bytes 0..55
);

const INDEX_HEADER_RUNNING = hex(
  '46525949',
  '0100',
  '4000',
  '00001000',
  '3000',
  '0000', // flags: not sealed
  '0000088002000000',
  '0128000000000000',
  ZERO8, // entries xxh64 not yet computed
  '00'.repeat(16),
  '618bbed7b280e095',
);

test('encodeIndexHeader() writes the v1 header byte for byte', () => {
  const sealed = encodeIndexHeader({ ...GEOMETRY, sealed: true, entriesXxh64: 0x0123456789abcdefn });
  assert.equal(sealed.length, INDEX_HEADER_BYTES);
  assert.equal(sealed.toString('hex'), INDEX_HEADER_SEALED.toString('hex'));
  const running = encodeIndexHeader({ ...GEOMETRY, sealed: false, entriesXxh64: 0n });
  assert.equal(running.toString('hex'), INDEX_HEADER_RUNNING.toString('hex'));
});

test('decodeIndexHeader() reads back every field of the header', () => {
  assert.deepEqual(decodeIndexHeader(INDEX_HEADER_SEALED), { ...GEOMETRY, sealed: true, entriesXxh64: 0x0123456789abcdefn });
  assert.deepEqual(decodeIndexHeader(INDEX_HEADER_RUNNING), { ...GEOMETRY, sealed: false, entriesXxh64: 0n });
});

test('decodeIndexHeader() refuses a header with a flipped byte', () => {
  for (let at = 0; at < INDEX_HEADER_BYTES; at++) {
    const damaged = withByte(INDEX_HEADER_SEALED, at, INDEX_HEADER_SEALED[at]! ^ 0x01);
    assert.throws(() => decodeIndexHeader(damaged), IndexFormatError, `flipping byte ${at} went unnoticed`);
  }
});

/** A header with a valid checksum over whatever the test wrote, to reach the checks behind the checksum. */
function resealed(b: Buffer): Buffer {
  const c = Buffer.from(b);
  c.writeBigUInt64LE(xxh64(c.subarray(0, 56)), 56);
  return c;
}

test('decodeIndexHeader() refuses another version, other sizes and inconsistent geometry even when the checksum matches', () => {
  const v2 = Buffer.from(INDEX_HEADER_SEALED);
  v2.writeUInt16LE(2, 4);
  assert.throws(() => decodeIndexHeader(resealed(v2)), /unsupported index version 2/);
  const entrySize = Buffer.from(INDEX_HEADER_SEALED);
  entrySize.writeUInt16LE(64, 12);
  assert.throws(() => decodeIndexHeader(resealed(entrySize)), /not the v1 size/);
  const count = Buffer.from(INDEX_HEADER_SEALED);
  count.writeBigUInt64LE(10240n, 24);
  assert.throws(() => decodeIndexHeader(resealed(count)), /geometry is inconsistent/);
  const tiny = Buffer.from(INDEX_HEADER_SEALED);
  tiny.writeUInt32LE(32 * 1024, 8);
  tiny.writeBigUInt64LE(BigInt(blockCountFor(GEOMETRY.diskSize, 32 * 1024)), 24);
  assert.throws(() => decodeIndexHeader(resealed(tiny)), /geometry is inconsistent/);
  assert.throws(() => decodeIndexHeader(INDEX_HEADER_SEALED.subarray(0, 63)), /truncated/);
});

test('encodeIndexHeader() refuses block sizes that are not a multiple of 4096 within 64 KiB to 16 MiB', () => {
  const geometry = (blockSize: number): IndexHeader => ({
    blockSize,
    diskSize: GEOMETRY.diskSize,
    blockCount: blockCountFor(GEOMETRY.diskSize, blockSize),
    sealed: false,
    entriesXxh64: 0n,
  });
  assert.throws(() => encodeIndexHeader(geometry(60 * 1024)), IndexFormatError);
  assert.throws(() => encodeIndexHeader(geometry(17 * 1024 * 1024)), IndexFormatError);
  assert.throws(() => encodeIndexHeader(geometry(1024 * 1024 + 512)), IndexFormatError);
  assert.doesNotThrow(() => encodeIndexHeader(geometry(64 * 1024)));
  assert.doesNotThrow(() => encodeIndexHeader(geometry(16 * 1024 * 1024)));
});

test('encodeIndexHeader() refuses a block count that does not match the disk size', () => {
  assert.throws(() => encodeIndexHeader({ ...GEOMETRY, blockCount: 10240, sealed: false, entriesXxh64: 0n }), /block count/);
});

test('blockLength() makes only the last block short', () => {
  assert.equal(blockLength(GEOMETRY, 0), 1024 * 1024);
  assert.equal(blockLength(GEOMETRY, 10239), 1024 * 1024);
  assert.equal(blockLength(GEOMETRY, 10240), 512 * 1024);
});

const DATA_ENTRY = hex(
  '03', // kind Data
  '00000000000000', // reserved
  ABC_XXH64_LE, // xxh64 of the plaintext
  ABC_SHA256, // chunk id
);

test('encodeIndexEntry() writes a Data entry byte for byte', () => {
  const e = encodeIndexEntry({ kind: BlockKind.Data, xxh64: ABC_XXH64, chunkId: Buffer.from(ABC_SHA256, 'hex') });
  assert.equal(e.length, INDEX_ENTRY_BYTES);
  assert.equal(e.toString('hex'), DATA_ENTRY.toString('hex'));
});

test('encodeIndexEntry() writes a Zero entry as its kind and 47 zero bytes, whatever hash and id it is given', () => {
  const e = encodeIndexEntry({ kind: BlockKind.Zero, xxh64: ABC_XXH64, chunkId: Buffer.from(ABC_SHA256, 'hex') });
  assert.equal(e.toString('hex'), '02' + '00'.repeat(47));
  assert.equal(encodeIndexEntry({ kind: BlockKind.Unused, xxh64: 0n, chunkId: Buffer.alloc(32) }).toString('hex'), '01' + '00'.repeat(47));
  assert.equal(encodeIndexEntry({ kind: BlockKind.Pending, xxh64: 0n, chunkId: Buffer.alloc(32) }).toString('hex'), '00'.repeat(48));
});

test('encodeIndexEntry() writes in place without touching the neighbouring entries', () => {
  const buf = Buffer.alloc(3 * INDEX_ENTRY_BYTES, 0xee);
  encodeIndexEntry({ kind: BlockKind.Data, xxh64: ABC_XXH64, chunkId: Buffer.from(ABC_SHA256, 'hex') }, buf, INDEX_ENTRY_BYTES);
  assert.equal(buf.subarray(0, 48).toString('hex'), 'ee'.repeat(48));
  assert.equal(buf.subarray(48, 96).toString('hex'), DATA_ENTRY.toString('hex'));
  assert.equal(buf.subarray(96).toString('hex'), 'ee'.repeat(48));
});

test('encodeIndexEntry() refuses a Data entry without a 32-byte chunk id', () => {
  assert.throws(() => encodeIndexEntry({ kind: BlockKind.Data, xxh64: 1n, chunkId: Buffer.alloc(16) }), IndexFormatError);
});

test('decodeIndexEntry() reads a Data entry and refuses an unknown kind', () => {
  const e = decodeIndexEntry(DATA_ENTRY);
  assert.equal(e.kind, BlockKind.Data);
  assert.equal(e.xxh64, ABC_XXH64);
  assert.equal(e.chunkId.toString('hex'), ABC_SHA256);
  assert.throws(() => decodeIndexEntry(withByte(DATA_ENTRY, 0, 4)), /unknown block kind 4/);
});

/** A small sealed index: four 64 KiB blocks of a disk 3.5 blocks long, one of each recorded kind. */
function smallIndex(): Buffer {
  const blockSize = 64 * 1024;
  const diskSize = 3 * blockSize + blockSize / 2;
  const entries = Buffer.alloc(4 * INDEX_ENTRY_BYTES);
  const id = Buffer.from(ABC_SHA256, 'hex');
  encodeIndexEntry({ kind: BlockKind.Data, xxh64: ABC_XXH64, chunkId: id }, entries, 0);
  encodeIndexEntry({ kind: BlockKind.Zero, xxh64: 0n, chunkId: id }, entries, INDEX_ENTRY_BYTES);
  encodeIndexEntry({ kind: BlockKind.Unused, xxh64: 0n, chunkId: id }, entries, 2 * INDEX_ENTRY_BYTES);
  encodeIndexEntry({ kind: BlockKind.Data, xxh64: 7n, chunkId: id }, entries, 3 * INDEX_ENTRY_BYTES);
  const header = encodeIndexHeader({ blockSize, diskSize, blockCount: 4, sealed: true, entriesXxh64: xxh64(entries) });
  return Buffer.concat([header, entries]);
}

test('BlockIndex.parse() reads a sealed index', () => {
  const index = BlockIndex.parse(smallIndex());
  assert.equal(index.header.blockCount, 4);
  assert.deepEqual([0, 1, 2, 3].map((n) => index.kind(n)), [BlockKind.Data, BlockKind.Zero, BlockKind.Unused, BlockKind.Data]);
  assert.equal(index.xxh64(0), ABC_XXH64);
  assert.equal(index.xxh64(3), 7n);
  assert.equal(index.chunkIdHex(3), ABC_SHA256);
  assert.equal(blockLength(index.header, 3), 32 * 1024);
});

test('BlockIndex.parse() refuses an index whose entries checksum does not match', () => {
  const file = smallIndex();
  flip(file, INDEX_HEADER_BYTES + 3 * INDEX_ENTRY_BYTES + 8);
  assert.throws(() => BlockIndex.parse(file), /entries checksum mismatch/);
});

test('BlockIndex.parse() refuses a truncated index and one with trailing bytes', () => {
  const file = smallIndex();
  assert.throws(() => BlockIndex.parse(file.subarray(0, file.length - 1)), /truncated/);
  assert.throws(() => BlockIndex.parse(Buffer.concat([file, Buffer.alloc(1)])), /truncated/);
});

test('BlockIndex.parse() does not check the entries of an unsealed index, which change while the cycle runs', () => {
  const file = smallIndex();
  file.set(encodeIndexHeader({ ...decodeIndexHeader(file), sealed: false, entriesXxh64: 0n }), 0);
  flip(file, INDEX_HEADER_BYTES + 8);
  assert.equal(BlockIndex.parse(file).header.sealed, false);
});

// ---------------------------------------------------------------------------------------------- frame stream

test('encodeStreamHeader() writes the 16-byte stream header', () => {
  assert.equal(encodeStreamHeader().toString('hex'), '46525953' + '0100' + '00'.repeat(10));
});

test('encodeChunkFrame() writes the frame header and fixed part byte for byte and passes the payload through', () => {
  const payload = Buffer.from('abc');
  const parts = encodeChunkFrame(Buffer.from(ABC_SHA256, 'hex'), Codec.Lz4Block, 1024 * 1024, payload);
  assert.equal(parts.length, 3);
  const expectedPrefix = hex(
    '01', // type CHUNK
    '000000', // reserved
    '2b000000', // length 40 + 3
    ABC_SHA256, // id
    '01', // codec LZ4 block
    '000000', // reserved
    '00001000', // rawLength 1 MiB
  );
  assert.equal(Buffer.concat([parts[0]!, parts[1]!]).toString('hex'), expectedPrefix.toString('hex'));
  assert.equal(parts[2], payload, 'the payload is sent as given, not copied');
});

test('encodeBlockFrame() writes the 64-byte BLOCK frame byte for byte', () => {
  const f = encodeBlockFrame({ disk: 2, kind: BlockKind.Data, blockNo: 0x0102030405, xxh64: ABC_XXH64, chunkId: Buffer.from(ABC_SHA256, 'hex') });
  const expected = hex(
    '02', // type BLOCK
    '000000', // reserved
    '38000000', // length 56
    '0200', // disk slot 2
    '03', // kind Data
    '0000000000', // reserved
    '0504030201000000', // block number
    ABC_XXH64_LE, // xxh64
    ABC_SHA256, // chunk id
  );
  assert.equal(f.length, 64);
  assert.equal(f.toString('hex'), expected.toString('hex'));
});

test('encodeEndFrame() writes the 16-byte END frame byte for byte', () => {
  assert.equal(encodeEndFrame(0x0201).toString('hex'), '7f000000' + '08000000' + '0102000000000000');
});

/** A plain-data view of a frame, so frames can be compared after the reader has moved on. */
function asData(f: Frame): Record<string, unknown> {
  switch (f.type) {
    case FrameType.Chunk:
      return { type: 'chunk', id: f.id.toString('hex'), codec: f.codec, rawLength: f.rawLength, payload: f.payload.toString('hex') };
    case FrameType.Block:
      return { type: 'block', disk: f.disk, kind: f.kind, blockNo: f.blockNo, xxh64: f.xxh64, chunkId: f.chunkId.toString('hex') };
    case FrameType.End:
      return { type: 'end', frameCount: f.frameCount };
  }
}

async function collect(parts: (Buffer | Uint8Array | string)[], maxFrameBytes?: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const f of readFrames(Readable.from(parts), maxFrameBytes)) out.push(asData(f));
  return out;
}

/** Splits `b` into pieces of the sizes `next()` returns. */
function split(b: Buffer, next: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; ) {
    const n = Math.min(b.length - at, next());
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Deterministic piece sizes (a small LCG), so a failure can be replayed. */
function sizes(seed: number, max: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 1 + (s % max);
  };
}

const CHUNK_PAYLOAD = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
const CHUNK_ID = createHash('sha256').update(CHUNK_PAYLOAD).digest();

/** A valid upload-shaped stream: one CHUNK frame, three BLOCK frames, END. */
function sampleStream(): Buffer {
  return Buffer.concat([
    encodeStreamHeader(),
    ...encodeChunkFrame(CHUNK_ID, Codec.None, CHUNK_PAYLOAD.length, CHUNK_PAYLOAD),
    encodeBlockFrame({ disk: 0, kind: BlockKind.Data, blockNo: 5, xxh64: 42n, chunkId: CHUNK_ID }),
    encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo: 6, xxh64: 0n, chunkId: Buffer.alloc(32) }),
    encodeBlockFrame({ disk: 1, kind: BlockKind.Unused, blockNo: 0, xxh64: 0n, chunkId: Buffer.alloc(32) }),
    encodeEndFrame(4),
  ]);
}

const SAMPLE_FRAMES = [
  { type: 'chunk', id: CHUNK_ID.toString('hex'), codec: Codec.None, rawLength: 3000, payload: CHUNK_PAYLOAD.toString('hex') },
  { type: 'block', disk: 0, kind: BlockKind.Data, blockNo: 5, xxh64: 42n, chunkId: CHUNK_ID.toString('hex') },
  { type: 'block', disk: 0, kind: BlockKind.Zero, blockNo: 6, xxh64: 0n, chunkId: '00'.repeat(32) },
  { type: 'block', disk: 1, kind: BlockKind.Unused, blockNo: 0, xxh64: 0n, chunkId: '00'.repeat(32) },
  { type: 'end', frameCount: 4 },
];

test('readFrames() reads back what the encoders wrote', async () => {
  assert.deepEqual(await collect([sampleStream()]), SAMPLE_FRAMES);
});

test('readFrames() reassembles frames split across arbitrary byte boundaries', async () => {
  const stream = sampleStream();
  assert.deepEqual(await collect(split(stream, () => 1)), SAMPLE_FRAMES, '1-byte pieces');
  for (const seed of [1, 2, 3, 4, 5]) {
    assert.deepEqual(await collect(split(stream, sizes(seed, 97))), SAMPLE_FRAMES, `random pieces, seed ${seed}`);
  }
  const asUint8 = split(stream, sizes(9, 500)).map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  assert.deepEqual(await collect(asUint8), SAMPLE_FRAMES, 'Uint8Array pieces');
});

test('readFrames() accepts a stream of no frames but END', async () => {
  assert.deepEqual(await collect([encodeStreamHeader(), encodeEndFrame(0)]), [{ type: 'end', frameCount: 0 }]);
});

test('readFrames() refuses a stream without an END frame', async () => {
  const stream = sampleStream();
  const withoutEnd = stream.subarray(0, stream.length - 16);
  await assert.rejects(collect([withoutEnd]), /without an END frame/);
  await assert.rejects(collect([encodeStreamHeader()]), /without an END frame/);
});

test('readFrames() refuses bytes after END', async () => {
  await assert.rejects(collect([sampleStream(), Buffer.from([0])]), /bytes after the END frame/);
  await assert.rejects(collect([sampleStream(), encodeEndFrame(4)]), /bytes after the END frame/);
});

test('readFrames() refuses an END frame whose count does not match the frames before it', async () => {
  const stream = sampleStream();
  const wrong = Buffer.concat([stream.subarray(0, stream.length - 16), encodeEndFrame(3)]);
  await assert.rejects(collect([wrong]), /END frame counts 3 frames, stream had 4/);
});

test('readFrames() refuses a stream cut inside a frame or inside its header', async () => {
  const stream = sampleStream();
  await assert.rejects(collect([stream.subarray(0, 16 + 8 + 100)]), StreamFormatError);
  await assert.rejects(collect([stream.subarray(0, 16 + 3)]), StreamFormatError);
  await assert.rejects(collect([stream.subarray(0, 7)]), StreamFormatError);
});

test('readFrames() refuses an empty input, a bad magic and another version', async () => {
  await assert.rejects(collect([]), /empty stream/);
  await assert.rejects(collect([withByte(sampleStream(), 0, 0x47)]), /bad magic/);
  await assert.rejects(collect([withByte(sampleStream(), 4, 2)]), /unsupported frame stream version 2/);
});

test('readFrames() refuses an unknown frame type', async () => {
  const frame = hex('03000000', '00000000');
  await assert.rejects(collect([encodeStreamHeader(), frame, encodeEndFrame(1)]), /unknown frame type 0x3/);
});

test('readFrames() refuses a frame longer than its limit before reading the payload', async () => {
  const head = Buffer.alloc(8);
  head.writeUInt8(FrameType.Chunk, 0);
  head.writeUInt32LE(MAX_FRAME_BYTES + 1, 4);
  await assert.rejects(collect([encodeStreamHeader(), head]), /exceeds the \d+-byte limit/);
  await assert.rejects(collect([sampleStream()], 1000), /frame of 3040 bytes exceeds the 1000-byte limit/);
});

test('readFrames() refuses malformed CHUNK, BLOCK and END frames', async () => {
  const chunk = Buffer.concat(encodeChunkFrame(CHUNK_ID, Codec.None, 3, ABC));
  const expectFail = (frame: Buffer, pattern: RegExp) => assert.rejects(collect([encodeStreamHeader(), frame, encodeEndFrame(1)]), pattern);
  await expectFail(withByte(chunk, 8 + 32, 9), /unknown codec 9/);
  const hugeRaw = Buffer.from(chunk);
  hugeRaw.writeUInt32LE(64 * 1024 * 1024 + 1, 8 + 36);
  await expectFail(hugeRaw, /raw length \d+ is too large/);
  const shortChunk = hex('01000000', '27000000', '00'.repeat(39));
  await expectFail(shortChunk, /shorter than its fixed part/);
  const block = encodeBlockFrame({ disk: 0, kind: BlockKind.Data, blockNo: 1, xxh64: 1n, chunkId: CHUNK_ID });
  await expectFail(withByte(block, 8 + 2, 4), /unknown block kind 4/);
  const farBlock = Buffer.from(block);
  farBlock.writeBigUInt64LE(2n ** 53n, 8 + 8);
  await expectFail(farBlock, /block number out of range/);
  const longBlock = Buffer.concat([block, Buffer.alloc(1)]);
  longBlock.writeUInt32LE(57, 4);
  await expectFail(longBlock, /block frame is 57 bytes/);
  const shortEnd = hex('7f000000', '04000000', '00000000');
  await assert.rejects(collect([encodeStreamHeader(), shortEnd]), /end frame has the wrong length/);
});

// -------------------------------------------------------------------------------------------------- codec

test('Compressor stores incompressible data raw and round-trips compressible data', () => {
  const c = new Compressor();
  const noise = randomBytes(64 * 1024);
  const raw = c.compress(noise);
  assert.equal(raw.codec, Codec.None);
  assert.equal(raw.payload, noise, 'incompressible input is passed through, not copied');

  const text = Buffer.alloc(1024 * 1024, 'Ferry moves servers between datacenters. ');
  const packed = c.compress(text);
  assert.equal(packed.codec, Codec.Lz4Block);
  assert.ok(packed.payload.length < text.length / 10, `compressed to ${packed.payload.length} bytes`);
  const payload = Buffer.from(packed.payload);
  const out = decompressInto(packed.codec, payload, Buffer.alloc(text.length));
  assert.ok(out.equals(text));
});

test('decompressInto() refuses a payload that does not decode to exactly the expected length', () => {
  const c = new Compressor();
  const text = Buffer.alloc(64 * 1024, 'abcd');
  const payload = Buffer.from(c.compress(text).payload);
  assert.throws(() => decompressInto(Codec.Lz4Block, payload, Buffer.alloc(text.length - 1)), CodecError);
  assert.throws(() => decompressInto(Codec.Lz4Block, payload, Buffer.alloc(text.length + 1)), CodecError);
  assert.throws(() => decompressInto(Codec.Lz4Block, Buffer.from([0xff, 0xff, 0xff]), Buffer.alloc(100)), CodecError);
  assert.throws(() => decompressInto(Codec.None, ABC, Buffer.alloc(4)), CodecError);
});

test('a chunk file round-trips: header checks, payload checksum and plaintext hash agree', () => {
  const c = new Compressor();
  const plain = Buffer.alloc(256 * 1024, 'block ');
  const id = createHash('sha256').update(plain).digest();
  const { codec, payload } = c.compress(plain);
  const file = Buffer.concat([encodeChunkHeader(id, codec, plain.length, payload), payload]);
  const h = decodeChunkHeader(file);
  const stored = file.subarray(CHUNK_HEADER_BYTES);
  assert.equal(stored.length, h.payloadLength);
  assert.equal(xxh64(stored), h.payloadXxh64);
  const back = decompressInto(h.codec, stored, Buffer.alloc(h.rawLength));
  assert.ok(createHash('sha256').update(back).digest().equals(h.id));
});
