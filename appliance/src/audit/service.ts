import type { Logger } from 'pino';
import type { AuditRepository, AuditRow } from './repository.js';

export type AuditEntry = AuditRow;

/** Entries kept; older ones are dropped so a flood of refused requests cannot fill the data disk. */
const KEEP = 200_000;
const PRUNE_EVERY = 1000;

/** Who did what, when, from which address, with what outcome: every state-changing request (docs/operator-guide.md). */
export class AuditLog {
  #sincePrune = 0;

  constructor(
    private readonly repo: AuditRepository,
    private readonly log: Logger,
  ) {}

  /** `at`: when it happened, if not now (attempts to unlock, kept until the catalog opened). */
  record(e: Omit<AuditRow, 'id' | 'at'>, at = new Date().toISOString()): void {
    try {
      this.repo.insert({ ...e, at });
      if (++this.#sincePrune >= PRUNE_EVERY) {
        this.#sincePrune = 0;
        this.repo.prune(KEEP);
      }
    } catch (err) {
      // The action itself has happened; a full disk must not turn it into an error reply. The log keeps the entry.
      this.log.error({ err, audit: e }, 'could not write the audit log entry');
    }
  }

  list(limit: number, before: number | null): AuditEntry[] {
    return this.repo.list(limit, before);
  }
}
