import { Router, type NextFunction, type Request, type Response } from 'express';
import { FerryError } from '@ferry/protocol';
import type { Principal } from '../auth/service.js';
import { intParam, json } from '../http/reply.js';
import type { AuditLog } from './service.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

function actorOf(p: Principal | undefined, req: Request): { actor: string; role: string | null } {
  if (!p) {
    // Read when the reply is sent: by then express has put back the full URL, so match on it.
    const route = req.originalUrl.split('?')[0]!;
    const name = route.endsWith('/login') || route.endsWith('/setup') ? (req.body as { username?: unknown } | undefined)?.username : undefined;
    return { actor: typeof name === 'string' ? `login:${name.slice(0, 64)}` : route.endsWith('/enroll') ? 'enroll-token' : 'anonymous', role: null };
  }
  switch (p.kind) {
    case 'admin':
      return 'userId' in p ? { actor: `user:${p.username}`, role: p.role } : { actor: `token:${p.tokenId}`, role: 'admin' };
    case 'agent':
      return { actor: `agent:${p.agentId}`, role: null };
    case 'restore':
      return { actor: `restore:${p.restoreId}`, role: null };
  }
}

/**
 * Records every state-changing API request when its reply is sent. An agent's or restore ISO's own data traffic
 * (block uploads, progress) is recorded only when refused: it is in the job log, and would drown everything else.
 */
export function auditRequests(audit: AuditLog) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (READS.has(req.method)) {
      next();
      return;
    }
    const done = (): void => {
      res.off('finish', done);
      res.off('close', done);
      const status = res.writableFinished ? res.statusCode : 499;
      const outcome = status < 400 ? 'ok' : status < 500 && status !== 499 ? 'refused' : 'failed';
      const p = res.locals.principal as Principal | undefined;
      if ((p?.kind === 'agent' || p?.kind === 'restore') && outcome === 'ok') return;
      const { actor, role } = actorOf(p, req);
      const code = (res.locals.errorCode as string | undefined) ?? null;
      audit.record({ actor, role, address: req.socket.remoteAddress ?? 'unknown', action: `${req.method} ${req.originalUrl.split('?')[0]!.slice(0, 200)}`, outcome, status, code });
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}

export function auditRoutes(audit: AuditLog): Router {
  const r = Router();
  r.get(
    '/audit',
    json((req) => {
      const limit = req.query.limit === undefined ? 100 : intParam(req.query.limit, 'limit');
      if (limit > 1000) throw new FerryError('BAD_REQUEST', `limit is at most 1000, got ${limit}`);
      const before = req.query.before === undefined ? null : intParam(req.query.before, 'before');
      return audit.list(limit, before);
    }),
  );
  return r;
}
