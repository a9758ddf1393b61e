import express, { type Express } from 'express';
import { existsSync } from 'node:fs';
import { API_PREFIX, FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { Appliance } from '../appliance.js';
import { authenticate, enrollRoutes } from '../auth/routes.js';
import { sourceRoutes } from '../sources/routes.js';
import { passiveRoutes } from '../passive/routes.js';
import { SourceViews } from '../sources/view.js';
import { uiRoutes, uiSessionRoutes } from '../ui/routes.js';
import { cycleRoutes } from '../cycles/routes.js';
import { pointRoutes } from '../points/routes.js';
import { jobRoutes } from '../jobs/routes.js';
import { restoreRoutes, restoreSessionRoutes } from '../restores/routes.js';
import { storageRoutes } from '../storage/routes.js';
import { transportRoutes } from '../transport/routes.js';
import { agentInstallRoutes, downloadRoutes, restoreIsoRoutes } from '../downloads/routes.js';
import { openApiDocument } from './openapi.js';
import { routeRules } from './policy.js';
import { agentCredentialRoutes } from '../agents/routes.js';
import { auditRequests, auditRoutes } from '../audit/routes.js';
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
  api.use(auditRequests(a.audit));
  api.use(express.json({ limit: '4mb', strict: true }));
  api.get('/health', json(() => ({ status: 'ok', version: opts.version })));
  const openapi = openApiDocument(opts.version);
  api.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  api.use(enrollRoutes(a.auth));
  api.use(restoreSessionRoutes(a.restores));
  // The web UI's first start, login and logout come before any credential exists.
  api.use(uiSessionRoutes(a.ui, a.auth));
  const ruleFor = routeRules();
  api.use(
    authenticate(a.auth, {
      ruleFor,
      agentRequest: (sourceId, req) => a.agents.trackRequest(sourceId, req.socket),
    }),
  );
  api.get('/appliance', json(() => ({ fingerprint: opts.fingerprint, version: opts.version })));
  api.use(passiveRoutes(a.passive));
  api.use(sourceRoutes(a.sources, new SourceViews({ sources: a.sources, online: (id) => a.agents.online(id), points: (id) => a.points.list(id) })));
  api.use(cycleRoutes(a.cycles));
  api.use(pointRoutes(a.points, (reason) => a.collectGarbage(reason)));
  api.use(jobRoutes(a.jobs));
  api.use(restoreRoutes(a.restores));
  api.use(storageRoutes(a.gc));
  api.use(transportRoutes(a.transport));
  api.use(uiRoutes(a.ui));
  api.use(agentCredentialRoutes(a.auth, a.agents, log));
  api.use(auditRoutes(a.audit));
  api.use(agentInstallRoutes(a.downloads, a.auth));
  api.use(restoreIsoRoutes(a.restoreIso));
  api.use(() => {
    throw new FerryError('NOT_FOUND', 'no such API route');
  });
  app.use(API_PREFIX, api);
  app.use(downloadRoutes(a.downloads));
  if (existsSync(opts.webRoot)) app.use(express.static(opts.webRoot, { index: 'index.html' }));
  app.use(errorHandler(log));
  return app;
}
