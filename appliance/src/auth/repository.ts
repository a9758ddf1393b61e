import type { Catalog } from '../catalog/catalog.js';
import { now } from '../catalog/catalog.js';

export interface TokenRow {
  id: number;
  secret_hash: Buffer;
  revoked_at: string | null;
}
export interface EnrollTokenRow {
  id: number;
  secret_hash: Buffer;
  expires_at: string;
  used_at: string | null;
}
export interface AgentRow {
  id: number;
  source_id: number;
  secret_hash: Buffer;
  revoked_at: string | null;
}

export class AuthRepository {
  constructor(private readonly db: Catalog) {}

  createApiToken(name: string, secretHash: Buffer): number {
    const r = this.db.prepare("INSERT INTO api_tokens (name, secret_hash, role, created_at) VALUES (?, ?, 'admin', ?)").run(name, secretHash, now());
    return Number(r.lastInsertRowid);
  }

  apiToken(id: number): TokenRow | undefined {
    return this.db.prepare('SELECT id, secret_hash, revoked_at FROM api_tokens WHERE id = ?').get(id) as TokenRow | undefined;
  }

  createEnrollToken(secretHash: Buffer, expiresAt: string): number {
    const r = this.db.prepare('INSERT INTO enroll_tokens (secret_hash, created_at, expires_at) VALUES (?, ?, ?)').run(secretHash, now(), expiresAt);
    return Number(r.lastInsertRowid);
  }

  enrollToken(id: number): EnrollTokenRow | undefined {
    return this.db.prepare('SELECT id, secret_hash, expires_at, used_at FROM enroll_tokens WHERE id = ?').get(id) as EnrollTokenRow | undefined;
  }

  /** Marks the token used only if it still was unused: two racing enrollments cannot both win. */
  consumeEnrollToken(id: number, agentId: number): boolean {
    return this.db.prepare('UPDATE enroll_tokens SET used_at = ?, agent_id = ? WHERE id = ? AND used_at IS NULL').run(now(), agentId, id).changes === 1;
  }

  createAgent(sourceId: number, secretHash: Buffer): number {
    const r = this.db.prepare('INSERT INTO agents (source_id, secret_hash, created_at) VALUES (?, ?, ?)').run(sourceId, secretHash, now());
    return Number(r.lastInsertRowid);
  }

  agent(id: number): AgentRow | undefined {
    return this.db.prepare('SELECT id, source_id, secret_hash, revoked_at FROM agents WHERE id = ?').get(id) as AgentRow | undefined;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
