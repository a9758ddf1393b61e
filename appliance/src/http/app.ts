import express, { type Express } from 'express';
import { existsSync } from 'node:fs';
import { API_PREFIX, FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { Appliance } from '../appliance.js';
import { authenticate, enrollRoutes } from '../auth/routes.js';
import { sourceRoutes } from '../sources/routes.js';
import { cycleRoutes } from '../cycles/routes.js';
import { pointRoutes } from '../points/routes.js';
import { jobRoutes } from '../jobs/routes.js';
import { restoreRoutes, restoreSessionRoutes } from '../restores/routes.js';
import { storageRoutes } from '../storage/routes.js';
import { openApiDocument } from './openapi.js';
import { errorHandler, json } from './reply.js';

export interface AppOptions {
  fingerprint: string;
  version: string;
  webRoot: string;
}

export function createApp(a: Appliance, log: Logger, opts: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  const api = express.Router();
  api.use(express.json({ limit: '4mb', strict: true }));
  api.get('/health', json(() => ({ status: 'ok', version: opts.version })));
  const openapi = openApiDocument(opts.version);
  api.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  api.use(enrollRoutes(a.auth));
  api.use(restoreSessionRoutes(a.restores));
  api.use(authenticate(a.auth));
  api.get('/appliance', json(() => ({ fingerprint: opts.fingerprint, version: opts.version })));
  api.use(sourceRoutes(a.sources));
  api.use(cycleRoutes(a.cycles));
  api.use(pointRoutes(a.points, (reason) => a.collectGarbage(reason)));
  api.use(jobRoutes(a.jobs));
  api.use(restoreRoutes(a.restores));
  api.use(storageRoutes(a.gc));
  api.use(() => {
    throw new FerryError('NOT_FOUND', 'no such API route');
  });
  app.use(API_PREFIX, api);
  if (existsSync(opts.webRoot)) app.use(express.static(opts.webRoot, { index: 'index.html' }));
  app.use(errorHandler(log));
  return app;
}
