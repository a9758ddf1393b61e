import { randomBytes } from 'node:crypto';
import {
  FerryError,
  normalizeRestoreCode,
  RESTORE_CODE_PATTERN,
  type CreateRestoreCodeRequest,
  type Point,
  type RestorePhase,
  type RestoreReport,
  type RestoreSession,
  type RestoreStep,
  type RestoreView,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import { iso, type Clock } from '../clock.js';
import { formatToken, hashSecret, newSecret } from '../auth/secrets.js';
import type { RestoreRepository, RestoreRow } from './repository.js';

/** Crockford base32: no I, L, O, U, so a code read off a screen is typed back right. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function newCode(): string {
  const bytes = randomBytes(16);
  let s = '';
  for (let i = 0; i < 16; i++) s += ALPHABET[bytes[i]! & 31];
  return s.match(/.{4}/g)!.join('-');
}

export interface RestoreEvents {
  restoreUpdated(r: RestoreView): void;
}

export interface PointLookup {
  exists(pointId: number): boolean;
  get(pointId: number): Point;
}

/**
 * Restores of points. A restore pins its point (retention keeps it) and, when made with a code, is the session
 * the restore ISO opens: the code is exchanged for a credential that can read only this point and report progress.
 */
export class RestoreService {
  constructor(
    private readonly repo: RestoreRepository,
    private readonly points: PointLookup,
    private readonly events: RestoreEvents,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  create(pointId: number): RestoreView {
    this.#point(pointId);
    return this.get(this.repo.create(pointId, this.#now()));
  }

  /** A restore with a code for the restore ISO; the code is shown once and stored only as a hash. */
  createWithCode(req: CreateRestoreCodeRequest): { restore: RestoreView; code: string } {
    this.#point(req.pointId);
    const code = newCode();
    const expiresAt = iso(this.clock.now() + (req.ttlHours ?? 24) * 3600_000);
    const id = this.repo.create(req.pointId, this.#now(), { hash: hashSecret(code), expiresAt, targetDisks: req.targetDisks ?? null });
    this.log.info({ restore: id, point: req.pointId }, 'restore code created');
    return { restore: this.get(id), code };
  }

  /** Exchanges a restore code for a session credential. A new session replaces the previous one of the restore. */
  openSession(typed: string): RestoreSession {
    const code = normalizeRestoreCode(typed);
    if (!RESTORE_CODE_PATTERN.test(code)) throw new FerryError('RESTORE_CODE_INVALID', `"${typed.slice(0, 40)}" is not a restore code (16 characters, XXXX-XXXX-XXXX-XXXX)`);
    const row = this.repo.byCode(hashSecret(code));
    if (!row) throw new FerryError('RESTORE_CODE_INVALID', `the restore code ${code} is not one this appliance issued`);
    if (row.state !== 'active') throw new FerryError('RESTORE_NOT_ACTIVE', `restore ${row.id} was ${row.state} at ${row.finished_at ?? '?'}`);
    if (row.code_expires_at && Date.parse(row.code_expires_at) < this.clock.now()) {
      throw new FerryError('RESTORE_CODE_EXPIRED', `the restore code expired at ${row.code_expires_at}`);
    }
    const secret = newSecret();
    this.repo.update(row.id, { session_hash: hashSecret(secret), phase: 'connected', error_code: null, error_message: null }, this.#now());
    this.#changed(row.id);
    return {
      restoreId: row.id,
      token: formatToken('restore', row.id, secret),
      point: this.points.get(row.point_id),
      targetDisks: row.target_disks,
      verified: parseJson<{ slot: number; nextBlock: number }[]>(row.verified, []),
    };
  }

  report(restoreId: number, r: RestoreReport): RestoreView {
    const row = this.#active(restoreId);
    const patch: Parameters<RestoreRepository['update']>[1] = { phase: r.phase };
    if (r.progress) patch.progress = JSON.stringify(r.progress);
    if (r.verified) patch.verified = JSON.stringify(r.verified);
    if (r.step) {
      patch.steps = JSON.stringify([...parseJson<RestoreStep[]>(row.steps, []), r.step]);
      this.log.info({ restore: restoreId, step: r.step }, 'restore step');
    }
    if (r.error) {
      patch.error_code = r.error.code;
      patch.error_message = r.error.message;
      this.log.warn({ restore: restoreId, code: r.error.code }, r.error.message);
    }
    this.repo.update(restoreId, patch, this.#now());
    if (r.phase === 'done') this.repo.finish(restoreId, 'finished', this.#now());
    return this.#changed(restoreId);
  }

  list(): RestoreView[] {
    return this.repo.list().map((r) => this.#view(r));
  }

  get(id: number): RestoreView {
    return this.#view(this.#row(id));
  }

  pointOf(id: number): number {
    return this.#row(id).point_id;
  }

  finish(id: number, state: 'finished' | 'cancelled'): RestoreView {
    this.#active(id);
    this.repo.finish(id, state, this.#now());
    return this.#changed(id);
  }

  /** The session credential check used by authentication. */
  session(id: number): { pointId: number; sessionHash: Buffer } | null {
    const r = this.repo.get(id);
    if (!r || r.state !== 'active' || !r.session_hash) return null;
    return { pointId: r.point_id, sessionHash: r.session_hash };
  }

  #changed(id: number): RestoreView {
    const v = this.get(id);
    this.events.restoreUpdated(v);
    return v;
  }

  #point(pointId: number): void {
    if (!this.points.exists(pointId)) throw new FerryError('POINT_NOT_FOUND', `point ${pointId} does not exist`);
  }

  #row(id: number): RestoreRow {
    const r = this.repo.get(id);
    if (!r) throw new FerryError('RESTORE_NOT_FOUND', `restore ${id} does not exist`);
    return r;
  }

  #active(id: number): RestoreRow {
    const r = this.#row(id);
    if (r.state !== 'active') throw new FerryError('RESTORE_NOT_ACTIVE', `restore ${id} is ${r.state}`);
    return r;
  }

  #now(): string {
    return iso(this.clock.now());
  }

  #view(r: RestoreRow): RestoreView {
    let pointName = `point ${r.point_id}`;
    let sourceName = '';
    try {
      const p = this.points.get(r.point_id);
      pointName = p.name;
      sourceName = p.sourceName;
    } catch {
      // a finished restore of a point deleted since
    }
    return {
      id: r.id,
      pointId: r.point_id,
      pointName,
      sourceName,
      state: r.state,
      phase: (r.phase ?? 'waiting') as RestorePhase,
      targetDisks: r.target_disks,
      codeExpiresAt: r.code_expires_at,
      progress: parseJson(r.progress, null),
      verified: parseJson(r.verified, []),
      steps: parseJson(r.steps, []),
      error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      finishedAt: r.finished_at,
    };
  }
}

function parseJson<T>(text: string | null, fallback: T): T {
  return text ? (JSON.parse(text) as T) : fallback;
}
