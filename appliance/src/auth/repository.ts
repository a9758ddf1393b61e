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
  /** Set for a re-enrollment token: the agent it enrolls takes over this source instead of creating one. */
  source_id: number | null;
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

  createEnrollToken(secretHash: Buffer, expiresAt: string, sourceId: number | null = null): number {
    const r = this.db.prepare('INSERT INTO enroll_tokens (secret_hash, created_at, expires_at, source_id) VALUES (?, ?, ?, ?)').run(secretHash, now(), expiresAt, sourceId);
    return Number(r.lastInsertRowid);
  }

  enrollToken(id: number): EnrollTokenRow | undefined {
    return this.db.prepare('SELECT id, secret_hash, expires_at, used_at, source_id FROM enroll_tokens WHERE id = ?').get(id) as EnrollTokenRow | undefined;
  }

  /** Revokes every live credential of a source's agents; returns how many were live. */
  revokeAgentsOf(sourceId: number): number {
    return this.db.prepare('UPDATE agents SET revoked_at = ? WHERE source_id = ? AND revoked_at IS NULL').run(now(), sourceId).changes;
  }

  /** The source's agent credentials: how many were issued, how many are still live. */
  agentCredentials(sourceId: number): { issued: number; live: number } {
    return this.db
      .prepare('SELECT COUNT(*) AS issued, COALESCE(SUM(revoked_at IS NULL), 0) AS live FROM agents WHERE source_id = ?')
      .get(sourceId) as { issued: number; live: number };
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
