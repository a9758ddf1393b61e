import type { HostKey, PassiveSourceView, PassiveState } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import { now } from '../catalog/catalog.js';
import type { SshTarget } from './ssh.js';
import { CatalogSecrets } from '../keys/data-keys.js';

export interface PassiveRow {
  source_id: number;
  name: string;
  host: string;
  port: number;
  username: string;
  auth_kind: 'password' | 'key';
  auth_secret: string;
  disks: string | null;
  host_key_algorithm: string | null;
  host_key_sha256: string | null;
  presented_key_algorithm: string | null;
  presented_key_sha256: string | null;
  agent_id: number | null;
  agent_credential: string | null;
  agent_version: string | null;
  state: PassiveState;
  message: string | null;
  code: string | null;
  updated_at: string;
}

const SELECT = `SELECT p.*, s.name FROM passive_sources p JOIN sources s ON s.id = p.source_id`;

function key(algorithm: string | null, sha256: string | null): HostKey | null {
  return algorithm !== null && sha256 !== null ? { algorithm, sha256 } : null;
}

/** What browsers see: everything but the password or key and the agent credential. */
export function passiveView(r: PassiveRow): PassiveSourceView {
  return {
    sourceId: r.source_id,
    name: r.name,
    host: r.host,
    port: r.port,
    username: r.username,
    auth: r.auth_kind,
    disks: r.disks === null ? null : (JSON.parse(r.disks) as string[]),
    state: r.state,
    message: r.message,
    code: r.code,
    hostKey: key(r.host_key_algorithm, r.host_key_sha256),
    presentedHostKey: key(r.presented_key_algorithm, r.presented_key_sha256),
    agentVersion: r.agent_version,
    updatedAt: r.updated_at,
  };
}

export function sshTarget(r: PassiveRow): SshTarget {
  return {
    host: r.host,
    port: r.port,
    username: r.username,
    ...(r.auth_kind === 'password' ? { password: r.auth_secret } : { privateKey: r.auth_secret }),
  };
}

export class PassiveRepository {
  /** `secrets` seals the SSH secret and the agent credential under the data key on an encrypted appliance. */
  constructor(
    private readonly db: Catalog,
    private readonly secrets: CatalogSecrets = new CatalogSecrets(null),
  ) {}

  /** The row with its secrets opened. */
  #open(r: PassiveRow | undefined): PassiveRow | undefined {
    if (!r) return r;
    return {
      ...r,
      auth_secret: this.secrets.open(r.auth_secret, 'passive_sources', 'auth_secret', r.source_id),
      agent_credential: r.agent_credential === null ? null : this.secrets.open(r.agent_credential, 'passive_sources', 'agent_credential', r.source_id),
    };
  }

  /** Makes a just-created source passive with its SSH settings; the presented key waits for confirmation. */
  create(sourceId: number, t: SshTarget, disks: string[] | null, presented: HostKey): void {
    this.db.prepare("UPDATE sources SET mode = 'passive', last_seen = NULL WHERE id = ?").run(sourceId);
    this.db
      .prepare(
        `INSERT INTO passive_sources (source_id, host, port, username, auth_kind, auth_secret, disks,
           presented_key_algorithm, presented_key_sha256, state, message, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'host-key-unconfirmed', ?, ?)`,
      )
      .run(
        sourceId,
        t.host,
        t.port,
        t.username,
        t.password !== undefined ? 'password' : 'key',
        this.secrets.seal(t.password ?? t.privateKey ?? '', 'passive_sources', 'auth_secret', sourceId),
        disks ? JSON.stringify(disks) : null,
        presented.algorithm,
        presented.sha256,
        `check the host key ${presented.sha256} on the source and confirm it`,
        now(),
      );
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  get(sourceId: number): PassiveRow | undefined {
    return this.#open(this.db.prepare(`${SELECT} WHERE p.source_id = ?`).get(sourceId) as PassiveRow | undefined);
  }

  /** The source that already logs in as `username` at host:port (the host compared without case), if any. */
  reaching(host: string, port: number, username: string): { source_id: number; name: string } | undefined {
    return this.db
      .prepare('SELECT p.source_id, s.name FROM passive_sources p JOIN sources s ON s.id = p.source_id WHERE lower(p.host) = lower(?) AND p.port = ? AND p.username = ?')
      .get(host, port, username) as { source_id: number; name: string } | undefined;
  }

  list(): PassiveRow[] {
    return (this.db.prepare(`${SELECT} ORDER BY p.source_id`).all() as PassiveRow[]).map((r) => this.#open(r)!);
  }

  /**
   * Sources whose key is trusted: the ones the appliance keeps connected. A refused login waits for new
   * credentials across restarts too (retrying it at each start would still count against the account).
   */
  trusted(): PassiveRow[] {
    const waiting = "p.state = 'host-key-changed' OR (p.state = 'failed' AND p.code IS 'SSH_AUTH_FAILED')";
    return (this.db.prepare(`${SELECT} WHERE p.host_key_sha256 IS NOT NULL AND NOT (${waiting}) ORDER BY p.source_id`).all() as PassiveRow[]).map(
      (r) => this.#open(r)!,
    );
  }

  trust(sourceId: number, k: HostKey): void {
    this.db
      .prepare(
        `UPDATE passive_sources SET host_key_algorithm = ?, host_key_sha256 = ?, presented_key_algorithm = NULL,
           presented_key_sha256 = NULL, state = 'connecting', message = NULL, updated_at = ? WHERE source_id = ?`,
      )
      .run(k.algorithm, k.sha256, now(), sourceId);
  }

  presented(sourceId: number, k: HostKey, state: PassiveState, message: string): void {
    this.db
      .prepare('UPDATE passive_sources SET presented_key_algorithm = ?, presented_key_sha256 = ?, state = ?, message = ?, updated_at = ? WHERE source_id = ?')
      .run(k.algorithm, k.sha256, state, message, now(), sourceId);
  }

  setAgent(sourceId: number, agentId: number, credential: string): void {
    this.db.prepare('UPDATE passive_sources SET agent_id = ?, agent_credential = ?, updated_at = ? WHERE source_id = ?').run(agentId, this.secrets.seal(credential, 'passive_sources', 'agent_credential', sourceId), now(), sourceId);
  }

  /** `code`: the error code of a failure (null clears it). */
  setState(sourceId: number, state: PassiveState, message: string | null, agentVersion?: string, code: string | null = null): void {
    if (agentVersion !== undefined) {
      this.db
        .prepare('UPDATE passive_sources SET state = ?, message = ?, code = ?, agent_version = ?, updated_at = ? WHERE source_id = ?')
        .run(state, message, code, agentVersion, now(), sourceId);
    } else {
      this.db.prepare('UPDATE passive_sources SET state = ?, message = ?, code = ?, updated_at = ? WHERE source_id = ?').run(state, message, code, now(), sourceId);
    }
  }

  /** New SSH credentials (sealed like the first ones); the driver connects again with them. */
  setCredentials(sourceId: number, t: Pick<SshTarget, 'username' | 'password' | 'privateKey'>): void {
    this.db
      .prepare("UPDATE passive_sources SET username = ?, auth_kind = ?, auth_secret = ?, state = 'connecting', message = NULL, code = NULL, updated_at = ? WHERE source_id = ?")
      .run(
        t.username,
        t.password !== undefined ? 'password' : 'key',
        this.secrets.seal(t.password ?? t.privateKey ?? '', 'passive_sources', 'auth_secret', sourceId),
        now(),
        sourceId,
      );
  }
}
