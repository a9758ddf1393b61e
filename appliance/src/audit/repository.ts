import type { AuditEntry } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';

export type AuditRow = AuditEntry;

/** The audit_log table (migration 006). */
export class AuditRepository {
  constructor(private readonly db: Catalog) {}

  insert(e: Omit<AuditRow, 'id'>): void {
    this.db
      .prepare('INSERT INTO audit_log (at, actor, role, address, action, outcome, status, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(e.at, e.actor, e.role, e.address, e.action, e.outcome, e.status, e.code);
  }

  /** Newest first; `before` pages back by id. */
  list(limit: number, before: number | null): AuditRow[] {
    return this.db
      .prepare('SELECT id, at, actor, role, address, action, outcome, status, code FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?')
      .all(before ?? Number.MAX_SAFE_INTEGER, limit) as AuditRow[];
  }

  /** Keeps the newest `keep` entries. */
  prune(keep: number): void {
    this.db.prepare('DELETE FROM audit_log WHERE id <= (SELECT MAX(id) FROM audit_log) - ?').run(keep);
  }
}
