import { CHUNK_ID_BYTES, INDEX_MAGIC, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../constants.js';
import { xxh64 } from '../hash.js';

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
