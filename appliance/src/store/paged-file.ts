import type { FileHandle } from 'node:fs/promises';
import { IndexFormatError, xxh64 } from '@ferry/protocol';
import { NONCE_BYTES, SealError, TAG_BYTES, type DataKeys } from '../keys/data-keys.js';

/**
 * A file sealed in pages (docs/spec/encryption.md, "Paged file"): a plaintext 64-byte header, then pages
 * of PAGE_BYTES logical bytes, each stored as nonce ‖ AES-256-GCM ciphertext ‖ tag. A page can be rewritten
 * alone (a running cycle's index is written in place entry by entry) and read alone (restores read a range).
 * An all-zero stored page is a page never written: it reads as zeros, so a new file is made by extending it.
 */
export const PAGED_MAGIC = Buffer.from('FRYP', 'ascii');
export const PAGED_VERSION = 1;
export const PAGED_HEADER_BYTES = 64;
export const PAGE_BYTES = 4096;
export const STORED_PAGE_BYTES = NONCE_BYTES + PAGE_BYTES + TAG_BYTES;

export function pageCount(logicalSize: number): number {
  return Math.ceil(logicalSize / PAGE_BYTES);
}

/** The stored size of a paged file of `logicalSize` bytes. */
export function storedSize(logicalSize: number): number {
  return PAGED_HEADER_BYTES + pageCount(logicalSize) * STORED_PAGE_BYTES;
}

export function encodePagedHeader(logicalSize: number): Buffer {
  const h = Buffer.alloc(PAGED_HEADER_BYTES);
  PAGED_MAGIC.copy(h, 0);
  h.writeUInt16LE(PAGED_VERSION, 4);
  h.writeUInt16LE(PAGED_HEADER_BYTES, 6);
  h.writeUInt32LE(PAGE_BYTES, 8);
  h.writeBigUInt64LE(BigInt(logicalSize), 16);
  h.writeBigUInt64LE(xxh64(h.subarray(0, 56)), 56);
  return h;
}

export function decodePagedHeader(h: Buffer): { logicalSize: number } {
  if (h.length < PAGED_HEADER_BYTES) throw new IndexFormatError(`sealed file header is ${h.length} bytes, expected ${PAGED_HEADER_BYTES}`);
  if (!h.subarray(0, 4).equals(PAGED_MAGIC)) throw new IndexFormatError('not a sealed paged file (bad magic)');
  if (h.readUInt16LE(4) !== PAGED_VERSION) throw new IndexFormatError(`sealed paged file version ${h.readUInt16LE(4)} is not supported`);
  if (h.readBigUInt64LE(56) !== xxh64(h.subarray(0, 56))) throw new IndexFormatError('sealed paged file header checksum mismatch');
  if (h.readUInt16LE(6) !== PAGED_HEADER_BYTES || h.readUInt32LE(8) !== PAGE_BYTES) throw new IndexFormatError('sealed paged file has another header or page size');
  const logicalSize = Number(h.readBigUInt64LE(16));
  if (!Number.isSafeInteger(logicalSize)) throw new IndexFormatError('sealed paged file logical size is out of range');
  return { logicalSize };
}

/** Additional data of page `n`: the file's context (what it is and where it belongs), the page number, the logical size. */
function pageAad(context: string, n: number, logicalSize: number): Buffer {
  const tail = Buffer.alloc(16);
  tail.writeBigUInt64LE(BigInt(n), 0);
  tail.writeBigUInt64LE(BigInt(logicalSize), 8);
  return Buffer.concat([Buffer.from(context, 'utf8'), tail]);
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Reads and writes one sealed paged file through an open handle. Not safe against itself: the caller
 * serialises access per file (IndexFiles does), so a reader never sees a page half rewritten.
 */
export class PagedFile {
  constructor(
    private readonly fh: FileHandle,
    private readonly keys: DataKeys,
    private readonly context: string,
    readonly logicalSize: number,
  ) {}

  static async open(fh: FileHandle, keys: DataKeys, context: string): Promise<PagedFile> {
    const head = Buffer.alloc(PAGED_HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, PAGED_HEADER_BYTES, 0);
    const { logicalSize } = decodePagedHeader(head.subarray(0, bytesRead));
    return new PagedFile(fh, keys, context, logicalSize);
  }

  /**
   * Writes the header and `initial` (the first logical bytes) and extends the file to its full stored size:
   * every later page is never written (zeros). Needs no read access (a new file opened write-only).
   */
  static async create(fh: FileHandle, keys: DataKeys, context: string, logicalSize: number, initial: Buffer): Promise<PagedFile> {
    if (initial.length > logicalSize) throw new IndexFormatError(`initial bytes (${initial.length}) exceed the logical size ${logicalSize}`);
    const f = new PagedFile(fh, keys, context, logicalSize);
    await fh.write(encodePagedHeader(logicalSize), 0, PAGED_HEADER_BYTES, 0);
    if (initial.length > 0) {
      const plain = Buffer.alloc(pageCount(initial.length) * PAGE_BYTES);
      initial.copy(plain);
      await f.#writePages(0, plain);
    }
    await fh.truncate(storedSize(logicalSize));
    return f;
  }

  /** Logical bytes [pos, pos + length), which must lie inside the file. */
  async read(pos: number, length: number): Promise<Buffer> {
    if (pos < 0 || length < 0 || pos + length > this.logicalSize) {
      throw new IndexFormatError(`read of [${pos}, ${pos + length}) is outside the file's ${this.logicalSize} bytes`);
    }
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(pos / PAGE_BYTES);
    const last = Math.floor((pos + length - 1) / PAGE_BYTES);
    const plain = await this.#readPages(first, last);
    return plain.subarray(pos - first * PAGE_BYTES, pos - first * PAGE_BYTES + length);
  }

  async readAll(): Promise<Buffer> {
    return this.read(0, this.logicalSize);
  }

  /** Rewrites the pages that [pos, pos + data.length) touches, each with a fresh nonce (not fsynced). */
  async write(pos: number, data: Buffer): Promise<void> {
    if (pos < 0 || pos + data.length > this.logicalSize) throw new IndexFormatError(`write of [${pos}, ${pos + data.length}) is outside the file's ${this.logicalSize} bytes`);
    if (data.length === 0) return;
    const first = Math.floor(pos / PAGE_BYTES);
    const last = Math.floor((pos + data.length - 1) / PAGE_BYTES);
    const plain = await this.#readPages(first, last);
    data.copy(plain, pos - first * PAGE_BYTES);
    await this.#writePages(first, plain);
  }

  /** Seals whole pages of plaintext from page `first` on, each with a fresh nonce, and writes them. */
  async #writePages(first: number, plain: Buffer): Promise<void> {
    const stored: Buffer[] = [];
    for (let i = 0; i * PAGE_BYTES < plain.length; i++) {
      stored.push(this.keys.seal([plain.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)], pageAad(this.context, first + i, this.logicalSize)));
    }
    const out = Buffer.concat(stored);
    await this.fh.write(out, 0, out.length, PAGED_HEADER_BYTES + first * STORED_PAGE_BYTES);
  }

  async #readPages(first: number, last: number): Promise<Buffer> {
    const raw = Buffer.alloc((last - first + 1) * STORED_PAGE_BYTES);
    const { bytesRead } = await this.fh.read(raw, 0, raw.length, PAGED_HEADER_BYTES + first * STORED_PAGE_BYTES);
    if (bytesRead !== raw.length) throw new IndexFormatError(`the sealed file is truncated (page ${first + Math.floor(bytesRead / STORED_PAGE_BYTES)} is missing)`);
    const plain = Buffer.alloc((last - first + 1) * PAGE_BYTES);
    for (let n = first; n <= last; n++) {
      const page = raw.subarray((n - first) * STORED_PAGE_BYTES, (n - first + 1) * STORED_PAGE_BYTES);
      if (isZero(page)) continue;
      try {
        this.keys.open(page, pageAad(this.context, n, this.logicalSize)).copy(plain, (n - first) * PAGE_BYTES);
      } catch (err) {
        if (err instanceof SealError) throw new IndexFormatError(`page ${n} does not authenticate (changed on disk, or moved from another file)`);
        throw err;
      }
    }
    return plain;
  }
}
