import net from 'node:net';
import type { ClientChannel } from 'ssh2';
import type { NodeSSH } from 'node-ssh';
import { ERRORS, FerryError, formatBytes, type PassiveState } from '@ferry/protocol';
import type { Logger } from 'pino';
import { connectSsh, shellQuote, type SshOptions } from './ssh.js';
import { sshTarget, type PassiveRow } from './repository.js';
import type { AgentBinary } from '../downloads/service.js';

/** Where the agent lives on a passive source, relative to the SSH user's home directory. */
const REMOTE_DIR = '.ferry-agent';
const REMOTE_AGENT = `${REMOTE_DIR}/ferry-agent`;
const REMOTE_PID_FILE = `${REMOTE_DIR}/passive.pid`;
/** How long the agent gets to stop its cycle when the appliance ends the session (it keeps acknowledged blocks). */
const STOP_GRACE_MS = 25_000;
const STDERR_TAIL = 20;
/** A small young generation keeps the agent's footprint down (docs/benchmarks.md, agent footprint). */
const AGENT_NODE_OPTIONS = 'NODE_OPTIONS=--max-semi-space-size=1';

/** How the local end of the tunnel reaches this appliance's HTTPS listener, and the certificate to pin. */
export interface ApplianceEndpoint {
  host: string;
  port: number;
  fingerprint: string;
}

export interface DriverDeps {
  row(): PassiveRow | undefined;
  /** `code`: the error code of a failure; states without one clear it. */
  setState(state: PassiveState, message: string | null, agentVersion?: string, code?: string): void;
  /** The key the source presented is not the trusted one: recorded, and the driver stops until it is confirmed. */
  hostKeyChanged(presented: { algorithm: string; sha256: string }, message: string): void;
  /** This source's agent credential (created on first use). */
  credential(): { agentId: number; credential: string };
  binary(): Promise<AgentBinary>;
  endpoint: ApplianceEndpoint;
  log: Logger;
  ssh: SshOptions;
  retryMs: number;
}

function errorCode(err: unknown): string {
  return err instanceof FerryError ? err.code : 'INTERNAL';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Keeps one passive source's agent running: connects over SSH (only to the trusted host key), uploads the
 * agent executable when it is missing or differs from the appliance's, opens a remote port forward back to
 * this appliance, and runs `ferry-agent passive` with the enrollment on stdin. When the session ends (link
 * lost, source rebooted) it connects again after `retryMs`; the job logic sees the agent go and come back
 * exactly as for an active agent (suspended after the configured time, resumed when it returns).
 */
export class PassiveDriver {
  #stopped = false;
  #wake: (() => void) | null = null;
  #session: { ssh: NodeSSH; channel: ClientChannel | null } | null = null;
  readonly #done: Promise<void>;

  constructor(
    readonly sourceId: number,
    private readonly deps: DriverDeps,
  ) {
    this.#done = this.#loop();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#run();
        if (!this.#stopped) this.deps.setState('unreachable', `the SSH session ended; connecting again in ${Math.round(this.deps.retryMs / 1000)} s`);
      } catch (err) {
        if (this.#stopped) break;
        const code = errorCode(err);
        if (code === 'SSH_HOST_KEY_MISMATCH') return; // recorded by #run; waits for the engineer
        if (code === 'SSH_AUTH_FAILED') {
          // Trying a refused password again and again would lock the account or trip fail2ban on the source.
          this.deps.setState('failed', `${errorText(err)}. ${ERRORS.SSH_AUTH_FAILED.hint} Not tried again until new credentials are given (Change credentials on the source's page).`, undefined, code);
          this.deps.log.warn({ sourceId: this.sourceId, code, message: errorText(err) }, 'passive source login refused; waiting for new credentials');
          return;
        }
        const state: PassiveState = code === 'SSH_UNREACHABLE' ? 'unreachable' : 'failed';
        this.deps.setState(state, `${errorText(err)} (${code}); trying again in ${Math.round(this.deps.retryMs / 1000)} s`, undefined, code);
        if (code === 'INTERNAL') this.deps.log.error({ err, sourceId: this.sourceId }, 'passive source session failed');
        else this.deps.log.warn({ sourceId: this.sourceId, code, message: errorText(err) }, 'passive source session failed');
      }
      if (this.#stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.deps.retryMs);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  async #run(): Promise<void> {
    const row = this.deps.row();
    if (!row?.host_key_sha256) throw new FerryError('SSH_HOST_KEY_UNCONFIRMED', `source ${this.sourceId} has no confirmed host key`);
    const trusted = row.host_key_sha256;
    this.deps.setState('connecting', `connecting to ${row.username}@${row.host}:${row.port}`);
    let presented: { algorithm: string; sha256: string } | null = null;
    let ssh: NodeSSH;
    try {
      ({ ssh } = await connectSsh(
        sshTarget(row),
        (k) => {
          presented = k;
          return k.sha256 === trusted;
        },
        this.deps.ssh,
      ));
    } catch (err) {
      const key = presented as { algorithm: string; sha256: string } | null;
      if (errorCode(err) === 'SSH_HOST_KEY_MISMATCH' && key) {
        this.deps.hostKeyChanged(
          key,
          `the source presented the host key ${key.algorithm} ${key.sha256}, not the trusted ${trusted}: nothing was sent. ` +
            'Check the key on the source\'s console; confirm the new key only if it matches (a reinstalled server), otherwise treat it as an attack.',
        );
      }
      throw err;
    }
    const session: { ssh: NodeSSH; channel: ClientChannel | null } = { ssh, channel: null };
    this.#session = session;
    try {
      if (this.#stopped) return;
      const sudo = await this.#sudo(ssh, row.username);
      const version = await this.#deploy(ssh);
      const tunnel = await this.#tunnel(ssh);
      try {
        this.deps.setState('running', `agent ${version} running on ${row.host}`, version);
        await this.#runAgent(session, row, sudo, tunnel.port);
      } finally {
        await tunnel.dispose().catch(() => undefined);
      }
    } finally {
      this.#session = null;
      ssh.dispose();
    }
  }

  /** Reading disks needs root: the user is root, or may use sudo without a password. */
  async #sudo(ssh: NodeSSH, username: string): Promise<string> {
    const id = await ssh.execCommand('id -u');
    if (id.stdout.trim() === '0') return '';
    const probe = await ssh.execCommand('sudo -n true');
    if (probe.code === 0) return 'sudo -n ';
    throw new FerryError('SSH_AUTH_FAILED', `${username} is not root and cannot run sudo without a password (${probe.stderr.trim() || `exit ${probe.code}`}); the agent needs root to read disks`);
  }

  /** Uploads the agent if the source has none or another build; returns the version it reports. */
  async #deploy(ssh: NodeSSH): Promise<string> {
    const bin = await this.deps.binary();
    this.deps.setState('deploying', 'checking the agent on the source');
    const have = await ssh.execCommand(`mkdir -p ${REMOTE_DIR} && chmod 700 ${REMOTE_DIR} && { sha256sum ${REMOTE_AGENT} 2>/dev/null || true; }`);
    if (have.code !== 0) throw new FerryError('AGENT_DEPLOY_FAILED', `cannot create ~/${REMOTE_DIR} on the source: ${have.stderr.trim()}`);
    if (have.stdout.trim().split(/\s+/)[0] !== bin.info.sha256) {
      const part = `${REMOTE_AGENT}.part`;
      let lastShown = 0;
      this.deps.setState('deploying', `uploading the agent ${bin.info.version} (${formatBytes(bin.info.size)})`);
      try {
        await ssh.putFile(bin.path, part, null, {
          step: (done: number, _chunk: number, total: number) => {
            const pct = Math.floor((done / total) * 100);
            if (pct >= lastShown + 10) {
              lastShown = pct;
              this.deps.setState('deploying', `uploading the agent: ${pct} % of ${formatBytes(total)}`);
            }
          },
        });
      } catch (err) {
        throw new FerryError('AGENT_DEPLOY_FAILED', `uploading the agent to ~/${part} failed: ${errorText(err)}`, { cause: err });
      }
      const check = await ssh.execCommand(`chmod 700 ${part} && sha256sum ${part} && mv -f ${part} ${REMOTE_AGENT}`);
      if (check.code !== 0 || check.stdout.trim().split(/\s+/)[0] !== bin.info.sha256) {
        throw new FerryError('AGENT_DEPLOY_FAILED', `the uploaded agent does not check out on the source: ${check.stderr.trim() || check.stdout.trim()}`);
      }
    }
    const ver = await ssh.execCommand(`${REMOTE_AGENT} --version`);
    if (ver.code !== 0) {
      throw new FerryError('AGENT_DEPLOY_FAILED', `the agent does not start on the source (${ver.stderr.trim() || `exit ${ver.code}`}); is the home directory mounted noexec?`);
    }
    return ver.stdout.trim();
  }

  /** A port on the source's loopback whose connections come back through SSH to this appliance. */
  async #tunnel(ssh: NodeSSH): Promise<{ port: number; dispose(): Promise<void> }> {
    const { host, port } = this.deps.endpoint;
    return ssh.forwardIn('127.0.0.1', 0, (_details, accept) => {
      const channel = accept();
      const local = net.connect({ host, port });
      const close = (): void => {
        local.destroy();
        channel.destroy();
      };
      local.on('error', close);
      channel.on('error', close);
      channel.on('close', () => local.destroy());
      local.on('close', () => channel.destroy());
      channel.pipe(local).pipe(channel);
    });
  }

  #runAgent(session: { ssh: NodeSSH; channel: ClientChannel | null }, row: PassiveRow, sudo: string, remotePort: number): Promise<void> {
    const { agentId, credential } = this.deps.credential();
    const enrollment = {
      appliance: `https://127.0.0.1:${remotePort}`,
      fingerprint: this.deps.endpoint.fingerprint,
      agentId,
      sourceId: row.source_id,
      credential,
      enrolledAt: new Date().toISOString(),
    };
    const disks = row.disks ? (JSON.parse(row.disks) as string[]).flatMap((d) => ['--disk', shellQuote(d)]) : [];
    // The same runtime setting as the systemd unit of an active agent (agent/systemd/ferry-agent.service).
    const command = [`${sudo}env`, AGENT_NODE_OPTIONS, REMOTE_AGENT, 'passive', '--pid-file', REMOTE_PID_FILE, ...disks].join(' ');
    const connection = session.ssh.connection;
    if (!connection) return Promise.resolve();
    const log = this.deps.log.child({ sourceId: row.source_id, agent: 'passive' });
    const tail: string[] = [];
    return new Promise<void>((resolve, reject) => {
      connection.exec(command, (err, channel) => {
        if (err) {
          reject(new FerryError('AGENT_DEPLOY_FAILED', `cannot start the agent on the source: ${err.message}`, { cause: err }));
          return;
        }
        session.channel = channel;
        channel.write(`${JSON.stringify(enrollment)}\n`);
        let partial = '';
        const onOutput = (chunk: Buffer): void => {
          const lines = (partial + chunk.toString()).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) {
            if (line.trim() === '') continue;
            log.info({ line }, 'agent');
            tail.push(line);
            if (tail.length > STDERR_TAIL) tail.shift();
          }
        };
        channel.on('data', onOutput);
        channel.stderr.on('data', onOutput);
        connection.once('close', () => resolve());
        channel.on('close', (code: number | null) => {
          if (this.#stopped || code === 0 || code === null) resolve();
          else reject(new FerryError('AGENT_DEPLOY_FAILED', `the agent on the source exited with status ${code}: ${tail.slice(-3).join(' / ')}`));
        });
      });
    });
  }

  /** Ends the session: the agent sees stdin close, stops its cycle (acknowledged blocks stay), and exits. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    const s = this.#session;
    if (s?.channel) {
      s.channel.end();
      const closed = new Promise<void>((resolve) => s.channel?.once('close', () => resolve()));
      await Promise.race([closed, new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    }
    s?.ssh.dispose();
    await this.#done;
  }
}
