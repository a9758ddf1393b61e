import { mkdirSync, accessSync, constants } from 'node:fs';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import { openCatalog, type Catalog } from './catalog/catalog.js';
import { AuthRepository } from './auth/repository.js';
import { AuthService } from './auth/service.js';
import { SourceRepository } from './sources/repository.js';
import { CycleRepository } from './cycles/repository.js';
import { CycleService } from './cycles/service.js';
import { PointService } from './points/service.js';
import { VerifyService } from './verify/service.js';
import { ChunkStore } from './store/chunk-store.js';
import { IndexFiles } from './store/index-file.js';
import { ChunkGuard } from './gc/guard.js';
import { GcRepository } from './gc/repository.js';
import { GcService } from './gc/service.js';
import { PointRepository } from './points/repository.js';
import { JobRepository } from './jobs/repository.js';
import { JobService, type AgentLink, type PointKeeper } from './jobs/service.js';
import { AgentHub } from './agents/hub.js';
import { UiEvents } from './events/ui-events.js';
import { WatchedAgentHub, WatchedSourceRepository } from './events/source-events.js';
import { SourceViews } from './sources/view.js';
import { RestoreRepository } from './restores/repository.js';
import { RestoreService } from './restores/service.js';
import { systemClock, type Clock } from './clock.js';
import { AGENT_UNIT_FILE, AgentDownloads } from './downloads/service.js';
import { RestoreIso } from './downloads/restore-iso.js';
import { buildUiServices, type UiServices } from './ui/build.js';
import { PassiveRepository } from './passive/repository.js';
import { PassiveService, DEFAULT_PASSIVE_OPTIONS, type PassiveOptions } from './passive/service.js';
import type { Config } from './config.js';
import { CatalogSecrets, type DataKeys } from './keys/data-keys.js';
import { storeKeys } from './keys/keyring.js';
import { TransportService } from './transport/service.js';
import { SessionSockets } from './auth/session-sockets.js';
import { AuditLog } from './audit/service.js';
import { AuditRepository } from './audit/repository.js';

/** Everything under one data directory, so the box can be switched off anywhere and shipped. */
export function dataPaths(dataDir: string) {
  return {
    catalog: path.join(dataDir, 'catalog.sqlite'),
    chunks: path.join(dataDir, 'chunks'),
    indexes: path.join(dataDir, 'indexes'),
    tls: path.join(dataDir, 'tls'),
    cert: path.join(dataDir, 'tls', 'cert.pem'),
    key: path.join(dataDir, 'tls', 'key.pem'),
    logs: path.join(dataDir, 'logs'),
    keys: path.join(dataDir, 'keys'),
    transport: path.join(dataDir, 'transport'),
  };
}

export interface Appliance {
  db: Catalog;
  auth: AuthService;
  sources: SourceRepository;
  cycles: CycleService;
  points: PointService;
  verify: VerifyService;
  jobs: JobService;
  agents: AgentHub;
  uiEvents: UiEvents;
  restores: RestoreService;
  gc: GcService;
  /** The web UI's accounts, dashboard, settings and storage verify runs. */
  ui: UiServices;
  /** The agent executable and its install script (`make agent-binary`). */
  downloads: AgentDownloads;
  /** The restore ISO engineers download to boot target VMs (`make iso`). */
  restoreIso: RestoreIso;
  /** Passive sources: reached over SSH, agent deployed and run by the appliance. */
  passive: PassiveService;
  /** Prepare for transport and the arrival check; its gate refuses job work until the arrival check passed. */
  transport: TransportService;
  /** Open /ui socket.io connections by web UI session (closed when the session ends). */
  sessionSockets: SessionSockets;
  /** Who did what, when, from where, with what outcome (every state-changing request). */
  audit: AuditLog;
  /** Starts garbage collection in the background (logged); for callers that must not wait for it. */
  collectGarbage(reason: string): void;
  close(): void;
}

export interface BuildOptions {
  /** The scheduler's clock; tests pass one they move by hand. */
  clock?: Clock;
  /** The agents' control channel as jobs see it; tests of job logic pass a scripted one. */
  agentLink?: AgentLink;
  /** SSH retry and keepalive timing for passive sources; tests shorten them. */
  passive?: PassiveOptions;
  /** The unlocked keyring of an encrypted data directory (docs/spec/encryption.md); without it its contents cannot be read (APPLIANCE_LOCKED). */
  keys?: DataKeys | null;
}

/** Builds the appliance's objects; each gets only what it uses. */
export function buildAppliance(config: Config, log: Logger, opts: BuildOptions = {}): Appliance {
  const clock = opts.clock ?? systemClock;
  const p = dataPaths(config.dataDir);
  try {
    for (const dir of [config.dataDir, p.chunks, p.indexes, p.tls, p.logs]) mkdirSync(dir, { recursive: true, mode: 0o750 });
    accessSync(config.dataDir, constants.W_OK);
  } catch (err) {
    throw new FerryError('DATA_DIR_UNUSABLE', `cannot use ${config.dataDir} as the data directory: ${(err as Error).message}`, { cause: err });
  }
  const db = openCatalog(p.catalog);
  // Browsers follow sources live: the repository and the agents' hub say when a source changed (source.updated).
  const uiEvents = new UiEvents((id) => sourceViews.get(id));
  const sourceChanged = (id: number): void => uiEvents.sourceChanged(id);
  const sources: SourceRepository = new WatchedSourceRepository(db, sourceChanged);
  const cycleRepo = new CycleRepository(db);
  const keys = storeKeys(config.dataDir, opts.keys);
  const chunks = new ChunkStore(p.chunks, keys);
  const indexes = new IndexFiles(p.indexes, keys);
  const pointRepo = new PointRepository(db);
  const points = new PointService(cycleRepo, sources, chunks, indexes, pointRepo);
  const agents: AgentHub = new WatchedAgentHub(clock, sourceChanged);
  const sourceViews = new SourceViews({ sources, online: (id) => agents.online(id), points: (id) => points.list(id) });
  const collectGarbage = (reason: string): void => {
    // GcService logs each run's summary or failure; here only why it ran.
    log.info({ reason }, 'garbage collection asked for');
    gc.run().catch(() => undefined);
  };
  const keeper: PointKeeper = {
    deletePoint: (id) => points.delete(id),
    inUse: (id) => points.inUse(id),
    abandonCycle: (id) => cycles.abandon(id),
    collectGarbage,
  };
  const jobs = new JobService(new JobRepository(db), sources, opts.agentLink ?? agents, keeper, uiEvents, clock, log, {
    suspendAfterMs: config.suspendAfterSeconds * 1000,
  });
  const guard = new ChunkGuard();
  const cycles = new CycleService(cycleRepo, sources, chunks, indexes, config.blockSize, log, jobs, guard);
  const restores = new RestoreService(new RestoreRepository(db), points, uiEvents, clock, log);
  const gc = new GcService(new GcRepository(db), chunks, indexes, guard, log);
  const sessionSockets = new SessionSockets();
  const ui = buildUiServices({
    sessionsEnded: (ids) => sessionSockets.end(ids),
    db,
    dataDir: config.dataDir,
    jobs: () => jobs.list(),
    restores: () => restores.list(),
    // Built below (it needs auth, which needs the web UI's sessions); only called once the appliance serves.
    passive: () => passive.list(),
    online: (id) => agents.online(id),
    verify: new VerifyService(cycleRepo, chunks, indexes),
    log,
  });
  const auth = new AuthService(new AuthRepository(db), sources, config.enrollTokenTtlHours, (id) => restores.session(id), (id, secret) => ui.users.session(id, secret));
  const downloads = new AgentDownloads(config.agentBinary, AGENT_UNIT_FILE);
  const passive = new PassiveService(new PassiveRepository(db, new CatalogSecrets(keys)), sources, auth, downloads, uiEvents, log, opts.passive ?? DEFAULT_PASSIVE_OPTIONS);
  const transport = new TransportService({
    dir: p.transport,
    cycles: cycleRepo,
    cycleService: cycles,
    jobs,
    verify: new VerifyService(cycleRepo, chunks, indexes),
    chunks,
    indexes,
    keys,
    collectGarbage: () => gc.run(),
    log,
  });
  return {
    db,
    sources,
    transport,
    auth,
    cycles,
    points,
    verify: new VerifyService(cycleRepo, chunks, indexes),
    jobs,
    agents,
    uiEvents,
    restores,
    gc,
    ui,
    downloads,
    restoreIso: new RestoreIso(config.restoreIso),
    passive,
    collectGarbage,
    sessionSockets,
    audit: new AuditLog(new AuditRepository(db), log),
    close: () => {
      uiEvents.close();
      db.close();
    },
  };
}
