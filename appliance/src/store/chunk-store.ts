import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  CHUNK_HEADER_BYTES,
  CHUNK_ID_PATTERN,
  chunkIdOf,
  decodeChunkHeader,
  decompressInto,
  encodeChunkHeader,
  FerryError,
  xxh64,
  type ChunkHeader,
  type Codec,
} from '@ferry/protocol';
import { fsyncDir } from './durable.js';

export interface StagedChunk {
  id: string;
  tmp: string;
  final: string;
  file: FileHandle;
  bytes: number;
  /** Set when staging created the chunk's directories: their parents need an fsync too. */
  newDirs: boolean;
}

export class ChunkDamagedError extends FerryError {
  constructor(
    readonly chunkId: string,
    problem: string,
  ) {
    super('CHUNK_DAMAGED', `chunk ${chunkId} is damaged: ${problem}`);
  }
}

/**
 * Content-addressed chunk files under `chunks/ab/cd/<64 hex>`: two levels of 256 directories keep each
 * directory small even with hundreds of millions of chunks. Writes are staged under a temporary name and
 * made visible only by commitStaged() after fsync, so a visible chunk file is always complete.
 */
export class ChunkStore {
  constructor(readonly root: string) {}

  pathOf(id: string): string {
    if (!CHUNK_ID_PATTERN.test(id)) throw new FerryError('CHUNK_ID_INVALID', `"${id.slice(0, 80)}" is not a chunk id`);
    return path.join(this.root, id.slice(0, 2), id.slice(2, 4), id);
  }

  async has(id: string): Promise<boolean> {
    try {
      await stat(this.pathOf(id));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Writes the chunk under a temporary name (not yet durable, not yet visible). */
  async stage(id: Buffer, codec: Codec, rawLength: number, payload: Buffer): Promise<StagedChunk> {
    const hex = id.toString('hex');
    const final = this.pathOf(hex);
    const created = await mkdir(path.dirname(final), { recursive: true });
    const tmp = `${final}.tmp-${randomBytes(6).toString('hex')}`;
    const file = await open(tmp, 'wx', 0o640);
    const header = encodeChunkHeader(id, codec, rawLength, payload);
    try {
      await file.writev([header, payload]);
    } catch (err) {
      await file.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return { id: hex, tmp, final, file, bytes: header.length + payload.length, newDirs: created !== undefined };
  }

  /** fsync every staged file, rename them into place, then fsync their directories. */
  async commitStaged(staged: StagedChunk[]): Promise<void> {
    await Promise.all(
      staged.map(async (s) => {
        await s.file.sync();
        await s.file.close();
      }),
    );
    for (const s of staged) await rename(s.tmp, s.final);
    const dirs = new Set(staged.map((s) => path.dirname(s.final)));
    for (const s of staged.filter((x) => x.newDirs)) {
      dirs.add(path.dirname(path.dirname(s.final)));
      dirs.add(this.root);
    }
    await Promise.all([...dirs].map((d) => fsyncDir(d)));
  }

  async discard(staged: StagedChunk[]): Promise<void> {
    await Promise.all(
      staged.map(async (s) => {
        await s.file.close().catch(() => undefined);
        await unlink(s.tmp).catch(() => undefined);
      }),
    );
  }

  /** Reads a chunk file and checks its header and payload checksum (not the plaintext hash). */
  async readRaw(id: string): Promise<{ header: ChunkHeader; payload: Buffer }> {
    let file: Buffer;
    try {
      const fh = await open(this.pathOf(id), 'r');
      try {
        file = await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ChunkDamagedError(id, 'the chunk file is missing');
      throw err;
    }
    let header: ChunkHeader;
    try {
      header = decodeChunkHeader(file);
    } catch (err) {
      throw new ChunkDamagedError(id, (err as Error).message);
    }
    const payload = file.subarray(CHUNK_HEADER_BYTES);
    if (payload.length !== header.payloadLength) {
      throw new ChunkDamagedError(id, `payload is ${payload.length} bytes, header says ${header.payloadLength}`);
    }
    if (xxh64(payload) !== header.payloadXxh64) throw new ChunkDamagedError(id, 'payload checksum mismatch');
    if (header.id.toString('hex') !== id) throw new ChunkDamagedError(id, 'the file holds another chunk id');
    return { header, payload };
  }

  /** Full check: payload checksum, decompression and SHA-256 of the plaintext against the id. */
  async verify(id: string): Promise<number> {
    const { header, payload } = await this.readRaw(id);
    const plain = Buffer.allocUnsafe(header.rawLength);
    try {
      decompressInto(header.codec, payload, plain);
    } catch (err) {
      throw new ChunkDamagedError(id, (err as Error).message);
    }
    if (chunkIdOf(plain).toString('hex') !== id) throw new ChunkDamagedError(id, 'plaintext does not hash to the chunk id');
    return CHUNK_HEADER_BYTES + payload.length;
  }

  /** Every chunk id present in the store (temporary files excluded). */
  async *ids(): AsyncGenerator<string> {
    const level1 = await readdir(this.root).catch(() => [] as string[]);
    for (const a of level1.sort()) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      for (const b of (await readdir(path.join(this.root, a))).sort()) {
        if (!/^[0-9a-f]{2}$/.test(b)) continue;
        for (const f of (await readdir(path.join(this.root, a, b))).sort()) {
          if (CHUNK_ID_PATTERN.test(f)) yield f;
        }
      }
    }
  }
}
