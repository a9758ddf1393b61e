import { Router } from 'express';
import { ChunkIdSchema, CommitCycleRequestSchema, FerryError, MissingChunksRequestSchema, StartCycleRequestSchema } from '@ferry/protocol';
import type { CycleService } from './service.js';
import { assertSourceAccess } from '../auth/service.js';
import { intParam, json, parse, principal } from '../http/reply.js';

export function cycleRoutes(cycles: CycleService): Router {
  const r = Router();
  r.post(
    '/chunks/missing',
    json(async (req) => {
      const { ids } = parse(MissingChunksRequestSchema, req.body);
      for (const id of ids) {
        if (!ChunkIdSchema.safeParse(id).success) throw new FerryError('CHUNK_ID_INVALID', `"${id.slice(0, 80)}" is not a chunk id: ids are 64 lowercase hex characters`);
      }
      return { missing: await cycles.missing(ids) };
    }),
  );
  r.post(
    '/cycles',
    json(async (req, res) => {
      const p = principal(res);
      if (p.kind !== 'agent') throw new FerryError('FORBIDDEN', 'cycles are started by a source agent with its own credential');
      return cycles.start(p.sourceId, parse(StartCycleRequestSchema, req.body));
    }),
  );
  r.get(
    '/cycles/:id',
    json((req, res) => {
      const id = intParam(req.params.id, 'cycle id');
      assertSourceAccess(principal(res), cycles.sourceOf(id));
      return cycles.state(id);
    }),
  );
  r.post(
    '/cycles/:id/stream',
    json(async (req, res) => {
      const id = intParam(req.params.id, 'cycle id');
      assertSourceAccess(principal(res), cycles.sourceOf(id));
      if (req.headers['content-type'] !== 'application/octet-stream') {
        throw new FerryError('STREAM_INVALID', 'upload a frame stream with Content-Type: application/octet-stream');
      }
      return cycles.ingest(id, req);
    }),
  );
  r.post(
    '/cycles/:id/commit',
    json(async (req, res) => {
      const id = intParam(req.params.id, 'cycle id');
      assertSourceAccess(principal(res), cycles.sourceOf(id));
      return cycles.commit(id, parse(CommitCycleRequestSchema, req.body));
    }),
  );
  return r;
}
