import { Router } from 'express';
import { CreateRestoreRequestSchema } from '@ferry/protocol';
import type { RestoreService } from './service.js';
import { assertAdmin } from '../auth/service.js';
import { intParam, json, parse, principal } from '../http/reply.js';

export function restoreRoutes(restores: RestoreService): Router {
  const r = Router();
  r.use('/restores', (_req, res, next) => {
    assertAdmin(principal(res));
    next();
  });
  r.get('/restores', json(() => restores.list()));
  r.post('/restores', json((req) => restores.create(parse(CreateRestoreRequestSchema, req.body).pointId)));
  r.get('/restores/:id', json((req) => restores.get(intParam(req.params.id, 'restore id'))));
  r.post('/restores/:id/finish', json((req) => restores.finish(intParam(req.params.id, 'restore id'), 'finished')));
  r.post('/restores/:id/cancel', json((req) => restores.finish(intParam(req.params.id, 'restore id'), 'cancelled')));
  return r;
}
