import { FerryError, type GcReport } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { ChunkStore } from '../store/chunk-store.js';
import type { IndexFiles } from '../store/index-file.js';
import { ChunkIdSet } from './chunk-id-set.js';
import type { ChunkGuard } from './guard.js';
import { markLive } from './mark.js';
import type { GcRepository } from './repository.js';
import { SerialRuns } from './serial.js';


export type GcPhase = 'mark' | 'sweep' | 'indexes' | 'temps' | 'done';

export interface GcProgress {
  phase: GcPhase;
  indexesRead: number;
  chunksScanned: number;
  chunksDeleted: number;
  bytesFreed: number;
}

export interface GcOptions {
  /** Temporary chunk files older than this are left by crashed uploads (default one hour). */
  staleTempMs?: number;
  /** Removals between two batches of directory fsyncs. */
  syncEvery?: number;
}

const PROGRESS_EVERY_MS = 500;

/**
 * Deletes chunk files that no live index names and no running cycle may still name, index directories of
 * cycles that are gone, and temporary files left by crashes. Spec: docs/spec/garbage-collection.md.
 */
export class GcService {
  readonly #runs = new SerialRuns<GcReport, GcProgress>((progress) => this.#runOnce(progress));
  readonly #staleTempMs: number;
  readonly #syncEvery: number;

  constructor(
    private readonly repo: GcRepository,
    private readonly chunks: ChunkStore,
    private readonly indexes: IndexFiles,
    private readonly guard: ChunkGuard,
    private readonly log: Logger,
    options: GcOptions = {},
  ) {
    this.#staleTempMs = options.staleTempMs ?? 60 * 60 * 1000;
    this.#syncEvery = options.syncEvery ?? 1000;
  }

  /**
   * Collects garbage. A call during a run waits for it and then runs once more (retention may have deleted a
   * point after the run marked it); calls arriving meanwhile share that run. Fails with INDEX_DAMAGED, having
   * deleted nothing, when a live index cannot be read.
   */
  run(onProgress?: (p: GcProgress) => void): Promise<GcReport> {
    return this.#runs.run(onProgress);
  }

  async #runOnce(onProgress: (p: GcProgress) => void): Promise<GcReport> {
    const started = performance.now();
    // First, before the catalog is read: the protection bound must not be later than any mark-phase read.
    const snapshot = this.guard.snapshot();
    const progress: GcProgress = { phase: 'mark', indexesRead: 0, chunksScanned: 0, chunksDeleted: 0, bytesFreed: 0 };
    let lastReport = 0;
    const report = (force = false): void => {
      if (!force && performance.now() - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = performance.now();
      onProgress({ ...progress });
    };
    try {
      report(true);
      for (const id of this.repo.runningIds()) {
        if (!this.guard.isRunning(id)) this.log.warn({ cycle: id }, 'garbage collection: running cycle unknown to the chunk guard (its touches are not protected)');
      }
      const live = new ChunkIdSet();
      const mark = await markLive(this.repo, this.indexes, live, (buf, at) => this.chunks.keyBytesAt(buf, at), () => {
        progress.indexesRead++;
        report();
      });
      if (mark.damaged.length > 0) {
        throw new FerryError(
          'INDEX_DAMAGED',
          `garbage collection deleted nothing: ${mark.damaged.length} live index file(s) cannot be read, so the chunks they name are unknown. ` +
            `${mark.damaged.slice(0, 5).join('; ')}${mark.damaged.length > 5 ? '; …' : ''}`,
        );
      }
      const result: GcReport = {
        chunksBefore: 0,
        chunksReferenced: 0,
        chunksDeleted: 0,
        bytesFreed: 0,
        chunksProtected: 0,
        indexDirsRemoved: 0,
        tempFilesRemoved: 0,
        seconds: 0,
      };
      progress.phase = 'sweep';
      report(true);
      // In storage keys: on an encrypted appliance the sweep never learns a chunk id, only HMACs of them.
      for await (const key of this.chunks.keys()) {
        result.chunksBefore++;
        progress.chunksScanned++;
        if (live.has(key)) result.chunksReferenced++;
        // The check and the removal's registration run without an await between them: a touch after the check
        // is followed by a has() that waits for the removal (ChunkStore.remove).
        else if (snapshot.isProtected(key)) result.chunksProtected++;
        else {
          const freed = await this.chunks.remove(key);
          result.chunksDeleted++;
          result.bytesFreed += freed;
          progress.chunksDeleted++;
          progress.bytesFreed += freed;
          if (result.chunksDeleted % this.#syncEvery === 0) await this.chunks.syncRemovals();
        }
        report();
      }
      await this.chunks.syncRemovals();
      progress.phase = 'indexes';
      report(true);
      result.indexDirsRemoved = await this.#removeDeadIndexDirs();
      progress.phase = 'temps';
      report(true);
      result.tempFilesRemoved = await this.chunks.removeStaleTemps(this.#staleTempMs);
      result.seconds = Math.round(performance.now() - started) / 1000;
      progress.phase = 'done';
      report(true);
      this.log.info({ ...result, indexesRead: mark.indexesRead }, 'garbage collection done');
      return result;
    } catch (err) {
      this.log.error({ err }, 'garbage collection failed');
      throw err;
    } finally {
      snapshot.release();
    }
  }

  /** Index directories of abandoned, deleted or unknown cycles (a point deleted just before a crash leaves one). */
  async #removeDeadIndexDirs(): Promise<number> {
    // Directories first, states second: a cycle's row exists before its directory, so a new cycle is never unknown.
    const dirs = await this.indexes.cycleIds();
    const states = this.repo.states();
    const compared = this.repo.previousOfRunning();
    let removed = 0;
    for (const id of dirs) {
      const state = states.get(id);
      if (state === 'running' || state === 'committed' || compared.has(id)) continue;
      await this.indexes.removeCycle(id);
      this.log.info({ cycle: id, state: state ?? 'not in the catalog' }, 'garbage collection: index directory removed');
      removed++;
    }
    return removed;
  }
}
