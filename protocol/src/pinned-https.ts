import https from 'node:https';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { FerryError, isErrorCode, type Reply } from './errors.js';

/** Fingerprints are written `SHA256:` + 32 colon-separated upper-case hex pairs, as the appliance prints them. */
export function normalizeFingerprint(input: string): string {
  const hex = input.trim().replace(/^sha256:/i, '').replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new FerryError('FINGERPRINT_INVALID', `"${input}" is not a SHA-256 certificate fingerprint`);
  }
  return 'SHA256:' + hex.match(/../g)!.join(':');
}

export function certificateFingerprint(pem: string | Buffer): string {
  return normalizeFingerprint(new X509Certificate(pem).fingerprint256);
}

type ConnectCallback = (err: Error | null, stream: Duplex) => void;

/**
 * An https.Agent that checks the server certificate's SHA-256 fingerprint after the TLS handshake and before
 * handing the socket to the HTTP client, so not one request byte reaches a server with another certificate.
 */
class PinningAgent extends https.Agent {
  constructor(private readonly pinned: string) {
    super({ keepAlive: true, maxSockets: 8 });
  }

  override createConnection(options: https.RequestOptions, callback?: ConnectCallback): Duplex | undefined {
    let done = false;
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      callback?.(err, socket);
    };
    socket.once('secureConnect', () => {
      const presented = socket.getPeerCertificate().fingerprint256;
      const actual = presented ? normalizeFingerprint(presented) : '(none)';
      if (actual !== this.pinned) {
        socket.destroy();
        finish(
          new FerryError(
            'FINGERPRINT_MISMATCH',
            `the appliance at ${options.host ?? '?'}:${options.port ?? '?'} presented ${actual}, but ${this.pinned} is pinned; nothing was sent`,
          ),
        );
        return;
      }
      finish(null);
    });
    socket.once('error', (err: Error) => finish(err));
    return undefined;
  }
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** A raw byte body (e.g. a frame stream); sent with chunked transfer encoding and back-pressure. */
  stream?: AsyncIterable<Buffer> | Iterable<Buffer>;
  headers?: Record<string, string>;
}

function networkError(base: URL, err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const e = err as NodeJS.ErrnoException;
  return new FerryError('APPLIANCE_UNREACHABLE', `cannot reach the appliance at ${base.host}: ${e.code ?? e.message}`, { cause: err });
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of res) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

function errorFromBody(status: number, body: Buffer): FerryError {
  try {
    const reply = JSON.parse(body.toString('utf8')) as Reply<unknown>;
    if (!reply.ok && isErrorCode(reply.code)) return new FerryError(reply.code, reply.message);
  } catch {
    // fall through: not one of our replies (a proxy, or not the appliance at all)
  }
  return new FerryError('APPLIANCE_UNREACHABLE', `unexpected HTTP ${status} reply (is this a Ferry appliance?)`);
}

/** No byte in either direction for this long: the link is taken to be down (FERRY_IO_TIMEOUT_SECONDS overrides it). */
const DEFAULT_IDLE_TIMEOUT_MS = (Number(process.env.FERRY_IO_TIMEOUT_SECONDS) || 60) * 1000;

/** HTTPS client for the appliance API, pinned to the appliance certificate's fingerprint. */
export class ApplianceClient {
  readonly base: URL;
  readonly #agent: PinningAgent;
  #auth: string | undefined;

  /** How long a request may see no traffic at all before it fails with APPLIANCE_UNREACHABLE. */
  idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS;

  constructor(baseUrl: string, fingerprint: string, auth?: string) {
    this.base = new URL(baseUrl);
    if (this.base.protocol !== 'https:') {
      throw new FerryError('BAD_REQUEST', `appliance URL must start with https:// (got ${baseUrl})`);
    }
    this.#agent = new PinningAgent(normalizeFingerprint(fingerprint));
    this.#auth = auth;
  }

  /** The pinning agent, for other clients of the same appliance (the socket.io control channel). */
  get httpsAgent(): https.Agent {
    return this.#agent;
  }

  get credential(): string | undefined {
    return this.#auth;
  }

  setAuth(token: string): void {
    this.#auth = token;
  }

  close(): void {
    this.#agent.destroy();
  }

  /** Sends a request; resolves with the response for any status (the caller decides). */
  raw(path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = { ...opts.headers };
    if (this.#auth) headers.authorization = `Bearer ${this.#auth}`;
    let json: Buffer | undefined;
    if (opts.body !== undefined) {
      json = Buffer.from(JSON.stringify(opts.body));
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(json.length);
    } else if (opts.stream) {
      headers['content-type'] = 'application/octet-stream';
    }
    return new Promise((resolve, reject) => {
      const req = https.request(url, { method: opts.method ?? 'GET', headers, agent: this.#agent }, resolve);
      req.once('error', (err) => reject(networkError(this.base, err)));
      // A link that went down mid-request shows no error, only silence: give up after a while, so the cycle
      // or restore can resume from its last acknowledged block once the link is back.
      req.setTimeout(this.idleTimeoutMs, () => {
        req.destroy(new FerryError('APPLIANCE_UNREACHABLE', `no answer from the appliance at ${this.base.host} for ${Math.round(this.idleTimeoutMs / 1000)} s`));
      });
      if (json) {
        req.end(json);
      } else if (opts.stream) {
        const source = opts.stream;
        void (async () => {
          try {
            for await (const part of source) {
              if (!req.write(part)) await new Promise<void>((r) => req.once('drain', r));
            }
            req.end();
          } catch (err) {
            req.destroy(err as Error);
          }
        })();
      } else {
        req.end();
      }
    });
  }

  /** A JSON request whose reply has the `{ ok, data }` shape; throws FerryError with the server's code. */
  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(path, opts);
    const body = await readAll(res);
    if ((res.statusCode ?? 0) >= 400) throw errorFromBody(res.statusCode ?? 0, body);
    const reply = JSON.parse(body.toString('utf8')) as Reply<T>;
    if (!reply.ok) throw new FerryError(isErrorCode(reply.code) ? reply.code : 'INTERNAL', reply.message);
    return reply.data;
  }

  /** A binary download; throws FerryError on an error status. */
  async download(path: string): Promise<IncomingMessage> {
    const res = await this.raw(path);
    if ((res.statusCode ?? 0) >= 400) throw errorFromBody(res.statusCode ?? 0, await readAll(res));
    return res;
  }

  async bytes(path: string): Promise<Buffer> {
    return readAll(await this.download(path));
  }
}
