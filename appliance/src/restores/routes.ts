import { Router } from 'express';
import { CreateRestoreCodeRequestSchema, CreateRestoreRequestSchema, FerryError, OpenRestoreSessionRequestSchema, RestoreReportSchema } from '@ferry/protocol';
import type { RestoreService } from './service.js';
import { assertAdmin, type Principal } from '../auth/service.js';
import { intParam, json, parse, principal } from '../http/reply.js';

/** The restore ISO opens its session with the code alone, before any credential exists. */
export function restoreSessionRoutes(restores: RestoreService): Router {
  const r = Router();
  r.post(
    '/restore-sessions',
    json((req) => restores.openSession(parse(OpenRestoreSessionRequestSchema, req.body).code)),
  );
  return r;
}

function assertRestoreAccess(p: Principal, restoreId: number): void {
  if (p.kind === 'restore' && p.restoreId === restoreId) return;
  if (p.kind === 'restore') throw new FerryError('FORBIDDEN', `restore session ${p.restoreId} may not touch restore ${restoreId}`);
  assertAdmin(p);
}

export function restoreRoutes(restores: RestoreService): Router {
  const r = Router();
  const id = (v: unknown): number => intParam(v, 'restore id');
  r.get(
    '/restores',
    json(() => restores.list()),
  );
  r.post(
    '/restores',
    json((req) => restores.create(parse(CreateRestoreRequestSchema, req.body).pointId)),
  );
  r.post(
    '/restores/codes',
    json((req) => restores.createWithCode(parse(CreateRestoreCodeRequestSchema, req.body))),
  );
  r.get(
    '/restores/:id',
    json((req, res) => {
      assertRestoreAccess(principal(res), id(req.params.id));
      return restores.get(id(req.params.id));
    }),
  );
  r.post(
    '/restores/:id/report',
    json((req, res) => {
      assertRestoreAccess(principal(res), id(req.params.id));
      return restores.report(id(req.params.id), parse(RestoreReportSchema, req.body));
    }),
  );
  r.post(
    '/restores/:id/finish',
    json((req) => restores.finish(id(req.params.id), 'finished')),
  );
  r.post(
    '/restores/:id/cancel',
    json((req) => restores.finish(id(req.params.id), 'cancelled')),
  );
  return r;
}
