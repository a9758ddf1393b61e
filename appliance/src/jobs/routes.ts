import { Router } from 'express';
import { CancelJobRequestSchema, CompleteJobRequestSchema, CreateJobRequestSchema, JobSettingsRequestSchema } from '@ferry/protocol';
import type { JobService } from './service.js';
import { intParam, json, parse } from '../http/reply.js';

/** Jobs are run by people: every route here takes an admin credential (ROUTES; checked once in auth/routes.ts). */
export function jobRoutes(jobs: JobService): Router {
  const r = Router();
  const id = (p: unknown): number => intParam(p, 'job id');

  r.get('/jobs', json(() => jobs.list()));
  r.post('/jobs', json((req) => jobs.create(parse(CreateJobRequestSchema, req.body))));
  r.get('/jobs/:id', json((req) => jobs.get(id(req.params.id))));
  r.get('/jobs/:id/points', json((req) => jobs.points(id(req.params.id))));
  r.get('/jobs/:id/transitions', json((req) => jobs.transitions(id(req.params.id))));
  const logEntries = json((req) => jobs.logEntries(id(req.params.id)));
  r.get('/jobs/:id/log', async (req, res) => {
    // ?format=json goes through the one reply wrapper like every JSON route; the default is a text download.
    if (req.query.format === 'json') return logEntries(req, res);
    const jobId = id(req.params.id);
    const text = jobs.logText(jobId);
    res.type('text/plain; charset=utf-8').attachment(`ferry-job-${jobId}.log`).send(text);
  });
  r.post('/jobs/:id/sync-now', json((req) => jobs.syncNow(id(req.params.id))));
  r.post('/jobs/:id/pause', json((req) => jobs.pause(id(req.params.id))));
  r.post('/jobs/:id/resume', json((req) => jobs.resume(id(req.params.id))));
  r.post('/jobs/:id/retry', json((req) => jobs.retry(id(req.params.id))));
  r.post('/jobs/:id/complete', json((req) => jobs.complete(id(req.params.id), parse(CompleteJobRequestSchema, req.body ?? {}))));
  r.post('/jobs/:id/cancel', json((req) => jobs.cancel(id(req.params.id), parse(CancelJobRequestSchema, req.body ?? {}))));
  r.patch('/jobs/:id', json((req) => jobs.settings(id(req.params.id), parse(JobSettingsRequestSchema, req.body))));
  return r;
}
