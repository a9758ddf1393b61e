import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { io, type Socket } from 'socket.io-client';
import {
  AGENT_NAMESPACE,
  API_PREFIX,
  ApplianceClient,
  BlockKind,
  encodeBlockFrame,
  encodeEndFrame,
  encodeStreamHeader,
  SOCKET_PATH,
  UI_NAMESPACE,
  type CycleState,
  type Point,
} from '@ferry/protocol';
import { loadConfig, pathParams, ROUTES, startServer, type RunningServer } from '@ferry/appliance/testing';
import { TEST_PASSPHRASE, TEST_SCRYPT_N } from '../lib/cli.js';

/*
 * The hostile-input suite: an in-process appliance (real HTTPS, socket.io, SQLite, chunk store) fed what an
 * attacker on its network would send. Every case must get a 4xx with an error code, never a 5xx, leave the
 * appliance answering /health, and store nothing (catalog rows and data files counted before and after).
 * The slow-body guard runs with a 3 s window here (60 s in production) so the slow-loris case takes seconds.
 */

interface Answer {
  status: number;
  code: string | undefined;
  data: unknown;
  setCookie: string | null;
}

const PASSWORD = 'hostile test admin password';
const ORIGINAL_PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

describe('hostile input is refused with a 4xx and a code, stores nothing, and the appliance keeps serving', { timeout: 5 * 60_000 }, () => {
  let work: string;
  let server: RunningServer;
  let agentHttps: https.Agent;
  let adminToken: string;
  let agentA: { credential: string; sourceId: number };
  let agentB: { credential: string; sourceId: number };
  let cycleA: number;
  let session: { cookie: string; csrf: string };
  let host: string;

  async function call(method: string, route: string, opts: { body?: string | object; headers?: Record<string, string>; token?: string; cookie?: string } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...opts.headers };
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.cookie) headers.cookie = opts.cookie;
    return new Promise((resolve, reject) => {
      // host/port/path rather than a URL: a URL would resolve ../ before sending, and the attack would never arrive.
      const req = https.request({ host: '127.0.0.1', port: server.port, path: route, method, headers, agent: agentHttps }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          let json: { code?: string; data?: unknown } = {};
          try {
            json = JSON.parse(text) as typeof json;
          } catch {
            // a non-JSON answer: the status is checked by the caller
          }
          resolve({ status: res.statusCode ?? 0, code: json.code, data: json.data, setCookie: res.headers['set-cookie']?.[0] ?? null });
        });
      });
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** A 4xx with a registered-looking error code. */
  function refusedWith(r: Answer, what: string, code?: string): void {
    assert.ok(r.status >= 400 && r.status < 500, `${what}: HTTP ${r.status} ${r.code ?? ''}`);
    assert.match(r.code ?? '', /^[A-Z_]+$/, `${what}: an error code`);
    if (code) assert.equal(r.code, code, what);
  }

  /** A raw TLS connection to the appliance, for requests a well-behaved client cannot send; everything it answers is kept. */
  async function rawConnection(): Promise<{ socket: tls.TLSSocket; answer: () => string; closed: Promise<void> }> {
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: await readFile(path.join(work, 'data', 'tls', 'cert.pem')), checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    return { socket, answer: () => answer, closed };
  }

  /** Rows of every catalog table but the audit log and browser sessions, and the files under chunks/ and indexes/. */
  async function stored(): Promise<Record<string, number>> {
    const db = server.appliance.db;
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit_log', 'user_sessions', 'sqlite_sequence')").all() as { name: string }[]).map((t) => t.name);
    const out: Record<string, number> = {};
    for (const t of tables) out[t] = (db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n;
    out.enroll_tokens_used = (db.prepare('SELECT COUNT(*) AS n FROM enroll_tokens WHERE used_at IS NOT NULL').get() as { n: number }).n;
    out.agents_revoked = (db.prepare('SELECT COUNT(*) AS n FROM agents WHERE revoked_at IS NOT NULL').get() as { n: number }).n;
    for (const dir of ['chunks', 'indexes']) {
      out[`files:${dir}`] = (await readdir(path.join(work, 'data', dir), { recursive: true })).length;
    }
    return out;
  }

  async function healthy(): Promise<void> {
    const h = await call('GET', `${API_PREFIX}/health`);
    assert.equal(h.status, 200);
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), ORIGINAL_PROTO_KEYS, 'Object.prototype is untouched');
  }

  /** Runs `fn`, then checks nothing was stored and the appliance still answers. */
  async function storesNothing(fn: () => Promise<void>): Promise<void> {
    const before = await stored();
    await fn();
    assert.deepEqual(await stored(), before, 'nothing stored');
    await healthy();
  }

  /** A /ui socket.io connection made with a web UI session, as the browser makes it. */
  function uiSocket(cookie: string, csrf: string): Socket {
    return io(new URL(UI_NAMESPACE, server.url).toString(), {
      path: SOCKET_PATH,
      transports: ['websocket'],
      agent: agentHttps as unknown as string,
      reconnection: false,
      forceNew: true,
      auth: { csrf },
      extraHeaders: { cookie, origin: `https://${host}` },
    });
  }

  /** Logs in as the admin and opens a /ui socket with that session; resolves once it is connected. */
  async function loggedInSocket(): Promise<{ cookie: string; csrf: string; socket: Socket }> {
    const login = await call('POST', `${API_PREFIX}/login`, { body: { username: 'admin', password: PASSWORD } });
    const cookie = login.setCookie!.split(';')[0]!;
    const csrf = (login.data as { csrfToken: string }).csrfToken;
    const socket = uiSocket(cookie, csrf);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
    } catch (err) {
      socket.close();
      throw err;
    }
    return { cookie, csrf, socket };
  }

  function fill(p: string, value: string): string {
    return `${API_PREFIX}${p.replace(/\{\w+\}/g, value)}`;
  }

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-hostile-'));
    server = await startServer(loadConfig({ data: path.join(work, 'data'), listen: '127.0.0.1:0' }, {}), pino({ level: 'silent' }), {
      version: 'test',
      webRoot: path.join(work, 'no-web'),
      passphrase: TEST_PASSPHRASE,
      testScryptN: TEST_SCRYPT_N,
      slowBody: { windowMs: 3000, minBytes: 1024 },
    });
    host = new URL(server.url).host;
    const ca = await readFile(path.join(work, 'data', 'tls', 'cert.pem'));
    agentHttps = new https.Agent({ ca, checkServerIdentity: () => undefined, keepAlive: false });
    const a = server.appliance;
    adminToken = a.auth.createApiToken('hostile');
    agentA = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'source-a' });
    agentB = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'source-b' });
    const cycle = await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: { disks: [{ key: 'disk-a', size: 4 * 1024 * 1024 }] } });
    assert.equal(cycle.status, 200);
    cycleA = (cycle.data as CycleState).id;
    const setup = await call('POST', `${API_PREFIX}/setup`, { body: { username: 'admin', password: PASSWORD } });
    session = { cookie: setup.setCookie!.split(';')[0]!, csrf: (setup.data as { csrfToken: string }).csrfToken };
  });

  after(async () => {
    agentHttps?.destroy();
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('every route refuses a missing, malformed, unknown, revoked or expired credential', async () => {
    const revoked = server.appliance.auth.enroll({ token: server.appliance.auth.createEnrollToken().token, hostname: 'revoked' });
    await call('POST', `${API_PREFIX}/sources/${revoked.sourceId}/revoke-agent`, { token: adminToken, body: {} });
    const expired = await call('POST', `${API_PREFIX}/login`, { body: { username: 'admin', password: PASSWORD } });
    const expiredCookie = expired.setCookie!.split(';')[0]!;
    const expiredId = Number(/ferry_session_(\d+)_/.exec(expiredCookie)![1]);
    server.appliance.db.prepare('UPDATE user_sessions SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), expiredId);
    const enrollToken = server.appliance.auth.createEnrollToken().token;
    await storesNothing(async () => {
      for (const r of ROUTES.filter((x) => x.credential !== 'none')) {
        const url = fill(r.path, '1');
        const what = `${r.method.toUpperCase()} ${r.path}`;
        const body = r.method === 'get' || r.method === 'delete' ? undefined : {};
        refusedWith(await call(r.method, url, { body }), `${what} without a credential`, 'AUTH_REQUIRED');
        refusedWith(await call(r.method, url, { body, headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }), `${what} with Basic auth`, 'AUTH_INVALID');
        refusedWith(await call(r.method, url, { body, token: `ferry_admin_1_${'A'.repeat(43)}` }), `${what} with a wrong secret`, 'AUTH_INVALID');
        refusedWith(await call(r.method, url, { body, token: enrollToken }), `${what} with an enrollment token`, 'AUTH_INVALID');
        refusedWith(await call(r.method, url, { body, token: revoked.credential }), `${what} with a revoked agent`, 'AUTH_INVALID');
        refusedWith(await call(r.method, url, { body, cookie: expiredCookie, headers: { 'x-ferry-csrf': 'x' } }), `${what} with an expired session`, 'AUTH_INVALID');
      }
    });
  });

  test('revoking an agent cuts its socket.io connection and its upload in flight at once', async () => {
    const victim = server.appliance.auth.enroll({ token: server.appliance.auth.createEnrollToken().token, hostname: 'cut-off' });
    const cycle = await call('POST', `${API_PREFIX}/cycles`, { token: victim.credential, body: { disks: [{ key: 'disk-v', size: 4 * 1024 * 1024 }] } });
    assert.equal(cycle.status, 200, cycle.code);
    const socket = io(new URL(AGENT_NAMESPACE, server.url).toString(), {
      path: SOCKET_PATH,
      transports: ['websocket'],
      agent: agentHttps as unknown as string,
      reconnection: false,
      forceNew: true,
      auth: { token: victim.credential },
    });
    const connected = new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const { socket: upload, answer, closed: uploadClosed } = await rawConnection();
    try {
      await connected;
      // An upload that has started (headers and a little of the body) and is waiting for more.
      upload.write(
        `POST ${API_PREFIX}/cycles/${(cycle.data as CycleState).id}/stream HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${victim.credential}\r\n` +
          'Content-Type: application/octet-stream\r\nContent-Length: 100000000\r\n\r\n',
      );
      // A valid stream header, then the upload waits for its first frame.
      upload.write(encodeStreamHeader());
      await new Promise((r) => setTimeout(r, 200)); // let the request reach the route (not a timing assertion)
      const socketGone = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      const r = await call('POST', `${API_PREFIX}/sources/${victim.sourceId}/revoke-agent`, { token: adminToken, body: {} });
      assert.deepEqual(r.data, { sourceId: victim.sourceId, revoked: 1, wasOnline: true });
      assert.equal(await socketGone, 'io server disconnect');
      await uploadClosed;
      assert.equal(answer(), '', 'cut by the revocation without a reply (not by an error, not by the slow-body guard)');
      refusedWith(await call('GET', `${API_PREFIX}/sources/${victim.sourceId}`, { token: victim.credential }), 'the revoked credential', 'AUTH_INVALID');
      await healthy();
    } finally {
      socket.close();
      upload.destroy();
    }
  });

  test('logout closes the open /ui sockets of that session at once', async () => {
    const { cookie, csrf, socket } = await loggedInSocket();
    try {
      const gone = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      assert.equal((await call('POST', `${API_PREFIX}/logout`, { cookie, headers: { 'x-ferry-csrf': csrf } })).status, 200);
      assert.equal(await gone, 'io server disconnect');
    } finally {
      socket.close();
    }
  });

  test('a session that times out while its /ui socket is open loses it at the next sweep, and cannot connect again', async () => {
    const { cookie, csrf, socket } = await loggedInSocket();
    const sessionId = Number(/ferry_session_(\d+)_/.exec(decodeURIComponent(cookie))![1]);
    try {
      const gone = new Promise<string>((resolve) => socket.once('disconnect', resolve));
      // 31 minutes without a request: idle timeout. The server's 30 s timer sweeps; here the sweep is run once.
      const a = server.appliance;
      a.db.prepare('UPDATE user_sessions SET last_used_at = ? WHERE id = ?').run(new Date(Date.now() - 31 * 60_000).toISOString(), sessionId);
      a.sessionSockets.sweep((id) => a.ui.users.alive(id), Date.now() + 60_000);
      assert.equal(await gone, 'io server disconnect');
    } finally {
      socket.close();
    }
    const again = uiSocket(cookie, csrf);
    try {
      const err = await new Promise<Error & { data?: { code?: string } }>((resolve, reject) => {
        again.once('connect', () => reject(new Error('a timed-out session connected')));
        again.once('connect_error', resolve);
      });
      assert.equal(err.data?.code, 'AUTH_INVALID', err.message);
    } finally {
      again.close();
    }
  });

  test('every id parameter refuses traversal, NUL, absolute paths, signs, fractions, hex and huge numbers', async () => {
    const bad = ['..', '..%2f..%2fcatalog.sqlite', '%2e%2e%2f%2e%2e%2f', '%2fetc%2fpasswd', '1%00', '%00', '-1', '0', '1.5', '1e3', '0x10', 'ff', '99999999999999999999', '%201', '1;DROP%20TABLE%20sources'];
    await storesNothing(async () => {
      for (const r of ROUTES.filter((x) => pathParams(x.path).length > 0)) {
        for (const v of bad) {
          const token = r.credential === 'agent' ? agentA.credential : r.credential === 'none' ? undefined : adminToken;
          const res = await call(r.method, fill(r.path, v), { token, body: r.method === 'get' || r.method === 'delete' ? undefined : {} });
          refusedWith(res, `${r.method.toUpperCase()} ${r.path} with id "${v}"`);
        }
      }
      // Unencoded traversal leaves the API: the static file handler must not serve the data directory either.
      for (const p of ['/../catalog.sqlite', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fdata%2fcatalog.sqlite', `/${'a'.repeat(5000)}`]) {
        const res = await call('GET', p, { token: adminToken });
        assert.ok(res.status === 404 || (res.status >= 400 && res.status < 500), `${p}: ${res.status}`);
      }
    });
  });

  test('empty, truncated, oversized, wrongly typed and mislabelled bodies are refused', async () => {
    await storesNothing(async () => {
      const jobs = `${API_PREFIX}/jobs`;
      refusedWith(await call('POST', jobs, { token: adminToken, body: '' }), 'empty body', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: '{"sourceId": 1, "interval' }), 'truncated JSON', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: 'null' }), 'null body', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: '[1,2,3]' }), 'array body', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: '{"sourceId":1}', headers: { 'content-type': 'text/plain' } }), 'text/plain body', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: `{"x":"${'a'.repeat(5 * 1024 * 1024)}"}` }), 'a 5 MiB JSON body', 'PAYLOAD_TOO_LARGE');
      refusedWith(await call('POST', jobs, { token: adminToken, body: { sourceId: agentA.sourceId, intervalSeconds: -5, maxPoints: 3 } }), 'negative interval', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: { sourceId: agentA.sourceId, intervalSeconds: 1e300, maxPoints: 3 } }), 'huge interval', 'BAD_REQUEST');
      refusedWith(await call('POST', jobs, { token: adminToken, body: { sourceId: '1', intervalSeconds: 3600, maxPoints: 3 } }), 'id as a string', 'BAD_REQUEST');
      refusedWith(await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: { disks: [{ key: 'd', size: -4096 }] } }), 'negative disk size', 'BAD_REQUEST');
      refusedWith(await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: { disks: [{ key: 'd', size: 2 ** 70 }] } }), 'huge disk size', 'BAD_REQUEST');
      for (const key of ['../../etc', 'a/../../b', 'disk\u0000', 'disk\nX-Injected: 1']) {
        refusedWith(await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: { disks: [{ key, size: 4096 }] } }), `disk key ${JSON.stringify(key)}`, 'BAD_REQUEST');
      }
    });
  });

  test('negative, huge, reversed and unaligned block and index ranges are refused', async () => {
    await storesNothing(async () => {
      for (const q of ['from=-1&to=1', 'from=0&to=99999999999999999999', 'from=5&to=1', 'from=0.5&to=1', 'from=abc&to=1', 'from=0&to=1&from=2', '']) {
        const res = await call('GET', `${API_PREFIX}/points/1/disks/1/blocks?${q}`, { token: adminToken });
        refusedWith(res, `blocks?${q}`);
        if (q === '') continue; // the whole index, not a range
        refusedWith(await call('GET', `${API_PREFIX}/points/1/disks/1/index?${q}`, { token: adminToken }), `index?${q}`);
      }
      refusedWith(await call('GET', `${API_PREFIX}/points/1/disks/1/index?from=0`, { token: adminToken }), 'index?from=0 (no end)');
    });
  });

  test('prototype-pollution keys and deep nesting are refused and pollute nothing', async () => {
    await storesNothing(async () => {
      for (const body of [
        '{"__proto__":{"polluted":true},"username":"p1","password":"a long enough password"}',
        '{"constructor":{"prototype":{"polluted":true}},"username":"p2","password":"a long enough password"}',
        '{"username":"p3","password":"a long enough password","role":"admin","__proto__":{"role":"admin"}}',
      ]) {
        refusedWith(await call('POST', `${API_PREFIX}/users`, { token: adminToken, body }), `users ${body.slice(0, 30)}`, 'BAD_REQUEST');
      }
      refusedWith(
        await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: '{"disks":[{"key":"k","size":4096}],"__proto__":{"isAdmin":true}}' }),
        'cycle with __proto__',
        'BAD_REQUEST',
      );
      const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
      refusedWith(await call('POST', `${API_PREFIX}/jobs`, { token: adminToken, body: deep }), 'arrays nested 200000 deep');
      const deepObj = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
      refusedWith(await call('POST', `${API_PREFIX}/jobs`, { token: adminToken, body: deepObj }), 'objects nested 50000 deep');
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
    });
  });

  test('SQL and wildcard characters are data, not syntax', async () => {
    await storesNothing(async () => {
      for (const username of ["' OR '1'='1", 'admin%', 'adm_n', '*', "admin'--", 'admin\u0000']) {
        const r = await call('POST', `${API_PREFIX}/login`, { body: { username, password: PASSWORD } });
        assert.ok(r.code === 'LOGIN_FAILED' || r.code === 'LOGIN_THROTTLED', `login as ${JSON.stringify(username)}: ${r.code}`);
      }
      refusedWith(await call('POST', `${API_PREFIX}/users`, { token: adminToken, body: { username: "x'; DROP TABLE users;--", password: PASSWORD } }), 'a user name with SQL', 'BAD_REQUEST');
    });
    // A hostname is free text: it is stored as it is, and every table is still there.
    const name = "x'); DROP TABLE sources;--%_*";
    const enrolled = server.appliance.auth.enroll({ token: server.appliance.auth.createEnrollToken().token, hostname: name });
    const view = await call('GET', `${API_PREFIX}/sources/${enrolled.sourceId}`, { token: adminToken });
    assert.equal((view.data as { name: string }).name, name);
    const list = (await call('GET', `${API_PREFIX}/sources`, { token: adminToken })).data as unknown[];
    assert.ok(list.length >= 4, 'the sources table is still there');
  });

  test('another agent’s source, cycle and point are refused; an enrollment token is not accepted twice, forged or expired', async () => {
    // A's open cycle becomes a point (four zero blocks), for B to try to read.
    const asA = new ApplianceClient(server.url, server.fingerprint, agentA.credential);
    let pointA: number;
    try {
      const zero = (blockNo: number): Buffer => encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo, xxh64: 0n, chunkId: Buffer.alloc(32) });
      await asA.json(`${API_PREFIX}/cycles/${cycleA}/stream`, { method: 'POST', stream: [encodeStreamHeader(), zero(0), zero(1), zero(2), zero(3), encodeEndFrame(4)] });
      const stats = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 0 };
      pointA = (await asA.json<{ pointId: number }>(`${API_PREFIX}/cycles/${cycleA}/commit`, { method: 'POST', body: { stats } })).pointId;
    } finally {
      asA.close();
    }
    const own = (await call('GET', `${API_PREFIX}/points/${pointA}`, { token: agentA.credential })).data as Point;
    assert.equal(own.disks.length, 1, 'A reads its own point');
    const diskA = own.disks[0]!.diskId;
    await storesNothing(async () => {
      for (const route of [`/points/${pointA}`, `/points/${pointA}/disks/${diskA}/index`, `/points/${pointA}/disks/${diskA}/blocks?from=0&to=4`]) {
        refusedWith(await call('GET', API_PREFIX + route, { token: agentB.credential }), `B reads A's ${route}`, 'FORBIDDEN');
      }
      const listed = (await call('GET', `${API_PREFIX}/points`, { token: agentB.credential })).data as Point[];
      assert.deepEqual(
        listed.map((p) => p.id),
        [],
        "B's list of points does not show A's",
      );
      refusedWith(await call('GET', `${API_PREFIX}/sources/${agentA.sourceId}`, { token: agentB.credential }), "B reads A's source", 'FORBIDDEN');
      refusedWith(await call('PUT', `${API_PREFIX}/sources/${agentA.sourceId}/disks`, { token: agentB.credential, body: { disks: [] } }), "B sets A's disks", 'FORBIDDEN');
      refusedWith(await call('GET', `${API_PREFIX}/cycles/${cycleA}`, { token: agentB.credential }), "B reads A's cycle", 'FORBIDDEN');
      refusedWith(await call('POST', `${API_PREFIX}/cycles/${cycleA}/commit`, { token: agentB.credential, body: {} }), "B commits A's cycle");
      refusedWith(
        await call('POST', `${API_PREFIX}/cycles/${cycleA}/stream`, { token: agentB.credential, body: Buffer.alloc(16).toString(), headers: { 'content-type': 'application/octet-stream' } }),
        "B streams into A's cycle",
        'FORBIDDEN',
      );
    });
    const token = server.appliance.auth.createEnrollToken().token;
    assert.equal((await call('POST', `${API_PREFIX}/enroll`, { body: { token, hostname: 'once' } })).status, 200);
    // A token made with a negative lifetime has expired already (as one 25 hours old has).
    const expired = server.appliance.auth.createEnrollToken(-1).token;
    await storesNothing(async () => {
      refusedWith(await call('POST', `${API_PREFIX}/enroll`, { body: { token, hostname: 'twice' } }), 'replayed enrollment token', 'ENROLL_TOKEN_USED');
      refusedWith(await call('POST', `${API_PREFIX}/enroll`, { body: { token: `${token.slice(0, -1)}x`, hostname: 'forged' } }), 'forged enrollment token', 'ENROLL_TOKEN_INVALID');
      refusedWith(await call('POST', `${API_PREFIX}/enroll`, { body: { token: expired, hostname: 'late' } }), 'expired enrollment token', 'ENROLL_TOKEN_EXPIRED');
    });
  });

  test('a foreign Origin or a missing CSRF token cannot change anything with the session cookie', async () => {
    await storesNothing(async () => {
      const body = { username: 'csrf-victim', password: PASSWORD };
      const users = `${API_PREFIX}/users`;
      refusedWith(await call('POST', users, { cookie: session.cookie, body, headers: { 'x-ferry-csrf': session.csrf, origin: 'https://evil.example' } }), 'foreign Origin', 'CSRF_REJECTED');
      refusedWith(await call('POST', users, { cookie: session.cookie, body, headers: { 'x-ferry-csrf': session.csrf, referer: 'https://evil.example/x' } }), 'foreign Referer', 'CSRF_REJECTED');
      refusedWith(await call('POST', users, { cookie: session.cookie, body, headers: { origin: `https://${host}` } }), 'no CSRF token', 'CSRF_REJECTED');
      refusedWith(await call('POST', users, { cookie: session.cookie, body, headers: { 'x-ferry-csrf': 'A'.repeat(43) } }), 'wrong CSRF token', 'CSRF_REJECTED');
      refusedWith(await call('POST', `${API_PREFIX}/login`, { body: { username: 'admin', password: PASSWORD }, headers: { origin: 'https://evil.example' } }), 'login from another site', 'CSRF_REJECTED');
    });
  });

  test('socket.io namespaces refuse missing, revoked and foreign-origin credentials, and frames over the limit', async () => {
    const connect = (nsp: string, opts: { auth?: object; headers?: Record<string, string> }): Promise<{ socket: Socket; error: (Error & { data?: { code?: string } }) | null }> =>
      new Promise((resolve) => {
        const socket = io(new URL(nsp, server.url).toString(), {
          path: SOCKET_PATH,
          transports: ['websocket'],
          agent: agentHttps as unknown as string,
          reconnection: false,
          forceNew: true,
          auth: opts.auth ?? {},
          extraHeaders: opts.headers ?? {},
        });
        socket.once('connect', () => resolve({ socket, error: null }));
        socket.once('connect_error', (error: Error & { data?: { code?: string } }) => {
          socket.close();
          resolve({ socket, error });
        });
      });
    const revoked = server.appliance.auth.enroll({ token: server.appliance.auth.createEnrollToken().token, hostname: 'ws-revoked' });
    await call('POST', `${API_PREFIX}/sources/${revoked.sourceId}/revoke-agent`, { token: adminToken, body: {} });
    await storesNothing(async () => {
      assert.equal((await connect('/', { auth: { token: adminToken } })).error?.data?.code, 'NOT_FOUND', 'the main namespace');
      for (const nsp of [AGENT_NAMESPACE, UI_NAMESPACE]) {
        assert.equal((await connect(nsp, {})).error?.data?.code, 'AUTH_REQUIRED', `${nsp} without a credential`);
        assert.equal((await connect(nsp, { auth: { token: `ferry_agent_1_${'A'.repeat(43)}` } })).error?.data?.code, 'AUTH_INVALID', `${nsp} with a wrong secret`);
        assert.equal((await connect(nsp, { auth: { token: revoked.credential } })).error?.data?.code, 'AUTH_INVALID', `${nsp} with a revoked agent`);
      }
      assert.equal((await connect(AGENT_NAMESPACE, { auth: { token: adminToken } })).error?.data?.code, 'FORBIDDEN', 'an admin token on /agent');
      const ui = (headers: Record<string, string>, auth: object) => connect(UI_NAMESPACE, { headers: { cookie: session.cookie, ...headers }, auth });
      assert.equal((await ui({ origin: 'https://evil.example' }, { csrf: session.csrf })).error?.data?.code, 'CSRF_REJECTED', '/ui from another site');
      assert.equal((await ui({ origin: `https://${host}` }, {})).error?.data?.code, 'CSRF_REJECTED', '/ui without the CSRF token');
      const good = await ui({ origin: `https://${host}` }, { csrf: session.csrf });
      assert.equal(good.error, null, '/ui from our own page with the token');
      good.socket.close();

      // A frame over maxHttpBufferSize (1 MB) closes the connection; the appliance keeps serving.
      const agent = await connect(AGENT_NAMESPACE, { auth: { token: agentA.credential } });
      assert.equal(agent.error, null);
      const closed = new Promise<string>((resolve) => agent.socket.once('disconnect', resolve));
      agent.socket.emit('cycle.log' as never, { line: 'x'.repeat(2 * 1024 * 1024) });
      assert.match(await closed, /transport close|transport error/);
    });
  });

  test('password brute force: after five wrong passwords the address waits, even for the right one', async () => {
    await storesNothing(async () => {
      for (let i = 0; i < 5; i++) {
        const r = await call('POST', `${API_PREFIX}/login`, { body: { username: 'admin', password: `guess number ${i}` } });
        assert.ok(r.code === 'LOGIN_FAILED' || r.code === 'LOGIN_THROTTLED', r.code);
      }
      const r = await call('POST', `${API_PREFIX}/login`, { body: { username: 'admin', password: PASSWORD } });
      refusedWith(r, 'the right password after a brute force', 'LOGIN_THROTTLED');
      assert.equal(r.setCookie, null);
    });
  });

  test('a body that trickles in (slow-loris) is cut with 408 while others are served', async () => {
    const fresh = await call('POST', `${API_PREFIX}/cycles`, { token: agentA.credential, body: { disks: [{ key: 'disk-a', size: 4 * 1024 * 1024 }] } });
    assert.equal(fresh.status, 200, fresh.code);
    const cycleId = (fresh.data as CycleState).id;
    const before = await stored();
    const { socket, answer, closed } = await rawConnection();
    socket.write(
      `POST ${API_PREFIX}/cycles/${cycleId}/stream HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${agentA.credential}\r\n` +
        'Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n',
    );
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('x');
    }, 200);
    try {
      // Meanwhile the appliance answers everyone else.
      await healthy();
      await closed;
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    assert.match(answer(), /^HTTP\/1\.1 408/);
    assert.match(answer(), /REQUEST_TOO_SLOW/);
    assert.deepEqual(await stored(), before, 'nothing stored');
    await healthy();
  });

  test('a Content-Length that disagrees with the body, shorter or longer, is refused', async () => {
    await storesNothing(async () => {
      const { socket, answer, closed } = await rawConnection();
      const body = JSON.stringify({ sourceId: agentA.sourceId, intervalSeconds: 3600, maxPoints: 3 });
      // Declares fewer bytes than it sends: the JSON the appliance reads is cut short; the rest is garbage.
      socket.write(`POST ${API_PREFIX}/jobs HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n${body}`);
      await closed;
      assert.match(answer(), /^HTTP\/1\.1 400/);
      assert.match(answer(), /BAD_REQUEST/);
      assert.doesNotMatch(answer(), /HTTP\/1\.1 5\d\d/);
    });
    await storesNothing(async () => {
      // Declares more bytes than it sends, then waits: the appliance does not wait for ever.
      const { socket, answer, closed } = await rawConnection();
      const body = JSON.stringify({ sourceId: agentA.sourceId, intervalSeconds: 3600, maxPoints: 3 });
      socket.write(`POST ${API_PREFIX}/jobs HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length + 10_000}\r\n\r\n${body}`);
      await healthy();
      await closed;
      assert.match(answer(), /^HTTP\/1\.1 408/);
      assert.match(answer(), /REQUEST_TOO_SLOW/);
    });
  });
});
