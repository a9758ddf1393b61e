import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { mkdirSync } from 'node:fs';
import express, { type Express } from 'express';
import { Server, type Socket } from 'socket.io';
import { AGENT_NAMESPACE, API_PREFIX, ERRORS, FerryError, initHashing, SOCKET_PATH, UI_NAMESPACE } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { buildAppliance, dataPaths, type Appliance } from './appliance.js';
import { createApp } from './http/app.js';
import { loadOrCreateCertificate } from './tls/certificate.js';
import { agentSocket, type AgentNamespace } from './agents/socket.js';
import { uiSocket } from './events/ui-socket.js';
import type { UiNamespace } from './events/ui-events.js';
import type { Clock } from './clock.js';
import type { PassiveOptions } from './passive/service.js';
import { errorHandler } from './http/reply.js';
import { ApplianceLock, type LockAttempt, type LockState } from './keys/lock.js';
import { lockRoutes } from './keys/routes.js';
import type { DataKeys } from './keys/data-keys.js';
import { answerClientError, DEFAULT_SLOW_BODY, guardSlowBody, type SlowBodyLimit } from './http/slow-body.js';

/** How often the scheduler looks for due cycles and unreachable agents. */
const TICK_MS = 1000;

export interface ServerOptions {
  version: string;
  webRoot: string;
  clock?: Clock;
  /** SSH timing for passive sources; tests shorten it. */
  passive?: PassiveOptions;
  /** Unlocks at start with this passphrase; a new data directory is initialised with it (encrypted). */
  passphrase?: string | undefined;
  /** The least rate of a request body (slow-loris guard); tests shorten the window. */
  slowBody?: SlowBodyLimit;
  /** Tests only: scrypt N for a keyring made at start (recorded in it). */
  testScryptN?: number | undefined;
}

export interface RunningServer {
  url: string;
  port: number;
  fingerprint: string;
  /** The running appliance; APPLIANCE_LOCKED while the server is not unlocked. */
  readonly appliance: Appliance;
  /** uninitialised, locked or unlocked (docs/operator-guide.md, first start and unlocking). */
  readonly state: LockState;
  unlock(passphrase: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the HTTPS server at once; the API, the socket.io channels and the scheduler come up when the appliance
 * is unlocked (at once for an unencrypted data directory, or with `opts.passphrase`). Until then only the health
 * check, unlock, initialise and the unlock page answer; everything else gets APPLIANCE_LOCKED.
 */
export async function startServer(config: Config, log: Logger, opts: ServerOptions): Promise<RunningServer> {
  const paths = dataPaths(config.dataDir);
  await initHashing();
  try {
    // The certificate is made before the appliance is unlocked (the unlock page is served over HTTPS).
    mkdirSync(paths.tls, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new FerryError('DATA_DIR_UNUSABLE', `cannot use ${config.dataDir} as the data directory: ${(err as Error).message}`, { cause: err });
  }
  const tls = await loadOrCreateCertificate(paths.cert, paths.key);
  let appliance: Appliance | null = null;
  let app: Express | null = null;
  let timer: NodeJS.Timeout | null = null;
  let port = config.listenPort;

  const outer = express();
  outer.disable('x-powered-by');
  const server = https.createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, outer);
  server.requestTimeout = 0; // uploads and restore streams are long; a body that trickles is cut by guardSlowBody
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 30_000;
  const slowBody = opts.slowBody ?? DEFAULT_SLOW_BODY;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => guardSlowBody(req, res, slowBody, log));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket));

  // No CORS: the web UI is served from this origin, and agents are not browsers.
  // maxHttpBufferSize: a bigger socket.io frame closes the connection (no event is that large; data goes over HTTPS).
  const io = new Server(server, { path: SOCKET_PATH, serveClient: false, pingInterval: 10_000, pingTimeout: 10_000, maxHttpBufferSize: 1_000_000 });
  const agentNs = io.of(AGENT_NAMESPACE) as AgentNamespace;
  const uiNs = io.of(UI_NAMESPACE) as UiNamespace;
  // Registered first, so it runs before each namespace's own credential check.
  for (const nsp of [io.of('/'), agentNs, uiNs] as { use(fn: (s: Socket, next: (err?: Error) => void) => void): unknown }[]) {
    nsp.use((_socket, next) => {
      if (lock.state === 'unlocked') {
        next();
        return;
      }
      const message = `the appliance is ${lock.state}: unlock it first`;
      next(Object.assign(new Error(message), { data: { code: 'APPLIANCE_LOCKED', hint: ERRORS.APPLIANCE_LOCKED.hint } }));
    });
  }
  // The main namespace has no use: nobody may hold a connection there (an unauthenticated foothold otherwise).
  io.of('/').use((_socket, next) => {
    next(Object.assign(new Error('no such socket.io namespace: use /agent or /ui'), { data: { code: 'NOT_FOUND', hint: ERRORS.NOT_FOUND.hint } }));
  });

  const bringUp = (keys: DataKeys | null, attempts: readonly LockAttempt[], dropped: number): Promise<void> => {
    const a = buildAppliance(config, log, { ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.passive ? { passive: opts.passive } : {}), keys });
    app = createApp(a, log, { fingerprint: tls.fingerprint, version: opts.version, webRoot: opts.webRoot });
    agentSocket(agentNs, a.auth, a.agents, a.jobs, log);
    uiSocket(uiNs, a.auth, a.jobs, a.sessionSockets, log);
    a.uiEvents.attach(uiNs);
    // Passive sources' agents reach this listener through their SSH tunnels.
    const loopback = config.listenHost === '0.0.0.0' ? '127.0.0.1' : config.listenHost === '::' ? '::1' : config.listenHost;
    a.passive.start({ host: loopback, port, fingerprint: tls.fingerprint });
    timer = setInterval(() => {
      a.jobs.tick().catch((err: unknown) => log.error({ err }, 'scheduler tick failed'));
      // Sessions that timed out while a socket was open lose it (checked every 30 s).
      a.sessionSockets.sweep((id) => a.ui.users.alive(id));
    }, TICK_MS);
    timer.unref();
    // Who tried the passphrase while locked, from where: written once the appliance is up (a bring-up that fails
    // keeps them for the next try, which hands them over again).
    const actionOf = (x: LockAttempt): string => (x.address === 'local' ? `${x.action} (passphrase given at start)` : `POST ${API_PREFIX}/${x.action}`);
    if (dropped > 0 && attempts[0]) {
      a.audit.record({ actor: 'anonymous', role: null, address: attempts[0].address, action: `${actionOf(attempts[0])}: ${dropped} earlier attempts while locked, not kept`, outcome: 'refused', status: 0, code: null }, attempts[0].at);
    }
    for (const x of attempts) a.audit.record({ actor: 'anonymous', role: null, address: x.address, action: actionOf(x), outcome: x.outcome, status: x.status, code: x.code }, x.at);
    appliance = a;
    return Promise.resolve();
  };
  const lock = new ApplianceLock(config.dataDir, log, { testScryptN: opts.testScryptN, onUnlocked: bringUp });
  outer.use(lockRoutes(lock, opts.version));
  outer.use((req, res, next) => {
    if (app) app(req, res, next);
    else next(new FerryError('APPLIANCE_LOCKED', 'the appliance is starting after unlock; try again in a moment'));
  });
  outer.use(errorHandler(log));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new FerryError('CONFIG_INVALID', `cannot listen on ${config.listenHost}:${config.listenPort}: ${err.code ?? err.message}`)),
    );
    server.listen(config.listenPort, config.listenHost, resolve);
  });
  const addr = server.address();
  port = typeof addr === 'object' && addr ? addr.port : config.listenPort;

  const closeServer = async (): Promise<void> => {
    if (timer) clearInterval(timer);
    const a = appliance;
    if (a) {
      await a.passive.close();
      await a.jobs.tick();
    }
    await new Promise<void>((resolve) => {
      void io.close(() => resolve());
      server.closeAllConnections();
    });
    a?.close();
  };
  try {
    if (lock.state === 'unlocked') await lock.openUnencrypted();
    else if (opts.passphrase !== undefined) {
      if (lock.state === 'uninitialised') await lock.initialize(opts.passphrase);
      else await lock.unlock(opts.passphrase);
    }
  } catch (err) {
    await closeServer();
    throw err;
  }
  log.info({ port, dataDir: config.dataDir, state: lock.state }, 'appliance started');

  let closed: Promise<void> | null = null;
  return {
    url: `https://${config.listenHost === '0.0.0.0' ? '127.0.0.1' : config.listenHost}:${port}`,
    port,
    fingerprint: tls.fingerprint,
    get appliance(): Appliance {
      if (!appliance) throw new FerryError('APPLIANCE_LOCKED', `the appliance is ${lock.state}`);
      return appliance;
    },
    get state(): LockState {
      return lock.state;
    },
    unlock: (passphrase) => lock.unlock(passphrase),
    close: () => (closed ??= closeServer()),
  };
}
