import { access, mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
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
import { fsyncDir, writeDurable } from './durable.js';
import { PagedFile } from './paged-file.js';
import { KeyedLock } from '../keyed-lock.js';
import { faultPoint } from '../faults.js';
import type { DataKeys } from '../keys/data-keys.js';

/** Positional reads and writes of an index's logical bytes: the file itself, or its sealed pages. */
interface IndexIo {
  read(pos: number, length: number): Promise<Buffer>;
  readAll(): Promise<Buffer>;
  write(pos: number, data: Buffer): Promise<void>;
}

/**
 * Per-disk index files under `indexes/<cycle id>/<disk id>.fidx`. A running cycle's index is created full
 * size with every entry Pending (all zero bytes); acknowledged entries are written in place and fsynced;
 * commit seals it (entries checksum + sealed flag in the header) before the point is committed in SQLite.
 */
export class IndexFiles {
  /** One operation per file at a time: a sealed page is rewritten whole, and a reader must not see it half written. */
  readonly #mutex = new KeyedLock<string>();

  /** With keys, index files are sealed in pages (docs/spec/encryption.md); without, they are plain v1 files. */
  constructor(
    readonly root: string,
    private readonly keys: DataKeys | null = null,
  ) {}

  /** What a sealed page is bound to, so pages cannot be moved between indexes. */
  #context(cycleId: number, diskId: number): string {
    return `index:${cycleId}/${diskId}`;
  }

  async #io(fh: FileHandle, cycleId: number, diskId: number): Promise<IndexIo> {
    if (this.keys) return PagedFile.open(fh, this.keys, this.#context(cycleId, diskId));
    return {
      read: async (pos, length) => {
        const b = Buffer.alloc(length);
        const { bytesRead } = await fh.read(b, 0, length, pos);
        if (bytesRead !== length) throw new IndexFormatError('index file is truncated');
        return b;
      },
      readAll: () => fh.readFile(),
      write: async (pos, data) => {
        await fh.write(data, 0, data.length, pos);
      },
    };
  }

  /** Runs `fn` on the index file under its lock; format errors and a missing file become INDEX_DAMAGED. */
  async #with<T>(cycleId: number, diskId: number, flags: 'r' | 'r+', fn: (io: IndexIo, fh: FileHandle) => Promise<T>): Promise<T> {
    const file = this.pathOf(cycleId, diskId);
    return this.#mutex.run(file, async () => {
      try {
        const fh = await open(file, flags);
        try {
          return await fn(await this.#io(fh, cycleId, diskId), fh);
        } finally {
          await fh.close();
        }
      } catch (err) {
        if (err instanceof IndexFormatError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new FerryError('INDEX_DAMAGED', `index of disk ${diskId} in cycle ${cycleId}: ${(err as Error).message}`, { cause: err });
        }
        throw err;
      }
    });
  }

  pathOf(cycleId: number, diskId: number): string {
    return path.join(this.root, String(cycleId), `${diskId}.fidx`);
  }

  /**
   * Creates a running cycle's index, every entry Pending. Built under a temporary name and renamed into place,
   * so a reader (garbage collection marking a running cycle) sees no file or a whole one, never a partial one.
   */
  async create(cycleId: number, diskId: number, geometry: Omit<IndexHeader, 'sealed' | 'entriesXxh64'>): Promise<void> {
    const file = this.pathOf(cycleId, diskId);
    await mkdir(path.dirname(file), { recursive: true });
    await writeDurable(
      file,
      async (fh) => {
        const header = encodeIndexHeader({ ...geometry, sealed: false, entriesXxh64: 0n });
        const size = INDEX_HEADER_BYTES + geometry.blockCount * INDEX_ENTRY_BYTES;
        if (this.keys) {
          await PagedFile.create(fh, this.keys, this.#context(cycleId, diskId), size, header);
        } else {
          await fh.write(header, 0, INDEX_HEADER_BYTES, 0);
          await fh.truncate(size);
        }
      },
      0o640,
    );
    await fsyncDir(this.root);
  }

  /** Ids of the cycles that have an index directory (whatever their state in the catalog). */
  async cycleIds(): Promise<number[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    return entries
      .filter((e) => e.isDirectory() && /^[1-9][0-9]{0,15}$/.test(e.name))
      .map((e) => Number(e.name))
      .sort((a, b) => a - b);
  }

  /** Deletes a cycle's index directory and makes that durable; a missing directory is not an error. */
  async removeCycle(cycleId: number): Promise<void> {
    await rm(path.join(this.root, String(cycleId)), { recursive: true, force: true });
    await fsyncDir(this.root);
  }

  /** Writes a run of consecutive entries starting at block `first`, durably. */
  async writeEntries(cycleId: number, diskId: number, first: number, entries: Buffer): Promise<void> {
    await this.#with(cycleId, diskId, 'r+', async (io, fh) => {
      await io.write(INDEX_HEADER_BYTES + first * INDEX_ENTRY_BYTES, entries);
      await fh.sync();
      faultPoint('index-written');
    });
  }

  /** Reads entries [first, first+count) without reading the whole index (restore streaming). */
  async readEntries(cycleId: number, diskId: number, first: number, count: number): Promise<{ header: IndexHeader; entries: Buffer }> {
    return this.#with(cycleId, diskId, 'r', async (io) => {
      const header = decodeIndexHeader(await io.read(0, INDEX_HEADER_BYTES));
      const n = Math.max(0, Math.min(count, header.blockCount - first));
      const entries = await io.read(INDEX_HEADER_BYTES + first * INDEX_ENTRY_BYTES, n * INDEX_ENTRY_BYTES);
      return { header, entries };
    });
  }

  async exists(cycleId: number, diskId: number): Promise<boolean> {
    return access(this.pathOf(cycleId, diskId)).then(
      () => true,
      () => false,
    );
  }

  /** Reads and decodes an index file; format errors and a missing file become INDEX_DAMAGED. */
  async #read<T>(cycleId: number, diskId: number, decode: (whole: Buffer) => T): Promise<T> {
    return this.#with(cycleId, diskId, 'r', async (io) => decode(await io.readAll()));
  }

  /** A point's index, checked against its entries checksum; `file` is its v1 bytes (opened, when sealed), for serving. */
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

  /**
   * The entries of a cycle's index as written so far (Pending where nothing was acknowledged yet), without the
   * entries checksum; null when the file does not exist (a cycle whose start was interrupted). Entries being
   * written concurrently may read as old or new: callers must not rely on the newest ones.
   */
  async loadWritten(cycleId: number, diskId: number): Promise<BlockIndex | null> {
    try {
      return await this.loadForCommit(cycleId, diskId);
    } catch (err) {
      if (err instanceof FerryError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Writes the entries checksum and the sealed flag of an index loaded by loadForCommit, and fsyncs it. */
  async seal(cycleId: number, diskId: number, index: BlockIndex): Promise<void> {
    const sealed: IndexHeader = { ...index.header, sealed: true, entriesXxh64: xxh64(index.entries) };
    await this.#with(cycleId, diskId, 'r+', async (io, fh) => {
      await io.write(0, encodeIndexHeader(sealed));
      await fh.sync();
      faultPoint('index-sealed');
    });
  }
}
