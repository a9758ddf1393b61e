import { access, mkdir, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BlockIndex,
  decodeIndexHeader,
  encodeIndexHeader,
  FerryError,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  IndexFormatError,
  xxh64,
  type IndexHeader,
} from '@ferry/protocol';
import { fsyncDir } from './durable.js';

/**
 * Per-disk index files under `indexes/<cycle id>/<disk id>.fidx`. A running cycle's index is created full
 * size with every entry Pending (all zero bytes); acknowledged entries are written in place and fsynced;
 * commit seals it (entries checksum + sealed flag in the header) before the point is committed in SQLite.
 */
export class IndexFiles {
  constructor(readonly root: string) {}

  pathOf(cycleId: number, diskId: number): string {
    return path.join(this.root, String(cycleId), `${diskId}.fidx`);
  }

  async create(cycleId: number, diskId: number, geometry: Omit<IndexHeader, 'sealed' | 'entriesXxh64'>): Promise<void> {
    const file = this.pathOf(cycleId, diskId);
    await mkdir(path.dirname(file), { recursive: true });
    const fh = await open(file, 'w', 0o640);
    try {
      await fh.write(encodeIndexHeader({ ...geometry, sealed: false, entriesXxh64: 0n }), 0, INDEX_HEADER_BYTES, 0);
      await fh.truncate(INDEX_HEADER_BYTES + geometry.blockCount * INDEX_ENTRY_BYTES);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(path.dirname(file));
    await fsyncDir(this.root);
  }

  /** Writes a run of consecutive entries starting at block `first`, durably. */
  async writeEntries(cycleId: number, diskId: number, first: number, entries: Buffer): Promise<void> {
    const fh = await open(this.pathOf(cycleId, diskId), 'r+');
    try {
      await fh.write(entries, 0, entries.length, INDEX_HEADER_BYTES + first * INDEX_ENTRY_BYTES);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Reads entries [first, first+count) without reading the whole index (restore streaming). */
  async readEntries(cycleId: number, diskId: number, first: number, count: number): Promise<{ header: IndexHeader; entries: Buffer }> {
    const fh = await open(this.pathOf(cycleId, diskId), 'r');
    try {
      const head = Buffer.alloc(INDEX_HEADER_BYTES);
      await fh.read(head, 0, INDEX_HEADER_BYTES, 0);
      const header = decodeIndexHeader(head);
      const n = Math.max(0, Math.min(count, header.blockCount - first));
      const entries = Buffer.alloc(n * INDEX_ENTRY_BYTES);
      const { bytesRead } = await fh.read(entries, 0, entries.length, INDEX_HEADER_BYTES + first * INDEX_ENTRY_BYTES);
      if (bytesRead !== entries.length) throw new IndexFormatError('index file is truncated');
      return { header, entries };
    } finally {
      await fh.close();
    }
  }

  async exists(cycleId: number, diskId: number): Promise<boolean> {
    return access(this.pathOf(cycleId, diskId)).then(
      () => true,
      () => false,
    );
  }

  /** Reads and decodes an index file; format errors and a missing file become INDEX_DAMAGED. */
  async #read<T>(cycleId: number, diskId: number, decode: (whole: Buffer) => T): Promise<T> {
    try {
      return decode(await readFile(this.pathOf(cycleId, diskId)));
    } catch (err) {
      if (err instanceof IndexFormatError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new FerryError('INDEX_DAMAGED', `index of disk ${diskId} in cycle ${cycleId}: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
  }

  /** A point's index, checked against its entries checksum; `file` is the bytes as stored, for serving. */
  async loadWithFile(cycleId: number, diskId: number): Promise<{ index: BlockIndex; file: Buffer }> {
    return this.#read(cycleId, diskId, (file) => ({ index: BlockIndex.parse(file), file }));
  }

  async load(cycleId: number, diskId: number): Promise<BlockIndex> {
    return (await this.loadWithFile(cycleId, diskId)).index;
  }

  /**
   * The index of a running cycle, for commit. Its entries checksum is not checked: a commit that failed after
   * sealing may have been followed by more acknowledged entries, and the checksum is recomputed when sealing.
   */
  async loadForCommit(cycleId: number, diskId: number): Promise<BlockIndex> {
    return this.#read(cycleId, diskId, (whole) => {
      const header = decodeIndexHeader(whole);
      return new BlockIndex({ ...header, sealed: false }, whole.subarray(INDEX_HEADER_BYTES));
    });
  }

  /** Writes the entries checksum and the sealed flag of an index loaded by loadForCommit, and fsyncs it. */
  async seal(cycleId: number, diskId: number, index: BlockIndex): Promise<void> {
    const sealed: IndexHeader = { ...index.header, sealed: true, entriesXxh64: xxh64(index.entries) };
    const fh = await open(this.pathOf(cycleId, diskId), 'r+');
    try {
      await fh.write(encodeIndexHeader(sealed), 0, INDEX_HEADER_BYTES, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
