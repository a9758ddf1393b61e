import { BlockKind, FerryError, INDEX_ENTRY_BYTES, type BlockIndex } from '@ferry/protocol';
import type { IndexFiles } from '../store/index-file.js';
import type { ChunkIdSet } from './chunk-id-set.js';
import type { GcRepository, LiveIndex, LiveReason } from './repository.js';

/** Bounds the re-reads of points committed while marking; each pass reads only those, so a few suffice. */
const MAX_PASSES = 100;
/** Where an entry's chunk id starts (docs/spec/block-index.md, Entry). */
const ENTRY_CHUNK_ID_OFFSET = 16;

export interface MarkResult {
  indexesRead: number;
  /** INDEX_DAMAGED messages of live indexes that could not be read: nothing may be swept then. */
  damaged: string[];
}

/** 'point' once read in its final form (or gone for good); 'partial' for a running cycle's entries so far. */
type ReadAs = 'point' | 'partial';

const RANK: Record<LiveReason, number> = { committed: 0, previous: 1, running: 2 };

/** The storage key of the chunk id at `at` in `buf` (ChunkStore.keyBytesAt): what the sweep lists and the guard holds. */
export type KeyAt = (buf: Buffer, at: number) => Buffer;

/**
 * Adds to `live` the storage key of every chunk id named by a live index. Repeats until the catalog lists no committed point
 * that was not read as a point: a cycle that commits while marking is read again whole, so the chunks it took
 * over from its previous point stay marked even if retention deletes that point before it is read.
 */
export async function markLive(repo: GcRepository, indexes: IndexFiles, live: ChunkIdSet, keyAt: KeyAt, onRead: () => void): Promise<MarkResult> {
  const readAs = new Map<string, ReadAs>();
  const result: MarkResult = { indexesRead: 0, damaged: [] };
  for (let pass = 1; ; pass++) {
    const todo = pending(repo.liveIndexes(), readAs);
    if (todo.length === 0) return result;
    if (pass > MAX_PASSES) {
      throw new FerryError('INTERNAL', `garbage collection: points kept being committed while it marked chunks (${MAX_PASSES} passes); nothing was deleted. Run it again.`);
    }
    for (const l of todo) {
      const as = await readOne(repo, indexes, live, keyAt, l, result);
      if (as) readAs.set(keyOf(l), as);
      result.indexesRead++;
      onRead();
    }
  }
}

/** The indexes still to read, one per cycle and disk, points first. */
function pending(rows: LiveIndex[], readAs: Map<string, ReadAs>): LiveIndex[] {
  const byKey = new Map<string, LiveIndex>();
  for (const r of rows) {
    const seen = byKey.get(keyOf(r));
    if (!seen || RANK[r.reason] < RANK[seen.reason]) byKey.set(keyOf(r), r);
  }
  return [...byKey.values()]
    .filter((r) => {
      const as = readAs.get(keyOf(r));
      return as === undefined || (as === 'partial' && r.reason === 'committed');
    })
    .sort((a, b) => RANK[a.reason] - RANK[b.reason] || a.cycleId - b.cycleId || a.diskId - b.diskId);
}

/** Marks one index; returns how it was read, or undefined when it must be read again as a point. */
async function readOne(repo: GcRepository, indexes: IndexFiles, live: ChunkIdSet, keyAt: KeyAt, l: LiveIndex, result: MarkResult): Promise<ReadAs | undefined> {
  let index: BlockIndex | null;
  try {
    if (l.reason === 'committed') {
      index = await indexes.load(l.cycleId, l.diskId);
      // A point's index without its checksum could name any chunk: as bad as a failing checksum.
      if (!index.header.sealed) throw new FerryError('INDEX_DAMAGED', `index of disk ${l.diskId} in point ${l.cycleId} is not sealed`);
    } else {
      // Missing means the cycle's start was interrupted before its index was made: it names nothing.
      index = await indexes.loadWritten(l.cycleId, l.diskId);
    }
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'INDEX_DAMAGED')) throw err;
    const now = repo.stateOf(l.cycleId);
    // Read as running, committed since: read it again, as a point, in the next pass.
    if (l.reason === 'running' && now === 'committed') return undefined;
    // Deleted or abandoned meanwhile: nothing names it any more. Still live: its chunks cannot be known.
    if (now === 'committed' || now === 'running' || l.reason === 'previous') result.damaged.push(err.message);
    return 'point';
  }
  if (index) {
    const { entries } = index;
    for (let n = 0; n < index.header.blockCount; n++) {
      if (index.kind(n) === BlockKind.Data) live.addAt(keyAt(entries, n * INDEX_ENTRY_BYTES + ENTRY_CHUNK_ID_OFFSET), 0);
    }
  }
  return l.reason === 'running' ? 'partial' : 'point';
}

function keyOf(l: LiveIndex): string {
  return `${l.cycleId}/${l.diskId}`;
}
