import { createHash } from 'node:crypto';
import { NodeSSH } from 'node-ssh';
import { FerryError, type HostKey } from '@ferry/protocol';

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: string;
}

/** The algorithm and OpenSSH-style fingerprint of a host key blob (the wire encoding ssh2 hands the verifier). */
export function hostKeyOf(blob: Buffer): HostKey {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const algorithm = len > 0 && len < 64 && blob.length >= 4 + len ? blob.toString('latin1', 4, 4 + len) : 'unknown';
  return { algorithm, sha256: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}` };
}

/** How long connecting (TCP, key exchange, login) may take before the source counts as unreachable. */
const READY_TIMEOUT_MS = 20_000;

export interface SshOptions {
  /** Keepalives detect a dead link: after interval × count without an answer the connection is closed. */
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
}

export const DEFAULT_SSH_OPTIONS: SshOptions = { keepaliveIntervalMs: 5_000, keepaliveCountMax: 3 };

function describe(target: SshTarget): string {
  return `${target.username}@${target.host}:${target.port}`;
}

/**
 * Connects and logs in, but only after the host key passed `trust`: credentials are never sent to a host
 * whose key the engineer has not confirmed. Resolves with the connection and the key the host presented.
 */
export async function connectSsh(target: SshTarget, trust: (key: HostKey) => boolean, opts: SshOptions = DEFAULT_SSH_OPTIONS): Promise<{ ssh: NodeSSH; hostKey: HostKey }> {
  const ssh = new NodeSSH();
  let presented: HostKey | null = null;
  let refused = false;
  try {
    await ssh.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      ...(target.password !== undefined ? { password: target.password, tryKeyboard: true } : {}),
      ...(target.privateKey !== undefined ? { privateKey: target.privateKey } : {}),
      readyTimeout: READY_TIMEOUT_MS,
      keepaliveInterval: opts.keepaliveIntervalMs,
      keepaliveCountMax: opts.keepaliveCountMax,
      hostVerifier: (key: Buffer) => {
        presented = hostKeyOf(key);
        refused = !trust(presented);
        return !refused;
      },
    });
  } catch (err) {
    ssh.dispose();
    const key = presented as HostKey | null;
    if (refused && key) {
      throw new FerryError('SSH_HOST_KEY_MISMATCH', `${describe(target)} presented the host key ${key.algorithm} ${key.sha256}, which is not the one trusted for it`, {
        cause: err,
      });
    }
    const e = err as Error & { level?: string; code?: string };
    if (e.level === 'client-authentication') {
      throw new FerryError('SSH_AUTH_FAILED', `${describe(target)} refused the login (${target.password !== undefined ? 'password' : 'private key'})`, { cause: err });
    }
    if (/private key|privateKey|Cannot parse/i.test(e.message)) {
      throw new FerryError('SSH_AUTH_FAILED', `the private key for ${describe(target)} cannot be used: ${e.message}`, { cause: err });
    }
    throw new FerryError('SSH_UNREACHABLE', `cannot reach ${target.host}:${target.port} over SSH: ${e.code ?? e.message}`, { cause: err });
  }
  if (!presented) {
    ssh.dispose();
    throw new FerryError('SSH_UNREACHABLE', `${describe(target)} completed the SSH handshake without a host key`);
  }
  return { ssh, hostKey: presented };
}

/**
 * Learns the key a host presents without logging in (the verifier refuses it, so no credential is sent).
 */
export async function probeHostKey(target: Pick<SshTarget, 'host' | 'port'>): Promise<HostKey> {
  let seen: HostKey | null = null;
  try {
    await connectSsh({ ...target, username: 'ferry-probe', password: 'unused' }, (key) => {
      seen = key;
      return false;
    });
  } catch (err) {
    if (seen) return seen;
    throw err;
  }
  throw new FerryError('SSH_UNREACHABLE', `${target.host}:${target.port} accepted a host key the appliance refused`);
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
