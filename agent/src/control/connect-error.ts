import { FerryError } from '@ferry/protocol';
import type { Log } from './log.js';

/**
 * Why the control channel could not be opened, in words for a field engineer. `auth` and `refused` come from
 * the appliance itself (it answered and said no); the others mean it was not reached, or not the pinned one.
 */
export interface ConnectFailure {
  kind: 'auth' | 'refused' | 'fingerprint' | 'unreachable';
  text: string;
}

const CREDENTIAL_CODES = new Set(['AUTH_INVALID', 'AUTH_REQUIRED', 'FORBIDDEN']);

interface ConnectErrorLike {
  message?: unknown;
  /** Set by the appliance's handshake check: `{ code, hint }`. */
  data?: unknown;
  /** engine.io's TransportError: the ws error event, which carries the socket's error. */
  description?: unknown;
}

function fieldOf(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && key in value ? (value as Record<string, unknown>)[key] : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function causeOf(err: ConnectErrorLike): unknown {
  const d = err.description;
  return d instanceof Error ? d : (fieldOf(d, 'error') ?? d);
}

export const ENROLL_COMMAND = 'ferry-agent enroll --appliance URL --fingerprint FP --token T';

function reEnroll(host: string, why: string, enrollCommand: string): string {
  return (
    `the appliance at ${host} refused this agent's credential (${why}): the agent was revoked, or the appliance was reinstalled. ` +
    `Re-enroll it with \`${enrollCommand}\` (T: a new one-time token from \`ferry-appliance enroll-token\`); ` +
    'this service picks up the new credential by itself'
  );
}

/** `enrollCommand` is the command that re-enrolls this agent, filled in as far as the agent knows it. */
export function describeConnectError(err: unknown, host: string, enrollCommand = ENROLL_COMMAND): ConnectFailure {
  const e: ConnectErrorLike = typeof err === 'object' && err !== null ? err : {};
  const message = text(e.message) ?? String(err);
  const code = text(fieldOf(e.data, 'code'));
  if (e.data !== undefined) {
    if (code && CREDENTIAL_CODES.has(code)) return { kind: 'auth', text: reEnroll(host, `${code}: ${message}`, enrollCommand) };
    const hint = text(fieldOf(e.data, 'hint'));
    return { kind: 'refused', text: `the appliance at ${host} refused the control connection: ${message}${code ? ` (${code})` : ''}${hint ? `; ${hint}` : ''}` };
  }
  const cause = causeOf(e);
  if (cause instanceof FerryError) {
    return { kind: cause.code === 'FINGERPRINT_MISMATCH' ? 'fingerprint' : 'unreachable', text: `${cause.message}. ${cause.hint} (error ${cause.code})` };
  }
  const why = text(fieldOf(cause, 'code')) ?? text(fieldOf(cause, 'message')) ?? message;
  const status = /Unexpected server response: (\d+)/.exec(why)?.[1];
  if (status === '401' || status === '403') return { kind: 'auth', text: reEnroll(host, `HTTP ${status}`, enrollCommand) };
  if (status) {
    return {
      kind: 'unreachable',
      text: `the server at ${host} answered HTTP ${status} instead of opening the control channel; check that the address is the appliance's and that both run the same Ferry version`,
    };
  }
  return { kind: 'unreachable', text: `cannot reach the appliance at ${host}: ${why}` };
}

/** What a disconnect means, and whether socket.io reconnects by itself (it does not after the server's own disconnect). */
export function describeDisconnect(reason: string, host: string): string {
  switch (reason) {
    case 'io server disconnect':
      return `the appliance at ${host} closed the control connection (the credential may have been revoked, or another process of this agent connected)`;
    case 'io client disconnect':
      return `disconnected from the appliance at ${host}`;
    case 'ping timeout':
      return `the appliance at ${host} stopped answering (no heartbeat); the network or the appliance is down`;
    case 'transport close':
    case 'transport error':
      return `lost the connection to the appliance at ${host} (network down or appliance restarting)`;
    case 'parse error':
      return `the appliance at ${host} sent data this agent cannot read; check that both run the same Ferry version`;
    default:
      return `disconnected from the appliance at ${host} (${reason})`;
  }
}

/**
 * While the appliance stays unreachable the same failure repeats every few seconds: it is logged when it first
 * happens or changes, and then once every `everyMs` with a count, so the journal stays readable.
 */
export class RepeatedProblem {
  readonly #log: Log;
  readonly #everyMs: number;
  readonly #now: () => number;
  #text: string | null = null;
  #since = 0;
  #count = 0;
  #loggedAt = 0;

  constructor(log: Log, everyMs = 5 * 60_000, now: () => number = Date.now) {
    this.#log = log;
    this.#everyMs = everyMs;
    this.#now = now;
  }

  report(line: string): void {
    const t = this.#now();
    if (line !== this.#text) {
      this.#text = line;
      this.#since = t;
      this.#count = 1;
      this.#loggedAt = t;
      this.#log(line);
      return;
    }
    this.#count++;
    if (t - this.#loggedAt < this.#everyMs) return;
    this.#loggedAt = t;
    this.#log(`${line} (${this.#count} attempts since ${new Date(this.#since).toISOString()})`);
  }

  /** The problem is over (connected): the next failure is news again. */
  clear(): void {
    this.#text = null;
  }
}
