import { FerryError } from '@ferry/protocol';
import type { EnrollRequest, EnrollResponse } from '@ferry/protocol';
import type { AuthRepository } from './repository.js';
import type { SourceRepository } from '../sources/repository.js';
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from './secrets.js';
import type { Role } from './roles.js';

export type Principal =
  | { kind: 'admin'; tokenId: number; role: 'admin' }
  /** A person logged in to the web UI (session cookie); what they may do depends on their role. */
  | { kind: 'admin'; userId: number; sessionId: number; role: Role; username: string }
  | { kind: 'agent'; agentId: number; sourceId: number }
  | { kind: 'restore'; restoreId: number; pointId: number };

/** Looks up a restore session (the restore ISO's credential): only active restores with an open session. */
export type RestoreSessions = (restoreId: number) => { pointId: number; sessionHash: Buffer } | null;

/** Looks up a web UI session (the browser's cookie): valid and not expired, or null. */
export type BrowserSessions = (sessionId: number, secret: string) => { userId: number; sessionId: number; role: Role; username: string } | null;

/** How often an agent request may update its source's last_seen (a durable SQLite write). */
const TOUCH_INTERVAL_MS = 30_000;

export class AuthService {
  readonly #touched = new Map<number, number>();

  constructor(
    private readonly repo: AuthRepository,
    private readonly sources: SourceRepository,
    private readonly enrollTtlHours: number,
    private readonly restoreSessions: RestoreSessions,
    private readonly browserSessions: BrowserSessions = () => null,
  ) {}

  createApiToken(name: string): string {
    const secret = newSecret();
    const id = this.repo.createApiToken(name, hashSecret(secret));
    return formatToken('admin', id, secret);
  }

  /** With `sourceId`, a re-enrollment token: the agent that uses it becomes that source's agent (its old credentials are revoked). */
  createEnrollToken(ttlHours = this.enrollTtlHours, sourceId: number | null = null): { token: string; expiresAt: string } {
    if (sourceId !== null && !this.sources.exists(sourceId)) throw new FerryError('SOURCE_NOT_FOUND', `source ${sourceId} does not exist`);
    const secret = newSecret();
    const expiresAt = new Date(Date.now() + ttlHours * 3600_000).toISOString();
    const id = this.repo.createEnrollToken(hashSecret(secret), expiresAt, sourceId);
    return { token: formatToken('enroll', id, secret), expiresAt };
  }

  /** Revokes the source's agent credentials; the caller cuts its open connections. Returns how many were live. */
  revokeAgents(sourceId: number): number {
    if (!this.sources.exists(sourceId)) throw new FerryError('SOURCE_NOT_FOUND', `source ${sourceId} does not exist`);
    return this.repo.revokeAgentsOf(sourceId);
  }

  agentCredentials(sourceId: number): { issued: number; live: number } {
    return this.repo.agentCredentials(sourceId);
  }

  /** Exchanges a one-time enrollment token for a new source and that source's own agent credential. */
  enroll(req: EnrollRequest): EnrollResponse {
    const parsed = parseToken(req.token);
    const row = parsed?.kind === 'enroll' ? this.repo.enrollToken(parsed.id) : undefined;
    if (!parsed || !row || !secretMatches(parsed.secret, row.secret_hash)) {
      throw new FerryError('ENROLL_TOKEN_INVALID', 'the enrollment token is not one this appliance issued');
    }
    if (row.used_at) throw new FerryError('ENROLL_TOKEN_USED', `the enrollment token was already used at ${row.used_at}`);
    if (Date.parse(row.expires_at) < Date.now()) throw new FerryError('ENROLL_TOKEN_EXPIRED', `the enrollment token expired at ${row.expires_at}`);
    const secret = newSecret();
    return this.repo.transaction(() => {
      let sourceId: number;
      if (row.source_id !== null) {
        sourceId = row.source_id;
        // Re-enrollment: one live credential per source, the new one.
        this.repo.revokeAgentsOf(sourceId);
      } else {
        sourceId = this.sources.create(req.hostname, req.os ?? null);
      }
      const agentId = this.repo.createAgent(sourceId, hashSecret(secret));
      if (!this.repo.consumeEnrollToken(row.id, agentId)) {
        throw new FerryError('ENROLL_TOKEN_USED', 'the enrollment token was used by another agent at the same moment');
      }
      return { agentId, sourceId, credential: formatToken('agent', agentId, secret) };
    });
  }

  /** A credential for a source the appliance created itself (a passive source: no enrollment token involved). */
  createAgentCredential(sourceId: number): { agentId: number; credential: string } {
    const secret = newSecret();
    const agentId = this.repo.createAgent(sourceId, hashSecret(secret));
    return { agentId, credential: formatToken('agent', agentId, secret) };
  }

  /** A request's credential: its Authorization header (agents, scripts, the ISO), else the web UI's session cookie. */
  authenticateRequest(header: string | undefined, sessionCookie: string | null): Principal {
    if (header || !sessionCookie) return this.authenticate(header);
    return this.authenticateSession(sessionCookie);
  }

  /** A browser's session cookie value, `ferry_session_<id>_<secret>`. */
  authenticateSession(cookie: string): Principal {
    const parsed = parseToken(cookie);
    const s = parsed?.kind === 'session' ? this.browserSessions(parsed.id, parsed.secret) : null;
    if (!s) throw new FerryError('AUTH_INVALID', 'the web UI session has expired or was ended: log in again');
    return { kind: 'admin', userId: s.userId, sessionId: s.sessionId, role: s.role, username: s.username };
  }

  authenticate(header: string | undefined): Principal {
    if (!header) throw new FerryError('AUTH_REQUIRED', 'this route needs an Authorization: Bearer token (or, in a browser, logging in to the web UI)');
    const m = /^Bearer (\S+)$/.exec(header);
    const parsed = m ? parseToken(m[1]!) : null;
    if (parsed?.kind === 'admin') {
      const row = this.repo.apiToken(parsed.id);
      if (row && !row.revoked_at && secretMatches(parsed.secret, row.secret_hash)) return { kind: 'admin', tokenId: row.id, role: 'admin' };
    } else if (parsed?.kind === 'session') {
      return this.authenticateSession(m![1]!);
    } else if (parsed?.kind === 'agent') {
      const row = this.repo.agent(parsed.id);
      if (row && !row.revoked_at && secretMatches(parsed.secret, row.secret_hash)) {
        const now = Date.now();
        if (now - (this.#touched.get(row.source_id) ?? 0) >= TOUCH_INTERVAL_MS) {
          this.#touched.set(row.source_id, now);
          this.sources.touch(row.source_id);
        }
        return { kind: 'agent', agentId: row.id, sourceId: row.source_id };
      }
    } else if (parsed?.kind === 'restore') {
      const session = this.restoreSessions(parsed.id);
      if (session && secretMatches(parsed.secret, session.sessionHash)) return { kind: 'restore', restoreId: parsed.id, pointId: session.pointId };
    }
    throw new FerryError('AUTH_INVALID', 'the token is not valid (unknown, revoked or malformed)');
  }
}

/** Agents may touch only their own source; admins everything; a restore session no source. */
export function assertSourceAccess(p: Principal, sourceId: number): void {
  if (p.kind === 'agent' && p.sourceId !== sourceId) {
    throw new FerryError('FORBIDDEN', `agent ${p.agentId} may not access source ${sourceId}`);
  }
  if (p.kind === 'restore') throw new FerryError('FORBIDDEN', `restore session ${p.restoreId} may read only its own point`);
}

/** A point: its source's agent, an admin, or the restore session of that very point. */
export function assertPointAccess(p: Principal, pointId: number, sourceOf: (pointId: number) => number): void {
  if (p.kind === 'restore') {
    if (p.pointId !== pointId) throw new FerryError('FORBIDDEN', `restore session ${p.restoreId} may read only point ${p.pointId}`);
    return;
  }
  assertSourceAccess(p, sourceOf(pointId));
}

/** A person or an API token (any role: the route's role is checked once for all routes, auth/policy.ts). */
export function assertAdmin(p: Principal): void {
  if (p.kind !== 'admin') throw new FerryError('FORBIDDEN', 'this route needs an admin token');
}
