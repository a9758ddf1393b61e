import { Router } from 'express';
import { AddPassiveSourceRequestSchema, ConfirmHostKeyRequestSchema, PassiveCredentialsRequestSchema } from '@ferry/protocol';
import { intParam, json, parse } from '../http/reply.js';
import type { PassiveService } from './service.js';

/** Passive sources (docs/api.md "Passive sources"): admin only; passwords and keys are never sent back. */
export function passiveRoutes(passive: PassiveService): Router {
  const r = Router();
  r.get(
    '/passive-sources',
    json(() => passive.list()),
  );
  r.post(
    '/sources/passive',
    json(async (req) => passive.add(parse(AddPassiveSourceRequestSchema, req.body))),
  );
  r.get(
    '/sources/:id/passive',
    json((req) => passive.get(intParam(req.params.id, 'source id'))),
  );
  r.post(
    '/sources/:id/host-key',
    json((req) => passive.confirmHostKey(intParam(req.params.id, 'source id'), parse(ConfirmHostKeyRequestSchema, req.body).sha256)),
  );
  r.put(
    '/sources/:id/passive/credentials',
    json((req) => passive.changeCredentials(intParam(req.params.id, 'source id'), parse(PassiveCredentialsRequestSchema, req.body))),
  );
  return r;
}
