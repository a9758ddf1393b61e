import https from 'node:https';
import { Server } from 'socket.io';
import { AGENT_NAMESPACE, FerryError, initHashing, SOCKET_PATH, UI_NAMESPACE } from '@ferry/protocol';
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

/** How often the scheduler looks for due cycles and unreachable agents. */
const TICK_MS = 1000;

export interface ServerOptions {
  version: string;
  webRoot: string;
  clock?: Clock;
  /** SSH timing for passive sources; tests shorten it. */
  passive?: PassiveOptions;
}

export interface RunningServer {
  url: string;
  port: number;
  fingerprint: string;
  appliance: Appliance;
  close(): Promise<void>;
}

/** Starts the HTTPS API, the socket.io channels (agents, browsers) and the scheduler. */
export async function startServer(config: Config, log: Logger, opts: ServerOptions): Promise<RunningServer> {
  const paths = dataPaths(config.dataDir);
  await initHashing();
  const appliance = buildAppliance(config, log, { ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.passive ? { passive: opts.passive } : {}) });
  const tls = await loadOrCreateCertificate(paths.cert, paths.key);
  const app = createApp(appliance, log, { fingerprint: tls.fingerprint, version: opts.version, webRoot: opts.webRoot });
  const server = https.createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, app);
  server.requestTimeout = 0; // uploads and restore streams are long; idle sockets are still timed out below
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 30_000;

  // No CORS: the web UI is served from this origin, and agents are not browsers.
  const io = new Server(server, { path: SOCKET_PATH, serveClient: false, pingInterval: 10_000, pingTimeout: 10_000 });
  agentSocket(io.of(AGENT_NAMESPACE) as AgentNamespace, appliance.auth, appliance.agents, appliance.jobs, log);
  const ui = io.of(UI_NAMESPACE) as UiNamespace;
  uiSocket(ui, appliance.auth, appliance.jobs, log);
  appliance.uiEvents.attach(ui);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new FerryError('CONFIG_INVALID', `cannot listen on ${config.listenHost}:${config.listenPort}: ${err.code ?? err.message}`)),
    );
    server.listen(config.listenPort, config.listenHost, resolve);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listenPort;

  // Passive sources' agents reach this listener through their SSH tunnels.
  const loopback = config.listenHost === '0.0.0.0' ? '127.0.0.1' : config.listenHost === '::' ? '::1' : config.listenHost;
  appliance.passive.start({ host: loopback, port, fingerprint: tls.fingerprint });

  const timer = setInterval(() => {
    appliance.jobs.tick().catch((err: unknown) => log.error({ err }, 'scheduler tick failed'));
  }, TICK_MS);
  timer.unref();
  log.info({ port, dataDir: config.dataDir }, 'appliance started');

  let closed: Promise<void> | null = null;
  return {
    url: `https://${config.listenHost === '0.0.0.0' ? '127.0.0.1' : config.listenHost}:${port}`,
    port,
    fingerprint: tls.fingerprint,
    appliance,
    close: () =>
      (closed ??= (async () => {
        clearInterval(timer);
        await appliance.passive.close();
        await appliance.jobs.tick();
        await new Promise<void>((resolve) => {
          void io.close(() => resolve());
          server.closeAllConnections();
        });
        appliance.close();
      })()),
  };
}
