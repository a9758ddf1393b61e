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
import { faultPoint } from '../faults.js';
import { SealError, type DataKeys } from '../keys/data-keys.js';

/** Sealed chunk file (docs/spec/encryption.md): `FRYE`, version 1, 3 reserved bytes, then nonce ‖ ciphertext ‖ tag. */
export const SEALED_CHUNK_MAGIC = Buffer.from('FRYE', 'ascii');
export const SEALED_CHUNK_PREFIX_BYTES = 8;
const SEALED_CHUNK_PREFIX = Buffer.concat([SEALED_CHUNK_MAGIC, Buffer.from([1, 0, 0, 0])]);

export interface StagedChunk {
  id: string;
  /** The chunk's storage key (its file name): the id itself, or HMAC(idKey, id) on an encrypted appliance. */
  key: string;
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

/** A staged chunk's temporary name: `<64 hex>.tmp-<12 hex>` beside its final name. */
const TEMP_NAME = /^[0-9a-f]{64}\.tmp-[0-9a-f]{12}$/;
const LEVEL_DIR = /^[0-9a-f]{2}$/;

/**
 * Content-addressed chunk files under `chunks/ab/cd/<64 hex>`: two levels of 256 directories keep each
 * directory small even with hundreds of millions of chunks. Writes are staged under a temporary name and
 * made visible only by commitStaged() after fsync, so a visible chunk file is always complete.
 *
 * With keys (an encrypted appliance) a chunk's file is named by its storage key, HMAC-SHA256(idKey, chunk id),
 * and holds the v1 chunk file sealed with AES-256-GCM. has/stage/readRaw/verify take chunk ids; keys(),
 * remove() and garbage collection work in storage keys (keyOf maps one to the other; without keys they are equal).
 */
export class ChunkStore {
  /** Removals in progress: has() waits for them, so nobody believes in a chunk that is being deleted. */
  readonly #removing = new Map<string, Promise<number>>();
  /** Directories with removals not yet fsynced (syncRemovals() does them in one batch). */
  readonly #unsynced = new Set<string>();
  /** Temporary files of uploads in progress: never stale, however slow the upload. */
  readonly #inFlight = new Set<string>();

  readonly #keys: DataKeys | null;

  constructor(
    readonly root: string,
    keys: DataKeys | null = null,
  ) {
    this.#keys = keys;
  }

  get encrypted(): boolean {
    return this.#keys !== null;
  }

  /** The storage key (file name) of a chunk id. */
  keyOf(id: string): string {
    if (!CHUNK_ID_PATTERN.test(id)) throw new FerryError('CHUNK_ID_INVALID', `"${id.slice(0, 80)}" is not a chunk id`);
    return this.#keys ? this.#keys.chunkKey(Buffer.from(id, 'hex')).toString('hex') : id;
  }

  /** The storage key of a chunk id given as its 32 bytes (`at` into `buf`), as a buffer (mark phase: no strings). */
  keyBytesAt(buf: Buffer, at: number): Buffer {
    const id = buf.subarray(at, at + 32);
    return this.#keys ? this.#keys.chunkKey(id) : id;
  }

  /** The file of a storage key. */
  pathOfKey(key: string): string {
    if (!CHUNK_ID_PATTERN.test(key)) throw new FerryError('CHUNK_ID_INVALID', `"${key.slice(0, 80)}" is not a chunk storage key`);
    return path.join(this.root, key.slice(0, 2), key.slice(2, 4), key);
  }

  /** The file of a chunk id. */
  pathOf(id: string): string {
    return this.pathOfKey(this.keyOf(id));
  }

  async has(id: string): Promise<boolean> {
    const key = this.keyOf(id);
    const file = this.pathOfKey(key);
    // Checked before the first await: a removal registered after this call started cannot be missed (see remove()).
    const removal = this.#removing.get(key);
    if (removal) await removal.catch(() => undefined);
    try {
      await stat(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Writes the chunk under a temporary name (not yet durable, not yet visible). */
  async stage(id: Buffer, codec: Codec, rawLength: number, payload: Buffer): Promise<StagedChunk> {
    const hex = id.toString('hex');
    const key = this.keyOf(hex);
    const final = this.pathOfKey(key);
    const created = await mkdir(path.dirname(final), { recursive: true });
    const tmp = `${final}.tmp-${randomBytes(6).toString('hex')}`;
    this.#inFlight.add(tmp);
    let file: FileHandle;
    try {
      file = await open(tmp, 'wx', 0o640);
    } catch (err) {
      this.#inFlight.delete(tmp);
      throw err;
    }
    const header = encodeChunkHeader(id, codec, rawLength, payload);
    const parts = this.#keys ? [SEALED_CHUNK_PREFIX, this.#keys.seal([header, payload], sealedChunkAad(key))] : [header, payload];
    try {
      await file.writev(parts);
    } catch (err) {
      await file.close();
      await unlink(tmp).catch(() => undefined);
      this.#inFlight.delete(tmp);
      throw err;
    }
    faultPoint('chunk-written');
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    return { id: hex, key, tmp, final, file, bytes, newDirs: created !== undefined };
  }

  /** fsync every staged file, rename them into place, then fsync their directories. */
  async commitStaged(staged: StagedChunk[]): Promise<void> {
    await Promise.all(
      staged.map(async (s) => {
        await s.file.sync();
        await s.file.close();
      }),
    );
    faultPoint('chunk-fsynced');
    for (const s of staged) {
      await rename(s.tmp, s.final);
      faultPoint('chunk-renamed');
      this.#inFlight.delete(s.tmp);
    }
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
        this.#inFlight.delete(s.tmp);
      }),
    );
  }

  /**
   * Deletes a chunk file by its storage key (as keys() lists it); resolves to the bytes freed (0 if it was
   * already gone). The removal is registered before this returns, so a has() called after it waits for the
   * unlink and answers false. Directory fsyncs are batched: call syncRemovals().
   */
  remove(key: string): Promise<number> {
    const file = this.pathOfKey(key);
    const pending = this.#removing.get(key);
    if (pending) return pending;
    const removal = (async () => {
      try {
        const { size } = await stat(file);
        await unlink(file);
        this.#unsynced.add(path.dirname(file));
        return size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw err;
      } finally {
        this.#removing.delete(key);
      }
    })();
    this.#removing.set(key, removal);
    return removal;
  }

  /** fsyncs the directories that lost files since the last call, so those removals survive power loss. */
  async syncRemovals(): Promise<void> {
    const dirs = [...this.#unsynced];
    this.#unsynced.clear();
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  /**
   * Deletes temporary chunk files left by crashed uploads: only those last modified more than `olderThanMs`
   * ago and not staged by an upload still in progress in this process. Returns how many it deleted.
   */
  async removeStaleTemps(olderThanMs: number): Promise<number> {
    let removed = 0;
    for await (const { dir, names } of this.#leafDirs()) {
      for (const name of names) {
        const file = path.join(dir, name);
        if (!TEMP_NAME.test(name) || this.#inFlight.has(file)) continue;
        try {
          const { mtimeMs } = await stat(file);
          if (Date.now() - mtimeMs <= olderThanMs || this.#inFlight.has(file)) continue;
          await unlink(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        this.#unsynced.add(dir);
        removed++;
      }
    }
    await this.syncRemovals();
    return removed;
  }

  /**
   * Reads a chunk file and checks its header and payload checksum (not the plaintext hash); a sealed file is
   * first opened, and one that does not authenticate is damaged.
   */
  async readRaw(id: string): Promise<{ header: ChunkHeader; payload: Buffer }> {
    const r = await this.#readKey(this.keyOf(id), id);
    if (r.header.id.toString('hex') !== id) throw new ChunkDamagedError(id, 'the file holds another chunk id');
    return r;
  }

  /**
   * Reads the chunk stored under a storage key (as keys() lists it), with the same checks as readRaw except
   * the id, which an encrypted store cannot derive from the key: the caller checks the plaintext's hash.
   */
  readRawByKey(key: string): Promise<{ header: ChunkHeader; payload: Buffer }> {
    return this.#readKey(key, `stored as ${key}`);
  }

  async #readKey(key: string, id: string): Promise<{ header: ChunkHeader; payload: Buffer }> {
    let file: Buffer;
    try {
      const fh = await open(this.pathOfKey(key), 'r');
      try {
        file = await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ChunkDamagedError(id, 'the chunk file is missing');
      throw err;
    }
    if (this.#keys) file = this.#unseal(id, key, file);
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

  #unseal(id: string, key: string, file: Buffer): Buffer {
    if (file.length < SEALED_CHUNK_PREFIX_BYTES || !file.subarray(0, SEALED_CHUNK_PREFIX_BYTES).equals(SEALED_CHUNK_PREFIX)) {
      throw new ChunkDamagedError(id, 'the file is not a sealed chunk (bad magic or version)');
    }
    try {
      return this.#keys!.open(file.subarray(SEALED_CHUNK_PREFIX_BYTES), sealedChunkAad(key));
    } catch (err) {
      if (err instanceof SealError) throw new ChunkDamagedError(id, `the sealed chunk file does not authenticate (${err.message})`);
      throw err;
    }
  }

  /** Every chunk present in the store, by storage key (temporary files excluded). */
  async *keys(): AsyncGenerator<string> {
    for await (const { names } of this.#leafDirs()) {
      for (const f of names) if (CHUNK_ID_PATTERN.test(f)) yield f;
    }
  }

  /** Each `ab/cd` directory with its sorted file names; directories are never removed (stage() races with that). */
  async *#leafDirs(): AsyncGenerator<{ dir: string; names: string[] }> {
    const level1 = await readdir(this.root).catch(() => [] as string[]);
    for (const a of level1.sort()) {
      if (!LEVEL_DIR.test(a)) continue;
      for (const b of (await readdir(path.join(this.root, a))).sort()) {
        if (!LEVEL_DIR.test(b)) continue;
        const dir = path.join(this.root, a, b);
        yield { dir, names: (await readdir(dir)).sort() };
      }
    }
  }
}

/** Additional data of a sealed chunk: its prefix (magic, version) and its storage key, so a file moved under another name does not open. */
function sealedChunkAad(key: string): Buffer {
  return Buffer.concat([SEALED_CHUNK_PREFIX, Buffer.from(key, 'hex')]);
}
