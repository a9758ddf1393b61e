import { Router } from 'express';
import { DiskInfoSchema, FerryError } from '@ferry/protocol';
import { z } from 'zod';
import type { SourceRepository } from './repository.js';
import type { SourceViews } from './view.js';
import { assertSourceAccess } from '../auth/service.js';
import { intParam, json, parse, principal } from '../http/reply.js';

export function sourceRoutes(sources: SourceRepository, views: SourceViews): Router {
  const r = Router();
  r.get(
    '/sources',
    json(() => views.list()),
  );
  r.get(
    '/sources/:id',
    json((req, res) => {
      const id = intParam(req.params.id, 'source id');
      assertSourceAccess(principal(res), id);
      const s = views.get(id);
      if (!s) throw new FerryError('SOURCE_NOT_FOUND', `source ${id} does not exist`);
      return s;
    }),
  );
  r.put(
    '/sources/:id/disks',
    json((req, res) => {
      const id = intParam(req.params.id, 'source id');
      assertSourceAccess(principal(res), id);
      if (!sources.exists(id)) throw new FerryError('SOURCE_NOT_FOUND', `source ${id} does not exist`);
      const disks = parse(z.strictObject({ disks: z.array(DiskInfoSchema).max(64) }), req.body).disks;
      return { disks: disks.map((d) => ({ id: sources.upsertDisk(id, d), key: d.key })) };
    }),
  );
  return r;
}
