import type { Namespace } from 'socket.io';
import type { JobLogEntry, JobProgress, JobView, PassiveSourceView, RestoreView, ServerToUiEvents, SourceView, UiToServerEvents } from '@ferry/protocol';
import type { JobEvents } from '../jobs/service.js';
import type { RestoreEvents } from '../restores/service.js';

export type UiNamespace = Namespace<UiToServerEvents, ServerToUiEvents>;

/** A source's changes are sent at most this often: its agent's every request marks it seen. */
const SOURCE_EVERY_MS = 1000;

/**
 * Sends job, restore and source changes to every connected browser. Until the server attaches its socket.io
 * namespace (and in the command-line tools, which have none) events go nowhere: browsers load the current state
 * when they connect.
 */
export class UiEvents implements JobEvents, RestoreEvents {
  #nsp: UiNamespace | null = null;
  /** Sources with a source.updated due, and when each last had one. */
  readonly #sourceDue = new Map<number, NodeJS.Timeout>();
  readonly #sourceSentAt = new Map<number, number>();

  /** `sourceView`: a source as GET /sources/{id} answers it (undefined once it is gone). */
  constructor(private readonly sourceView: (sourceId: number) => SourceView | undefined) {}

  attach(nsp: UiNamespace): void {
    this.#nsp = nsp;
  }

  jobUpdated(job: JobView): void {
    this.#nsp?.emit('job.updated', job);
    // A job changes when it commits or deletes a point, which may be its source's last point.
    this.sourceChanged(job.sourceId);
  }

  /**
   * A source changed. The event goes out on the next turn of the event loop (after the caller's transaction has
   * committed), then at most once a second per source, each time with the state as it is when sent.
   */
  sourceChanged(sourceId: number): void {
    if (!this.#nsp || this.#sourceDue.has(sourceId)) return;
    const wait = Math.max(0, (this.#sourceSentAt.get(sourceId) ?? -Infinity) + SOURCE_EVERY_MS - Date.now());
    const timer = setTimeout(() => {
      this.#sourceDue.delete(sourceId);
      this.#sourceSentAt.set(sourceId, Date.now());
      const view = this.sourceView(sourceId);
      if (view) this.#nsp?.emit('source.updated', view);
    }, wait);
    timer.unref();
    this.#sourceDue.set(sourceId, timer);
  }

  /** Drops events not sent yet (the catalog they would read is closing). */
  close(): void {
    for (const timer of this.#sourceDue.values()) clearTimeout(timer);
    this.#sourceDue.clear();
    this.#nsp = null;
  }

  jobProgress(progress: JobProgress): void {
    this.#nsp?.emit('job.progress', progress);
  }

  jobLog(entry: JobLogEntry): void {
    this.#nsp?.emit('job.log', entry);
  }

  restoreUpdated(restore: RestoreView): void {
    this.#nsp?.emit('restore.updated', restore);
  }

  passiveUpdated(source: PassiveSourceView): void {
    this.#nsp?.emit('passive.updated', source);
  }
}
