import type { Namespace } from 'socket.io';
import type { JobLogEntry, JobProgress, JobView, PassiveSourceView, RestoreView, ServerToUiEvents, UiToServerEvents } from '@ferry/protocol';
import type { JobEvents } from '../jobs/service.js';
import type { RestoreEvents } from '../restores/service.js';

export type UiNamespace = Namespace<UiToServerEvents, ServerToUiEvents>;

/**
 * Sends job changes to every connected browser. Until the server attaches its socket.io namespace (and in the
 * command-line tools, which have none) events go nowhere: browsers load the current state when they connect.
 */
export class UiEvents implements JobEvents, RestoreEvents {
  #nsp: UiNamespace | null = null;

  attach(nsp: UiNamespace): void {
    this.#nsp = nsp;
  }

  jobUpdated(job: JobView): void {
    this.#nsp?.emit('job.updated', job);
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
