/** Test helpers: a real data directory (catalog, chunk store, index files) in a temporary directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { BlockKind, chunkIdOf, Codec, encodeIndexEntry, initHashing } from '@ferry/protocol';
import { openCatalog, type Catalog } from '../catalog/catalog.js';
import { ChunkStore } from '../store/chunk-store.js';
import { IndexFiles } from '../store/index-file.js';
import { DataKeys } from '../keys/data-keys.js';
import { randomBytes } from 'node:crypto';

/** GC runs the same on a plain store (storage key = chunk id) and an encrypted one (storage key = HMAC of the id). */
export const STORE_MODES = ['plain', 'keyed'] as const;
export type StoreMode = (typeof STORE_MODES)[number];

/** Bytes a chunk of `plainLength` bytes stored uncompressed takes on disk in each mode (docs/spec/encryption.md). */
export function storedChunkBytes(mode: StoreMode, plainLength: number): number {
  return 64 + plainLength + (mode === 'keyed' ? 8 + 12 + 16 : 0);
}

export const BLOCK = 65536;

export interface TestData {
  dir: string;
  db: Catalog;
  chunks: ChunkStore;
  indexes: IndexFiles;
  sourceId: number;
  diskId: number;
  close(): void;
}

export async function makeTestData(
  chunks?: (root: string, keys: DataKeys | null) => ChunkStore,
  indexes?: (root: string, keys: DataKeys | null) => IndexFiles,
  mode: StoreMode = 'plain',
): Promise<TestData> {
  await initHashing();
  const keys = mode === 'keyed' ? DataKeys.fromMaster(randomBytes(64)) : null;
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-gc-'));
  const db = openCatalog(path.join(dir, 'catalog.sqlite'));
  const now = new Date().toISOString();
  const sourceId = Number(db.prepare("INSERT INTO sources (name, hostname, created_at) VALUES ('src', 'src.example', ?)").run(now).lastInsertRowid);
  const diskId = Number(db.prepare("INSERT INTO disks (source_id, key, size, updated_at) VALUES (?, 'sda', ?, ?)").run(sourceId, 8 * BLOCK, now).lastInsertRowid);
  return {
    dir,
    db,
    chunks: chunks ? chunks(path.join(dir, 'chunks'), keys) : new ChunkStore(path.join(dir, 'chunks'), keys),
    indexes: indexes ? indexes(path.join(dir, 'indexes'), keys) : new IndexFiles(path.join(dir, 'indexes'), keys),
    sourceId,
    diskId,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Stores a chunk whose plaintext is derived from `seed`; returns its id. */
export async function putChunk(chunks: ChunkStore, seed: string): Promise<string> {
  const plain = Buffer.from(`plaintext of chunk ${seed}`);
  const staged = await chunks.stage(chunkIdOf(plain), Codec.None, plain.length, plain);
  await chunks.commitStaged([staged]);
  return staged.id;
}

export type CycleState = 'running' | 'committed' | 'abandoned' | 'deleted';

/** A cycle row with one disk of `blocks` blocks (the test disk), as CycleRepository would write it. */
export function addCycle(t: TestData, state: CycleState, opts: { previous?: number; blocks?: number } = {}): number {
  const blocks = opts.blocks ?? 4;
  const id = Number(
    t.db.prepare('INSERT INTO cycles (source_id, state, started_at) VALUES (?, ?, ?)').run(t.sourceId, state, new Date().toISOString()).lastInsertRowid,
  );
  t.db
    .prepare('INSERT INTO cycle_disks (cycle_id, slot, disk_id, size, block_size, block_count, previous_cycle_id) VALUES (?, 0, ?, ?, ?, ?, ?)')
    .run(id, t.diskId, blocks * BLOCK, BLOCK, blocks, opts.previous ?? null);
  return id;
}

export function setState(t: TestData, cycleId: number, state: CycleState): void {
  t.db.prepare('UPDATE cycles SET state = ? WHERE id = ?').run(state, cycleId);
}

/**
 * Creates the cycle's index for the test disk and writes `blocks` from block 0: a chunk id names a Data block,
 * null a Zero block; blocks not given stay Pending. `seal` seals it as a commit does.
 */
export async function writeIndex(t: TestData, cycleId: number, blocks: (string | null)[], opts: { seal?: boolean; blockCount?: number } = {}): Promise<void> {
  const blockCount = opts.blockCount ?? 4;
  await t.indexes.create(cycleId, t.diskId, { blockSize: BLOCK, diskSize: blockCount * BLOCK, blockCount });
  await writeEntries(t, cycleId, 0, blocks);
  if (opts.seal) await t.indexes.seal(cycleId, t.diskId, await t.indexes.loadForCommit(cycleId, t.diskId));
}

export async function writeEntries(t: TestData, cycleId: number, first: number, blocks: (string | null)[]): Promise<void> {
  const entries = blocks.map((id) =>
    id === null
      ? encodeIndexEntry({ kind: BlockKind.Zero, xxh64: 0n, chunkId: Buffer.alloc(32) })
      : encodeIndexEntry({ kind: BlockKind.Data, xxh64: 1n, chunkId: Buffer.from(id, 'hex') }),
  );
  if (entries.length > 0) await t.indexes.writeEntries(cycleId, t.diskId, first, Buffer.concat(entries));
}

/** A logger that keeps its lines, to check what a run logged. */
export function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}
