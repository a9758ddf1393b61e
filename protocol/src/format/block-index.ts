import { CHUNK_ID_BYTES, INDEX_MAGIC, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../constants.js';
import { createXxh64, xxh64, type Xxh64Stream } from '../hash.js';

/**
 * Per-disk block index v1: names, for every block of a disk, a chunk or zero/unused.
 * A 64-byte header, then one 48-byte entry per block. Spec: docs/spec/block-index.md
 */
export const INDEX_VERSION = 1;
export const INDEX_HEADER_BYTES = 64;
export const INDEX_ENTRY_BYTES = 48;
export const INDEX_FLAG_SEALED = 1;

export enum BlockKind {
  /** Not yet recorded: only in the index of a cycle that is still running. */
  Pending = 0,
  /** Not read: free in the filesystem, or outside every partition. Restored as zero or discarded. */
  Unused = 1,
  /** Read, and all zero after masking free filesystem blocks. Restored as zero. */
  Zero = 2,
  /** Holds data: the entry names the chunk. */
  Data = 3,
}

export function isBlockKind(v: number): v is BlockKind {
  return v >= (BlockKind.Pending as number) && v <= (BlockKind.Data as number);
}

export interface IndexHeader {
  blockSize: number;
  diskSize: number;
  blockCount: number;
  sealed: boolean;
  entriesXxh64: bigint;
}

export interface IndexEntry {
  kind: BlockKind;
  xxh64: bigint;
  /** 32 bytes; all zero unless kind is Data. */
  chunkId: Buffer;
}

export class IndexFormatError extends Error {}

export function blockCountFor(diskSize: number, blockSize: number): number {
  return Math.ceil(diskSize / blockSize);
}

/** Plaintext length of block `n`: the last block of a disk may be short. */
export function blockLength(header: Pick<IndexHeader, 'blockSize' | 'diskSize'>, n: number): number {
  return Math.min(header.blockSize, header.diskSize - n * header.blockSize);
}

export function encodeIndexHeader(h: IndexHeader): Buffer {
  if (h.blockSize < MIN_BLOCK_SIZE || h.blockSize > MAX_BLOCK_SIZE || h.blockSize % 4096 !== 0) {
    throw new IndexFormatError(`block size ${h.blockSize} is not a multiple of 4096 between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE}`);
  }
  if (h.blockCount !== blockCountFor(h.diskSize, h.blockSize)) {
    throw new IndexFormatError(`block count ${h.blockCount} does not match disk size ${h.diskSize}`);
  }
  const b = Buffer.alloc(INDEX_HEADER_BYTES);
  INDEX_MAGIC.copy(b, 0);
  b.writeUInt16LE(INDEX_VERSION, 4);
  b.writeUInt16LE(INDEX_HEADER_BYTES, 6);
  b.writeUInt32LE(h.blockSize, 8);
  b.writeUInt16LE(INDEX_ENTRY_BYTES, 12);
  b.writeUInt16LE(h.sealed ? INDEX_FLAG_SEALED : 0, 14);
  b.writeBigUInt64LE(BigInt(h.diskSize), 16);
  b.writeBigUInt64LE(BigInt(h.blockCount), 24);
  b.writeBigUInt64LE(h.entriesXxh64, 32);
  b.writeBigUInt64LE(xxh64(b.subarray(0, 56)), 56);
  return b;
}

export function decodeIndexHeader(b: Buffer): IndexHeader {
  if (b.length < INDEX_HEADER_BYTES) throw new IndexFormatError(`index is truncated: ${b.length} header bytes`);
  if (!b.subarray(0, 4).equals(INDEX_MAGIC)) throw new IndexFormatError('not a Ferry block index (bad magic)');
  const version = b.readUInt16LE(4);
  if (version !== INDEX_VERSION) throw new IndexFormatError(`unsupported index version ${version}`);
  if (b.readBigUInt64LE(56) !== xxh64(b.subarray(0, 56))) throw new IndexFormatError('index header checksum mismatch');
  if (b.readUInt16LE(6) !== INDEX_HEADER_BYTES || b.readUInt16LE(12) !== INDEX_ENTRY_BYTES) {
    throw new IndexFormatError('index header or entry size is not the v1 size');
  }
  const diskSize = Number(b.readBigUInt64LE(16));
  const blockSize = b.readUInt32LE(8);
  const blockCount = Number(b.readBigUInt64LE(24));
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || blockCount !== blockCountFor(diskSize, blockSize)) {
    throw new IndexFormatError(`index geometry is inconsistent (block size ${blockSize}, ${blockCount} blocks, disk ${diskSize} bytes)`);
  }
  return {
    blockSize,
    diskSize,
    blockCount,
    sealed: (b.readUInt16LE(14) & INDEX_FLAG_SEALED) !== 0,
    entriesXxh64: b.readBigUInt64LE(32),
  };
}

const ZERO_ID = Buffer.alloc(CHUNK_ID_BYTES);

export function encodeIndexEntry(e: IndexEntry, out: Buffer = Buffer.alloc(INDEX_ENTRY_BYTES), at = 0): Buffer {
  out.fill(0, at, at + INDEX_ENTRY_BYTES);
  out.writeUInt8(e.kind, at);
  if (e.kind === BlockKind.Data) {
    if (e.chunkId.length !== CHUNK_ID_BYTES) throw new IndexFormatError('a data entry needs a 32-byte chunk id');
    out.writeBigUInt64LE(e.xxh64, at + 8);
    e.chunkId.copy(out, at + 16);
  }
  return out;
}

export function decodeIndexEntry(b: Buffer, at = 0): IndexEntry {
  const kind = b.readUInt8(at);
  if (!isBlockKind(kind)) throw new IndexFormatError(`unknown block kind ${kind} at entry offset ${at}`);
  if (kind !== BlockKind.Data) return { kind, xxh64: 0n, chunkId: ZERO_ID };
  return { kind, xxh64: b.readBigUInt64LE(at + 8), chunkId: Buffer.from(b.subarray(at + 16, at + 48)) };
}

/** A whole index held in memory (48 bytes per block: 48 MiB per TiB at 1 MiB blocks). */
export class BlockIndex {
  constructor(
    readonly header: IndexHeader,
    readonly entries: Buffer,
  ) {
    if (entries.length !== header.blockCount * INDEX_ENTRY_BYTES) {
      throw new IndexFormatError(`index holds ${entries.length / INDEX_ENTRY_BYTES} entries, header says ${header.blockCount}`);
    }
  }

  static parse(file: Buffer): BlockIndex {
    const header = decodeIndexHeader(file);
    const entries = file.subarray(INDEX_HEADER_BYTES);
    if (entries.length !== header.blockCount * INDEX_ENTRY_BYTES) {
      throw new IndexFormatError(`index is truncated: ${entries.length} entry bytes for ${header.blockCount} blocks`);
    }
    if (header.sealed && xxh64(entries) !== header.entriesXxh64) {
      throw new IndexFormatError('index entries checksum mismatch: the index file is damaged');
    }
    return new BlockIndex(header, entries);
  }

  entry(n: number): IndexEntry {
    return decodeIndexEntry(this.entries, n * INDEX_ENTRY_BYTES);
  }

  kind(n: number): BlockKind {
    return this.entries.readUInt8(n * INDEX_ENTRY_BYTES);
  }

  /** Entry xxh64 without allocating: the change-detection hot path. */
  xxh64(n: number): bigint {
    return this.entries.readBigUInt64LE(n * INDEX_ENTRY_BYTES + 8);
  }

  chunkIdHex(n: number): string {
    const at = n * INDEX_ENTRY_BYTES + 16;
    return this.entries.toString('hex', at, at + CHUNK_ID_BYTES);
  }
}

const NO_BYTES = Buffer.alloc(0);

/**
 * A block index read from a byte stream (the whole v1 file, from its first byte) in block order, without holding
 * it: the agent's incremental cycle compares against the previous point's index as it reads the disk, and an
 * index is 48 bytes per block (192 MiB per TiB at 256 KiB blocks). It holds at most one piece of the stream plus
 * one partial entry, and asks the stream for the next piece only when an entry it was asked for is not in the
 * current one, so a Node Readable stays paused (back-pressure) while the caller is busy elsewhere.
 *
 * Entries are asked in increasing block order; those before the first block asked for are read and skipped.
 * Every entry byte goes into a streaming xxh64: once the last entry has arrived (before any entry of that last
 * piece is handed out) a sealed index is checked against `entriesXxh64`, and the stream must then end. A stream
 * that ends early, carries bytes after the last entry or fails the checksum throws IndexFormatError.
 */
export class BlockIndexReader {
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #hash: Xxh64Stream = createXxh64();
  /** Bytes received but not yet handed out: whole entries from entry #first on, then maybe part of one. */
  #pending: Buffer = NO_BYTES;
  /** Entry number of the first entry in #pending. */
  #first = 0;
  /** Entry bytes received so far (hashed). */
  #received = 0;
  #done = false;

  private constructor(
    source: AsyncIterator<Uint8Array>,
    readonly header: IndexHeader,
    rest: Buffer,
  ) {
    this.#source = source;
    this.#take(rest);
  }

  /** Reads and checks the header (decodeIndexHeader's rules); entries are read as they are asked for. */
  static async open(source: AsyncIterable<Uint8Array>): Promise<BlockIndexReader> {
    const it = source[Symbol.asyncIterator]();
    let head: Buffer = NO_BYTES;
    try {
      while (head.length < INDEX_HEADER_BYTES) {
        const r = await it.next();
        if (r.done) throw new IndexFormatError(`index is truncated: the stream ended after ${head.length} header bytes`);
        head = head.length === 0 ? Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength) : Buffer.concat([head, r.value]);
      }
      const header = decodeIndexHeader(head);
      const reader = new BlockIndexReader(it, header, head.subarray(INDEX_HEADER_BYTES));
      // The first piece may have brought every entry (or there are none).
      if (reader.#received === header.blockCount * INDEX_ENTRY_BYTES) await reader.#end();
      return reader;
    } catch (err) {
      await it.return?.();
      throw err;
    }
  }

  /** Entry bytes the reader holds right now (its window). */
  get bufferedBytes(): number {
    return this.#pending.length;
  }

  /** True once every entry has arrived and the checksum and the end of the stream were checked. */
  get complete(): boolean {
    return this.#done;
  }

  /** Entry `n`, which must not be below an entry asked for before (the entries before it are dropped). */
  async entry(n: number): Promise<IndexEntry> {
    if (!Number.isSafeInteger(n) || n < this.#first || n >= this.header.blockCount) {
      throw new RangeError(`entry ${n} asked for: entries are read in increasing order (next available ${this.#first}, ${this.header.blockCount} in all)`);
    }
    for (;;) {
      const whole = Math.floor(this.#pending.length / INDEX_ENTRY_BYTES);
      // Drop what is before n, so the window never grows past one piece of the stream.
      const drop = Math.min(n - this.#first, whole);
      if (drop > 0) {
        this.#pending = this.#pending.subarray(drop * INDEX_ENTRY_BYTES);
        this.#first += drop;
      }
      if (n < this.#first + whole - drop) return decodeIndexEntry(this.#pending, (n - this.#first) * INDEX_ENTRY_BYTES);
      await this.#pull();
    }
  }

  /** Reads every entry not read yet and checks the checksum and the end of the stream (if not done already). */
  async finish(): Promise<void> {
    while (!this.#done) {
      this.#first += Math.floor(this.#pending.length / INDEX_ENTRY_BYTES);
      this.#pending = this.#pending.subarray(this.#pending.length - (this.#pending.length % INDEX_ENTRY_BYTES));
      await this.#pull();
    }
    this.#pending = NO_BYTES;
  }

  /** Stops reading: a Readable source is destroyed, a generator finished. Safe to call more than once. */
  async close(): Promise<void> {
    this.#pending = NO_BYTES;
    await this.#source.return?.();
  }

  async #pull(): Promise<void> {
    if (this.#done) throw new IndexFormatError('index stream read past its end: this is a bug');
    const r = await this.#source.next();
    if (r.done) {
      const total = this.header.blockCount * INDEX_ENTRY_BYTES;
      throw new IndexFormatError(`index is truncated: the stream ended after ${this.#received} of ${total} entry bytes`);
    }
    this.#take(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
    if (this.#received === this.header.blockCount * INDEX_ENTRY_BYTES) await this.#end();
  }

  /** Takes a piece of entry bytes: hashed now, handed out later. */
  #take(piece: Buffer): void {
    if (piece.length === 0) return;
    const total = this.header.blockCount * INDEX_ENTRY_BYTES;
    if (this.#received + piece.length > total) {
      throw new IndexFormatError(`index has bytes after its ${this.header.blockCount} entries: ${this.#received + piece.length - total} too many`);
    }
    this.#hash.update(piece);
    this.#received += piece.length;
    this.#pending = this.#pending.length === 0 ? piece : Buffer.concat([this.#pending, piece]);
  }

  /** All entry bytes are in: check the checksum, then that the stream ends here. */
  async #end(): Promise<void> {
    if (this.header.sealed && this.#hash.digest() !== this.header.entriesXxh64) {
      throw new IndexFormatError('index entries checksum mismatch: the index was damaged on its way here');
    }
    for (;;) {
      const r = await this.#source.next();
      if (r.done) break;
      if (r.value.byteLength > 0) throw new IndexFormatError(`index has bytes after its ${this.header.blockCount} entries`);
    }
    this.#done = true;
  }
}
