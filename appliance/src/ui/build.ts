import type { Logger } from 'pino';
import type { JobView, PassiveSourceView, RestoreView } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import type { VerifyService } from '../verify/service.js';
import { UserRepository } from './repository.js';
import { UserService, type SessionsEnded } from './users.js';
import { DashboardRepository, DashboardService } from './dashboard.js';
import { SettingsService } from './settings.js';
import { VerifyRuns } from './verify-runs.js';

export interface UiServices {
  users: UserService;
  settings: SettingsService;
  dashboard: DashboardService;
  verifyRuns: VerifyRuns;
}

export interface UiDeps {
  db: Catalog;
  dataDir: string;
  jobs: () => JobView[];
  restores: () => RestoreView[];
  passive: () => PassiveSourceView[];
  online: (sourceId: number) => boolean;
  verify: VerifyService;
  log: Logger;
  /** Web UI sessions that ended: their open /ui sockets are closed. */
  sessionsEnded: SessionsEnded;
}

/** The web UI's services (accounts, dashboard, settings, storage verify runs), built once by buildAppliance. */
export function buildUiServices(d: UiDeps): UiServices {
  const repo = new UserRepository(d.db);
  return {
    users: new UserService(repo, d.sessionsEnded),
    settings: new SettingsService(repo),
    dashboard: new DashboardService({ repo: new DashboardRepository(d.db), dataDir: d.dataDir, jobs: d.jobs, restores: d.restores, passive: d.passive, online: d.online }),
    verifyRuns: new VerifyRuns(d.verify, d.log),
  };
}
