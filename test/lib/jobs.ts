import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { io, type Socket } from 'socket.io-client';
import { API_PREFIX, ApplianceClient, SOCKET_PATH, UI_NAMESPACE, type JobView, type ServerToUiEvents, type UiToServerEvents } from '@ferry/protocol';
import { loadConfig, ManualClock, startServer, type PassiveOptions, type RunningServer } from '@ferry/appliance/testing';
import { ferryOk, ROOT, TEST_PASSPHRASE, TEST_SCRYPT_N } from './cli.js';

/**
 * An appliance running inside the test process with a clock the test moves by hand, so schedules of hours
 * run in seconds. Everything else is real: HTTPS, socket.io, SQLite, the chunk store, and agents as processes.
 */
export interface TestAppliance {
  server: RunningServer;
  clock: ManualClock;
  admin: ApplianceClient;
  dataDir: string;
  enroll(stateDir: string, name: string): Promise<void>;
  job(id: number): Promise<JobView>;
  /** Moves the clock and runs the scheduler once. */
  advance(ms: number): Promise<void>;
  waitFor(what: string, jobId: number, pred: (j: JobView) => boolean, timeoutMs?: number): Promise<JobView>;
  close(): Promise<void>;
}

export interface TestApplianceOptions {
  suspendAfterSeconds?: number;
  passive?: PassiveOptions;
  /** HOST:PORT to listen on (default 127.0.0.1, any port); agents in a namespace need the host's veth address. */
  listen?: string;
  /**
   * The data directory (created if missing; the caller's to remove: close() leaves it). Default: a fresh
   * temporary directory, removed by close(). The disk-full faults put it on a small file system.
   */
  dataDir?: string;
}

export async function startTestAppliance(opts: TestApplianceOptions = {}): Promise<TestAppliance> {
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'ferry-jobs-appliance-')));
  if (opts.dataDir) await mkdir(opts.dataDir, { recursive: true });
  const clock = new ManualClock(Date.parse('2026-03-01T08:00:00Z'));
  const config = loadConfig({ data: dataDir, listen: opts.listen ?? '127.0.0.1:0', suspendAfter: String(opts.suspendAfterSeconds ?? 900) }, {});
  const server = await startServer(config, pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' }), {
    version: 'test',
    webRoot: path.join(ROOT, 'web/dist'),
    clock,
    ...(opts.passive ? { passive: opts.passive } : {}),
    // Encrypted like every test appliance: initialised with the test passphrase at start.
    passphrase: TEST_PASSPHRASE,
    testScryptN: TEST_SCRYPT_N,
  });
  const admin = new ApplianceClient(server.url, server.fingerprint, server.appliance.auth.createApiToken('test'));
  const job = (id: number): Promise<JobView> => admin.json<JobView>(`${API_PREFIX}/jobs/${id}`);
  return {
    server,
    clock,
    admin,
    dataDir,
    enroll: async (stateDir, name) => {
      const token = server.appliance.auth.createEnrollToken(1).token;
      await ferryOk('agent', ['enroll', '--appliance', server.url, '--fingerprint', server.fingerprint, '--token', token, '--state', stateDir, '--name', name]);
    },
    job,
    advance: async (ms) => {
      clock.advance(ms);
      await server.appliance.jobs.tick();
    },
    waitFor: async (what, jobId, pred, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      let last: JobView | undefined;
      while (Date.now() < deadline) {
        last = await job(jobId);
        if (pred(last)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`timed out waiting for job ${jobId}: ${what}; last seen ${JSON.stringify(last, null, 1)}\n${server.appliance.jobs.logText(jobId)}`);
    },
    close: async () => {
      admin.close();
      await server.close();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface AgentDaemon {
  process: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `ferry-agent run` as a field engineer's systemd unit would, on the given disks (in `netns`, if given). */
export function startAgentDaemon(stateDir: string, disks: string[], opts: { netns?: string; env?: NodeJS.ProcessEnv } = {}): AgentDaemon {
  const argv = [process.execPath, path.join(ROOT, 'agent/bin/ferry-agent.js'), 'run', '--state', stateDir, '--disk', ...disks];
  const [cmd, ...args] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const child = spawn(cmd!, args, {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return {
    process: child,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
}

export interface UiWatcher {
  /** `at`: when the event arrived (Date.now()), for rates measured by the test. */
  events: { name: keyof ServerToUiEvents; data: unknown; at: number }[];
  close(): void;
}

/** Listens to the live channel as a browser does (admin credential, pinned certificate). */
export async function watchUi(t: TestAppliance): Promise<UiWatcher> {
  const socket: Socket<ServerToUiEvents, UiToServerEvents> = io(new URL(UI_NAMESPACE, t.server.url).toString(), {
    path: SOCKET_PATH,
    transports: ['websocket'],
    agent: t.admin.httpsAgent as unknown as string,
    auth: { token: t.admin.credential },
  });
  const events: UiWatcher['events'] = [];
  socket.on('job.updated', (data) => events.push({ name: 'job.updated', data, at: Date.now() }));
  socket.on('job.progress', (data) => events.push({ name: 'job.progress', data, at: Date.now() }));
  socket.on('job.log', (data) => events.push({ name: 'job.log', data, at: Date.now() }));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return { events, close: () => socket.disconnect() };
}

/** Enrolls an agent state as source `name` and backs `image` up with the `ferry-agent backup` CLI: the new point's id. */
export async function enrollAndBackUp(t: TestAppliance, stateDir: string, name: string, image: string): Promise<number> {
  await t.enroll(stateDir, name);
  const r = await ferryOk('agent', ['backup', '--state', stateDir, '--disk', image, '--json']);
  return (JSON.parse(r.stdout) as { point: { id: number } }).point.id;
}

/** Restores a point with `ferry-restore` into a file under `work` and checks it is byte-equal to `image`. */
export async function restoreEquals(t: TestAppliance, pointId: number, image: string, work: string): Promise<void> {
  const target = path.join(work, `restore-${pointId}.img`);
  await ferryOk('restore', [
    '--appliance',
    t.server.url,
    '--fingerprint',
    t.server.fingerprint,
    '--token',
    t.admin.credential!,
    '--point',
    String(pointId),
    '--target',
    target,
  ]);
  assert.ok((await readFile(target)).equals(await readFile(image)), `point ${pointId} restores byte-equal to ${image}`);
  await rm(target);
}
