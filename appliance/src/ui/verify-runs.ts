import type { Logger } from 'pino';
import type { VerifyReport, VerifyService } from '../verify/service.js';
import type { VerifyStatus } from './types.js';

/**
 * Storage verify started from the appliance page: one run at a time in the background; the page polls the
 * status. A second start while one runs returns the running one.
 */
export class VerifyRuns {
  #status: VerifyStatus = { running: false, startedAt: null, finishedAt: null, progress: null, report: null, error: null };

  constructor(
    private readonly verify: VerifyService,
    private readonly log: Logger,
  ) {}

  status(): VerifyStatus {
    return structuredClone(this.#status);
  }

  start(): VerifyStatus {
    if (this.#status.running) return this.status();
    this.#status = { ...this.#status, running: true, startedAt: new Date().toISOString(), finishedAt: null, progress: null, error: null };
    this.verify
      .run((p) => (this.#status.progress = p))
      .then((report: VerifyReport) => {
        this.#status = { ...this.#status, running: false, finishedAt: new Date().toISOString(), report };
        this.log.info({ ok: report.ok, chunks: report.chunksChecked, damaged: report.damagedChunks.length }, 'storage verify finished');
      })
      .catch((err: unknown) => {
        this.#status = { ...this.#status, running: false, finishedAt: new Date().toISOString(), error: (err as Error).message };
        this.log.error({ err }, 'storage verify failed');
      });
    return this.status();
  }
}
