import { Router, type Response } from 'express';
import type { PointService } from './service.js';
import { assertAdmin, assertPointAccess } from '../auth/service.js';
import { intParam, json, principal } from '../http/reply.js';

/** Waits for the socket to want more; rejects if the client went away, so the stream stops reading chunks. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(new Error('the restore client closed the connection'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

export function pointRoutes(points: PointService, collectGarbage: (reason: string) => void): Router {
  const r = Router();
  r.delete(
    '/points/:id',
    json(async (req) => {
      const id = intParam(req.params.id, 'point id');
      await points.delete(id);
      collectGarbage(`point ${id} deleted`);
      return { deleted: id };
    }),
  );
  r.get(
    '/points',
    json((req, res) => {
      const p = principal(res);
      if (p.kind === 'agent') return points.list(p.sourceId);
      if (p.kind === 'restore') return [points.get(p.pointId)];
      assertAdmin(p);
      return points.list(req.query.sourceId === undefined ? undefined : intParam(req.query.sourceId, 'sourceId'));
    }),
  );
  r.get(
    '/points/:id',
    json((req, res) => {
      const id = intParam(req.params.id, 'point id');
      assertPointAccess(principal(res), id, (pid) => points.sourceOf(pid));
      return points.get(id);
    }),
  );
  r.get('/points/:id/disks/:diskId/index', async (req, res) => {
    const id = intParam(req.params.id, 'point id');
    assertPointAccess(principal(res), id, (pid) => points.sourceOf(pid));
    const diskId = intParam(req.params.diskId, 'disk id');
    // ?from=&to=: the header and a range of entries (the agent reads a previous point's index this way).
    const ranged = req.query.from !== undefined || req.query.to !== undefined;
    const body = ranged
      ? await points.indexRange(id, diskId, req.query.from === '0' ? 0 : intParam(req.query.from, 'from'), intParam(req.query.to, 'to'))
      : await points.index(id, diskId);
    res.type('application/octet-stream').send(body);
  });
  r.get('/points/:id/disks/:diskId/blocks', async (req, res) => {
    const id = intParam(req.params.id, 'point id');
    assertPointAccess(principal(res), id, (pid) => points.sourceOf(pid));
    const diskId = intParam(req.params.diskId, 'disk id');
    const from = req.query.from === '0' ? 0 : intParam(req.query.from, 'from');
    const to = intParam(req.query.to, 'to');
    let started = false;
    await points.streamBlocks(id, diskId, from, to, async (b) => {
      if (!started) {
        res.status(200).type('application/octet-stream');
        started = true;
      }
      if (!res.write(b)) await drained(res);
    });
    res.end();
  });
  return r;
}
