import { Router } from 'express';
import { AddPassiveSourceRequestSchema, ConfirmHostKeyRequestSchema, PassiveCredentialsRequestSchema } from '@ferry/protocol';
import { assertAdmin } from '../auth/service.js';
import { intParam, json, parse, principal } from '../http/reply.js';
import type { PassiveService } from './service.js';

/** Passive sources (docs/api.md "Passive sources"): admin only; passwords and keys are never sent back. */
export function passiveRoutes(passive: PassiveService): Router {
  const r = Router();
  r.get(
    '/passive-sources',
    json((_req, res) => {
      assertAdmin(principal(res));
      return passive.list();
    }),
  );
  r.post(
    '/sources/passive',
    json(async (req, res) => {
      assertAdmin(principal(res));
      return passive.add(parse(AddPassiveSourceRequestSchema, req.body));
    }),
  );
  r.get(
    '/sources/:id/passive',
    json((req, res) => {
      assertAdmin(principal(res));
      return passive.get(intParam(req.params.id, 'source id'));
    }),
  );
  r.post(
    '/sources/:id/host-key',
    json((req, res) => {
      assertAdmin(principal(res));
      return passive.confirmHostKey(intParam(req.params.id, 'source id'), parse(ConfirmHostKeyRequestSchema, req.body).sha256);
    }),
  );
  r.put(
    '/sources/:id/passive/credentials',
    json((req, res) => {
      assertAdmin(principal(res));
      return passive.changeCredentials(intParam(req.params.id, 'source id'), parse(PassiveCredentialsRequestSchema, req.body));
    }),
  );
  return r;
}
