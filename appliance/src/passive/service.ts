import {
  FerryError,
  type AddPassiveSourceRequestSchema,
  type AddPassiveSourceResponse,
  type PassiveCredentialsRequestSchema,
  type HostKey,
  type PassiveSourceView,
  type PassiveState,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { AuthService } from '../auth/service.js';
import type { AgentDownloads } from '../downloads/service.js';
import type { SourceRepository } from '../sources/repository.js';
import { PassiveDriver, type ApplianceEndpoint } from './driver.js';
import { passiveView, PassiveRepository, type PassiveRow } from './repository.js';
import { DEFAULT_SSH_OPTIONS, probeHostKey, type SshOptions } from './ssh.js';

export interface PassiveEvents {
  passiveUpdated(source: PassiveSourceView): void;
}

export interface PassiveOptions {
  /** Wait between SSH attempts after a session ended or failed. */
  retryMs: number;
  ssh: SshOptions;
}

export const DEFAULT_PASSIVE_OPTIONS: PassiveOptions = { retryMs: 10_000, ssh: DEFAULT_SSH_OPTIONS };

/**
 * Passive sources: added with SSH settings, trusted after the engineer confirms the host key, then kept
 * running by one PassiveDriver each while the appliance runs.
 */
export class PassiveService {
  readonly #drivers = new Map<number, PassiveDriver>();
  #endpoint: ApplianceEndpoint | null = null;

  constructor(
    private readonly repo: PassiveRepository,
    private readonly sources: SourceRepository,
    private readonly auth: AuthService,
    private readonly downloads: AgentDownloads,
    private readonly events: PassiveEvents,
    private readonly log: Logger,
    private readonly opts: PassiveOptions = DEFAULT_PASSIVE_OPTIONS,
  ) {}

  list(): PassiveSourceView[] {
    return this.repo.list().map(passiveView);
  }

  get(sourceId: number): PassiveSourceView {
    return passiveView(this.#row(sourceId));
  }

  /**
   * Reaches the host, learns its SSH host key (without logging in: no credential goes to a host not yet
   * trusted) and records the source. The engineer compares the key with the source's own and confirms it.
   */
  async add(req: z.infer<typeof AddPassiveSourceRequestSchema>): Promise<AddPassiveSourceResponse> {
    this.#assertUnused(req);
    const hostKey = await probeHostKey(req);
    const sourceId = this.repo.transaction(() => {
      // Again with the insert: another add of the same server may have been recorded while this one probed.
      this.#assertUnused(req);
      const id = this.sources.create(req.name ?? req.host, null);
      this.repo.create(
        id,
        {
          host: req.host,
          port: req.port,
          username: req.username,
          ...(req.password !== undefined ? { password: req.password } : {}),
          ...(req.privateKey !== undefined ? { privateKey: req.privateKey } : {}),
        },
        req.disks ?? null,
        hostKey,
      );
      return id;
    });
    this.log.info({ sourceId, host: req.host, port: req.port, hostKey }, 'passive source added; host key awaits confirmation');
    const source = this.#emit(sourceId);
    return { source, hostKey };
  }

  /** One agent per user's home directory on a server: a second source there would stop the first one's agent. */
  #assertUnused(req: { host: string; port: number; username: string }): void {
    const same = this.repo.reaching(req.host, req.port, req.username);
    if (same) {
      throw new FerryError('PASSIVE_SOURCE_EXISTS', `source ${same.source_id} (${same.name}) already reaches ${req.username}@${req.host}:${req.port}`);
    }
  }

  /**
   * Trusts the key the source presented, if it is the one the engineer checked, and starts the driver
   * (deploy and run the agent). A changed key is confirmed the same way.
   */
  confirmHostKey(sourceId: number, sha256: string): PassiveSourceView {
    const row = this.#row(sourceId);
    const presented: HostKey | null =
      row.presented_key_algorithm !== null && row.presented_key_sha256 !== null ? { algorithm: row.presented_key_algorithm, sha256: row.presented_key_sha256 } : null;
    if (!presented) {
      if (row.host_key_sha256 === sha256) return passiveView(row);
      throw new FerryError('SSH_HOST_KEY_MISMATCH', `source ${sourceId} trusts ${row.host_key_sha256 ?? 'no key'} and presented no other; ${sha256} is not it`);
    }
    if (presented.sha256 !== sha256) {
      throw new FerryError('SSH_HOST_KEY_MISMATCH', `source ${sourceId} presented ${presented.algorithm} ${presented.sha256}, not ${sha256}: the key was not trusted and nothing was sent`);
    }
    this.repo.trust(sourceId, presented);
    this.log.info({ sourceId, hostKey: presented }, 'passive source host key confirmed');
    const view = this.#emit(sourceId);
    this.#startDriver(sourceId);
    return view;
  }

  /**
   * New SSH credentials, after a refused login (which is not retried) or a password change on the source. They
   * are sealed like the first ones, and a source whose host key is trusted connects again with them at once.
   */
  changeCredentials(sourceId: number, req: z.infer<typeof PassiveCredentialsRequestSchema>): PassiveSourceView {
    const row = this.#row(sourceId);
    this.repo.setCredentials(sourceId, {
      username: req.username ?? row.username,
      ...(req.password !== undefined ? { password: req.password } : {}),
      ...(req.privateKey !== undefined ? { privateKey: req.privateKey } : {}),
    });
    this.log.info({ sourceId, username: req.username ?? row.username }, 'passive source credentials changed');
    if (row.host_key_sha256 !== null && row.state !== 'host-key-changed') {
      this.#startDriver(sourceId);
    } else {
      // Not trusted yet: the key still waits for the engineer, and the new credentials are used once it is confirmed.
      this.repo.setState(sourceId, row.state, row.message, undefined, null);
    }
    return this.#emit(sourceId);
  }

  /** Starts the drivers of every trusted passive source, now that the HTTPS listener (tunnel target) is up. */
  start(endpoint: ApplianceEndpoint): void {
    this.#endpoint = endpoint;
    for (const row of this.repo.trusted()) this.#startDriver(row.source_id);
  }

  async close(): Promise<void> {
    const drivers = [...this.#drivers.values()];
    this.#drivers.clear();
    await Promise.all(drivers.map((d) => d.stop()));
  }

  #startDriver(sourceId: number): void {
    const endpoint = this.#endpoint;
    if (!endpoint) return; // start() picks it up
    const old = this.#drivers.get(sourceId);
    if (old) void old.stop();
    this.#drivers.set(
      sourceId,
      new PassiveDriver(sourceId, {
        row: () => this.repo.get(sourceId),
        setState: (state, message, agentVersion, code) => this.#setState(sourceId, state, message, agentVersion, code ?? null),
        hostKeyChanged: (presented, message) => {
          this.repo.presented(sourceId, presented, 'host-key-changed', message);
          this.log.warn({ sourceId, presented }, 'passive source presented another host key; stopped until confirmed');
          this.#emit(sourceId);
        },
        credential: () => this.#credential(sourceId),
        binary: () => this.downloads.binary(),
        endpoint,
        log: this.log,
        ssh: this.opts.ssh,
        retryMs: this.opts.retryMs,
      }),
    );
  }

  #credential(sourceId: number): { agentId: number; credential: string } {
    const row = this.#row(sourceId);
    if (row.agent_id !== null && row.agent_credential !== null) return { agentId: row.agent_id, credential: row.agent_credential };
    const made = this.auth.createAgentCredential(sourceId);
    this.repo.setAgent(sourceId, made.agentId, made.credential);
    return made;
  }

  #setState(sourceId: number, state: PassiveState, message: string | null, agentVersion: string | undefined, code: string | null): void {
    const before = this.repo.get(sourceId);
    if (before?.state === state && before.message === message && before.code === code && agentVersion === undefined) return;
    this.repo.setState(sourceId, state, message, agentVersion, code);
    if (state === 'running') this.sources.touch(sourceId);
    this.#emit(sourceId);
  }

  #emit(sourceId: number): PassiveSourceView {
    const view = passiveView(this.#row(sourceId));
    this.events.passiveUpdated(view);
    return view;
  }

  #row(sourceId: number): PassiveRow {
    const row = this.repo.get(sourceId);
    if (!row) {
      if (this.sources.exists(sourceId)) throw new FerryError('SOURCE_NOT_PASSIVE', `source ${sourceId} is an active source: its agent dials the appliance`);
      throw new FerryError('SOURCE_NOT_FOUND', `source ${sourceId} does not exist`);
    }
    return row;
  }
}
