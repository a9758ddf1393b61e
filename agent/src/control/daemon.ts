import os from 'node:os';
import { ApplianceClient, DEFAULT_THROTTLE, initHashing, type Reply } from '@ferry/protocol';
import { LiveThrottle } from '../backup/throttle.js';
import { loadState, type AgentState } from '../state.js';
import { answer } from './answer.js';
import { openControlChannel } from './channel.js';
import { describeConnectError, describeDisconnect, RepeatedProblem } from './connect-error.js';
import { CycleControl, type CycleReports } from './cycle-control.js';
import { diskCycleRunner, type AgentSourceSettings } from './disk-cycle.js';
import { removeStaleSnapshots } from '../disk/snapshot.js';
import type { Log } from './log.js';

export interface DaemonOptions {
  /**
   * Where the enrollment comes from: the state directory (`ferry-agent run`, re-read after a refused
   * credential so a re-enrollment is picked up), or given whole (`ferry-agent passive`, which gets it from
   * the appliance over SSH and keeps nothing on the source).
   */
  enrollment: { stateDir: string } | { state: AgentState };
  /** Resolves with a reason when the daemon must stop for a cause other than a signal (stdin closed). */
  stop?: Promise<string>;
  /** Disks to back up; undefined: every disk found when a cycle starts. */
  disks: string[] | undefined;
  /** --exclude, --pre-hook, --post-hook: added to every job's settings. */
  source?: AgentSourceSettings;
  version: string;
  log: Log;
}

/**
 * After the appliance itself refused the connection (credential revoked, appliance reinstalled) socket.io
 * does not retry, and a quick retry could not succeed: try again this often, with the credential the state
 * file holds by then, so a re-enrollment is picked up without restarting the service.
 */
export const REFUSED_RETRY_MS = 60_000;

/** How long a stop waits for the running cycle to wind down (an upload to break off) before exiting anyway. */
const SHUTDOWN_GRACE_MS = 20_000;

function terminationSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve(sig));
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * `ferry-agent run`: keeps the control channel to the appliance open and runs the cycles it asks for.
 * Resolves with the exit code once told to stop (SIGTERM/SIGINT) or once the enrollment changed under it.
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const { log } = opts;
  await initHashing();
  const { enrollment } = opts;
  const state = 'state' in enrollment ? enrollment.state : await loadState(enrollment.stateDir);
  const stateDir = 'stateDir' in enrollment ? enrollment.stateDir : null;
  const client = new ApplianceClient(state.appliance, state.fingerprint, state.credential);
  const host = client.base.host;
  let token = state.credential;
  const socket = openControlChannel(state.appliance, client, () => token, false);
  const enrollCommand = stateDir
    ? `ferry-agent enroll --appliance ${state.appliance} --fingerprint ${state.fingerprint} --token T --state ${stateDir}`
    : 'the appliance to redeploy this passive source';

  const onBug = (err: unknown): void => log(`internal error — this is a bug; please report it:\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  const acknowledged =
    (event: string) =>
    (reply: Reply<null>): void => {
      if (!reply.ok) log(`the appliance did not accept ${event}: ${reply.message} (error ${reply.code})`);
    };
  const reports: CycleReports = {
    // Progress is volatile: dropped while disconnected, as stale progress only misleads after a reconnect.
    progress: (r) => {
      socket.volatile.emit('cycle.progress', r);
    },
    // Outcomes are buffered by socket.io while disconnected and sent on reconnect (before agent.hello).
    failed: (r) => {
      socket.emit('cycle.failed', r, acknowledged('cycle.failed'));
    },
    stopped: (r) => {
      socket.emit('cycle.stopped', r, acknowledged('cycle.stopped'));
    },
    // Buffered while disconnected, like the outcomes: the job log should say how the cycle read its disks.
    log: (r) => {
      socket.emit('cycle.log', r);
    },
  };
  const control = new CycleControl(diskCycleRunner(client, opts.disks, opts.source), reports, new LiveThrottle(DEFAULT_THROTTLE), log);

  socket.on('cycle.run', (cmd, ack) => void answer(ack, () => control.run(cmd), onBug));
  socket.on('cycle.stop', (cmd, ack) => void answer(ack, () => control.stop(cmd), onBug));
  socket.on('throttle.set', (throttle, ack) => void answer(ack, () => control.setThrottle(throttle), onBug));

  let stopping = false;
  let restart: ((why: string) => void) | null = null;
  const enrollmentChanged = new Promise<string>((resolve) => (restart = resolve));
  const problems = new RepeatedProblem(log);
  let retryTimer: NodeJS.Timeout | null = null;

  const reloadCredential = async (): Promise<void> => {
    if (!stateDir) return;
    let fresh: AgentState;
    try {
      fresh = await loadState(stateDir);
    } catch (err) {
      log(`cannot re-read the enrollment in ${stateDir} (${errorText(err)}); trying the credential loaded at start`);
      return;
    }
    if (fresh.appliance !== state.appliance || fresh.fingerprint !== state.fingerprint) {
      restart?.(`this agent was re-enrolled with ${fresh.appliance} (${fresh.fingerprint})`);
      return;
    }
    token = fresh.credential;
    client.setAuth(fresh.credential);
  };
  const retryLater = (): void => {
    if (retryTimer || stopping) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void reloadCredential().then(() => {
        if (!stopping) socket.connect();
      });
    }, REFUSED_RETRY_MS);
  };

  socket.on('connect', () => {
    problems.clear();
    log(`connected to the appliance at ${host}`);
    socket.emit('agent.hello', { version: opts.version, hostname: os.hostname(), busyJobId: control.busyJobId }, (reply) => {
      log(reply.ok ? `the appliance knows this agent as source ${reply.data.sourceId}` : `the appliance refused this agent's hello: ${reply.message} (error ${reply.code})`);
    });
  });
  socket.on('connect_error', (err) => {
    const failure = describeConnectError(err, host, enrollCommand);
    if (failure.kind === 'auth' || !socket.active) {
      // socket.io would retry a refused credential every few seconds (or, after a refusal by the appliance, never).
      socket.disconnect();
      problems.report(`${failure.text}; retrying every ${REFUSED_RETRY_MS / 1000} s`);
      retryLater();
    } else {
      problems.report(`${failure.text}; retrying`);
    }
  });
  socket.on('disconnect', (reason) => {
    if (stopping) return;
    const what = describeDisconnect(reason, host);
    if (socket.active) {
      log(`${what}; reconnecting`);
    } else {
      log(`${what}; reconnecting in ${REFUSED_RETRY_MS / 1000} s`);
      retryLater();
    }
  });

  log(
    `ferry-agent ${opts.version} started: appliance ${state.appliance} (pinned ${state.fingerprint}), ` +
      `disks ${opts.disks ? opts.disks.join(', ') : 'all found at each cycle'}`,
  );
  // Snapshots of a cycle that a crash or kill broke off would otherwise fill up and hold space.
  await removeStaleSnapshots(log);
  socket.connect();

  const why = await Promise.race([terminationSignal(), enrollmentChanged, ...(opts.stop ? [opts.stop] : [])]);
  stopping = true;
  if (retryTimer) clearTimeout(retryTimer);
  const busy = control.busyJobId;
  log(`${why}: ${busy === null ? 'no cycle running' : `stopping the cycle of job ${busy} (the appliance keeps its acknowledged blocks)`}; disconnecting`);
  // A second signal means "now": the grace period is for the cycle, not for an impatient operator.
  const now = terminationSignal().then((sig) => {
    log(`${sig} again: exiting without waiting for the cycle`);
    return 'now';
  });
  const grace = new Promise<string>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS, 'grace').unref());
  const ended = await Promise.race([control.shutdown().then(() => 'ended'), now, grace]);
  if (ended === 'grace') log(`the cycle did not stop within ${SHUTDOWN_GRACE_MS / 1000} s; exiting anyway`);
  socket.disconnect();
  client.close();
  log(why.startsWith('SIG') ? 'stopped' : `${why}; exiting so the service starts again with it`);
  return 0;
}
