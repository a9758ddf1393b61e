import { Router } from 'express';
import type { GcReport } from '@ferry/protocol';
import { json } from '../http/reply.js';

/** Runs garbage collection now and answers with its report (it also runs by itself after points are deleted). */
export function storageRoutes(gc: { run(): Promise<GcReport> }): Router {
  const r = Router();
  r.post(
    '/storage/gc',
    json(async () => gc.run()),
  );
  return r;
}
