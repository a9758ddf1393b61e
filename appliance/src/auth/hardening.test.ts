import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { API_PREFIX } from '@ferry/protocol';
import { buildAppliance, type Appliance } from '../appliance.js';
import { loadConfig } from '../config.js';
import { createApp } from '../http/app.js';
import { rolesMarkdown, roleTable } from '../http/policy.js';
import { ROUTES } from '../http/openapi.js';
import type { AuditEntry } from '../audit/service.js';
import { LoginThrottle } from '../ui/login-throttle.js';
import { SESSION_IDLE_MS } from '../ui/users.js';

/*
 * Auth hardening over the real express app on loopback HTTP (TLS is the server's business): roles on every route,
 * CSRF on cookie requests, a new session id at login, idle and absolute timeouts, agent revocation and
 * re-enrollment, the audit log, and the login rate limit.
 */
let dataDir = '';
let a: Appliance;
let server: Server;
let base = '';

interface Answer {
  status: number;
  code: string | undefined;
  data: unknown;
  cookie: string | null;
}

interface Session {
  cookie: string;
  csrf: string;
}

async function call(method: string, route: string, opts: { body?: unknown; session?: Session; csrf?: string | null; bearer?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.session) headers.cookie = opts.session.cookie;
  const csrf = opts.csrf === undefined ? opts.session?.csrf : opts.csrf;
  if (csrf) headers['x-ferry-csrf'] = csrf;
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  const res = await fetch(base + route, { method, headers, body: opts.body === undefined ? null : JSON.stringify(opts.body) });
  const body = (await res.json()) as { ok: boolean; code?: string; data?: unknown };
  const set = res.headers.get('set-cookie');
  return { status: res.status, code: body.code, data: body.data, cookie: set ? set.split(';')[0]! : null };
}

async function login(username: string, password: string, previous?: Session): Promise<Session> {
  const r = await call('POST', '/login', { body: { username, password }, ...(previous ? { session: previous } : {}) });
  assert.equal(r.status, 200, `login ${username}: ${r.code}`);
  return { cookie: r.cookie!, csrf: (r.data as { csrfToken: string }).csrfToken };
}

const PASSWORD = 'a long enough password';
let admin: Session;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-hardening-'));
  a = buildAppliance(loadConfig({ data: dataDir, listen: '127.0.0.1:0' }, {}), pino({ level: 'silent' }));
  server = createServer(createApp(a, pino({ level: 'silent' }), { fingerprint: 'SHA256:00', version: 'test', webRoot: path.join(dataDir, 'no-web') }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${API_PREFIX}`;
  const setup = await call('POST', '/setup', { body: { username: 'root', password: PASSWORD } });
  admin = { cookie: setup.cookie!, csrf: (setup.data as { csrfToken: string }).csrfToken };
  for (const role of ['operator', 'viewer'] as const) {
    assert.equal((await call('POST', '/users', { session: admin, body: { username: role, password: PASSWORD, role } })).status, 200);
  }
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  a?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('docs/api.md has the roles table that ROUTES makes', () => {
  const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
  assert.ok(doc.includes(rolesMarkdown()), 'regenerate the table with rolesMarkdown() (appliance/src/http/policy.ts)');
  const roleFor = roleTable();
  assert.equal(roleFor('GET', '/jobs'), 'viewer');
  assert.equal(roleFor('POST', '/jobs/7/pause'), 'operator');
  assert.equal(roleFor('PUT', '/users/3/role'), 'admin');
  assert.equal(roleFor('POST', '/sources/3/revoke-agent'), 'admin');
  assert.equal(roleFor('GET', '/points/1/disks/2/blocks'), 'operator');
});

test('a viewer reads but changes nothing; an operator runs jobs but not users, settings, revocation or the audit log', async () => {
  const viewer = await login('viewer', PASSWORD);
  const operator = await login('operator', PASSWORD);
  assert.equal((await call('GET', '/jobs', { session: viewer })).status, 200);
  assert.equal((await call('GET', '/settings', { session: viewer })).status, 200);
  for (const [method, route, body] of [
    ['POST', '/jobs', { sourceId: 1 }],
    ['POST', '/storage/gc', {}],
    ['PUT', '/settings', {}],
    ['DELETE', '/points/1', undefined],
  ] as const) {
    const r = await call(method, route, { session: viewer, body });
    assert.equal(r.code, 'ROLE_FORBIDDEN', `viewer ${method} ${route}`);
  }
  assert.equal((await call('GET', '/users', { session: viewer })).code, 'ROLE_FORBIDDEN');
  assert.equal((await call('GET', '/points/1/disks/1/blocks?from=0&to=1', { session: viewer })).code, 'ROLE_FORBIDDEN');
  // An operator gets past the role check: the job route itself answers (no such source).
  assert.equal((await call('POST', '/jobs', { session: operator, body: { sourceId: 99, intervalSeconds: 3600, maxPoints: 3 } })).code, 'SOURCE_NOT_FOUND');
  for (const [method, route, body] of [
    ['PUT', '/settings', { defaultThrottle: { networkMbps: 10, diskPercent: 10, queueDepth: 1 } }],
    ['POST', '/users', { username: 'x', password: PASSWORD }],
    ['PUT', '/users/1/role', { role: 'viewer' }],
    ['POST', '/sources/1/revoke-agent', {}],
    ['POST', '/transport/prepare', {}],
    ['GET', '/audit', undefined],
  ] as const) {
    const r = await call(method, route, { session: operator, body });
    assert.equal(r.code, 'ROLE_FORBIDDEN', `operator ${method} ${route}`);
  }
  const users = (await call('GET', '/users', { session: admin })).data as { username: string; role: string }[];
  assert.deepEqual(
    users.map((u) => `${u.username}:${u.role}`),
    ['root:admin', 'operator:operator', 'viewer:viewer'],
  );
});

test('an agent credential is refused on every route that is not an agent\'s: it cannot take over another source or read people\'s data', async () => {
  const victim = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'victim' });
  const attacker = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'attacker' });
  const usersBefore = (await call('GET', '/users', { session: admin })).data;
  const notForAgents = ROUTES.filter((r) => r.credential === 'admin' || r.credential === 'admin-or-restore');
  assert.ok(notForAgents.length > 30, 'the table has the admin routes');
  for (const r of notForAgents) {
    // Aimed at the victim's source where the route takes a source id, at id 1 elsewhere.
    const route = r.path.replace('/sources/{id}', `/sources/${victim.sourceId}`).replace(/\{\w+\}/g, '1');
    for (const p of [route, route.toUpperCase(), `${route}/`]) {
      const res = await call(r.method.toUpperCase(), p, { bearer: attacker.credential, ...(r.method === 'get' ? {} : { body: {} }) });
      assert.equal(res.status, 403, `${r.method.toUpperCase()} ${p} with an agent credential: ${res.status} ${res.code}`);
      assert.equal(res.code, 'FORBIDDEN', `${r.method.toUpperCase()} ${p}`);
    }
  }
  // Nothing changed: the victim's agent still works, no enrollment token was made for it, no user was added.
  assert.equal((await call('GET', `/sources/${victim.sourceId}`, { bearer: victim.credential })).status, 200);
  assert.equal((await call('GET', `/sources/${victim.sourceId}`, { bearer: attacker.credential })).code, 'FORBIDDEN');
  assert.deepEqual((await call('GET', '/users', { session: admin })).data, usersBefore);
  const audit = (await call('GET', '/audit?limit=1000', { session: admin })).data as AuditEntry[];
  assert.ok(audit.some((e) => e.action === `POST ${API_PREFIX}/sources/${victim.sourceId}/enroll-token` && e.code === 'FORBIDDEN'), 'the refused takeover is in the audit log');
});

test('letter case and a trailing slash do not change a route\'s rule (express matches them all)', async () => {
  const viewer = await login('viewer', PASSWORD);
  const operator = await login('operator', PASSWORD);
  const usersBefore = (await call('GET', '/users', { session: admin })).data as unknown[];
  for (const p of ['/AUDIT', '/Audit/', '/USERS', '/users/']) assert.equal((await call('GET', p, { session: viewer })).code, 'ROLE_FORBIDDEN', `viewer GET ${p}`);
  for (const p of ['/Users', '/USERS/', '/users/']) {
    const r = await call('POST', p, { session: operator, body: { username: 'sneaky', password: PASSWORD, role: 'admin' } });
    assert.equal(r.code, 'ROLE_FORBIDDEN', `operator POST ${p}`);
  }
  assert.equal((await call('PUT', '/SETTINGS', { session: operator, body: {} })).code, 'ROLE_FORBIDDEN');
  assert.deepEqual((await call('GET', '/users', { session: admin })).data, usersBefore, 'no user was added');
  // The rule is the route's own, not a stricter default: a viewer still reads jobs however the path is written.
  assert.equal((await call('GET', '/JOBS/', { session: viewer })).status, 200);
  assert.equal((await call('GET', '/no-such-route', { session: admin })).code, 'NOT_FOUND');
  assert.equal((await call('POST', '/no-such-route', { session: viewer, body: {} })).code, 'NOT_FOUND');
});

test('the last admin cannot be demoted; a role change applies to the next request', async () => {
  const users = (await call('GET', '/users', { session: admin })).data as { id: number; username: string }[];
  const root = users.find((u) => u.username === 'root')!;
  const viewerId = users.find((u) => u.username === 'viewer')!.id;
  assert.equal((await call('PUT', `/users/${root.id}/role`, { session: admin, body: { role: 'viewer' } })).code, 'LAST_ADMIN');
  const viewer = await login('viewer', PASSWORD);
  assert.equal((await call('POST', '/storage/gc', { session: viewer, body: {} })).code, 'ROLE_FORBIDDEN');
  assert.equal((await call('PUT', `/users/${viewerId}/role`, { session: admin, body: { role: 'operator' } })).status, 200);
  assert.equal((await call('POST', '/storage/gc', { session: viewer, body: {} })).status, 200);
  assert.equal((await call('PUT', `/users/${viewerId}/role`, { session: admin, body: { role: 'viewer' } })).status, 200);
  assert.equal((await call('PUT', `/users/${viewerId}/role`, { session: admin, body: { role: 'root' } })).code, 'BAD_REQUEST');
});

test('a cookie request that changes something needs the CSRF header and an Origin/Referer of this host', async () => {
  const body = { defaultThrottle: { networkMbps: 100, diskPercent: 30, queueDepth: 4 } };
  assert.equal((await call('PUT', '/settings', { session: admin, csrf: null, body })).code, 'CSRF_REJECTED');
  assert.equal((await call('PUT', '/settings', { session: admin, csrf: 'x'.repeat(43), body })).code, 'CSRF_REJECTED');
  const other = await login('root', PASSWORD);
  assert.equal((await call('PUT', '/settings', { session: admin, csrf: other.csrf, body })).code, 'CSRF_REJECTED', "another session's token");
  assert.equal((await call('PUT', '/settings', { session: admin, body, headers: { origin: 'https://evil.example' } })).code, 'CSRF_REJECTED');
  assert.equal((await call('PUT', '/settings', { session: admin, body, headers: { referer: 'https://evil.example/page' } })).code, 'CSRF_REJECTED');
  assert.equal((await call('PUT', '/settings', { session: admin, body, headers: { origin: 'null' } })).code, 'CSRF_REJECTED');
  const host = new URL(base).host;
  assert.equal((await call('PUT', '/settings', { session: admin, body, headers: { origin: `http://${host}` } })).status, 200);
  // Reads need no token; a bearer token needs none either (no cookie, nothing a browser sends by itself).
  assert.equal((await call('GET', '/settings', { session: admin, csrf: null })).status, 200);
  assert.equal((await call('PUT', '/settings', { bearer: a.auth.createApiToken('csrf'), body })).status, 200);
});

test('login always opens a new session and ends the one the browser had', async () => {
  const first = await login('root', PASSWORD);
  const second = await login('root', PASSWORD, first);
  assert.notEqual(first.cookie, second.cookie);
  assert.equal((await call('GET', '/jobs', { session: first })).code, 'AUTH_INVALID');
  assert.equal((await call('GET', '/jobs', { session: second })).status, 200);
});

test('a session ends after 30 minutes idle and 12 hours after login, whatever its use', async () => {
  const idle = await login('root', PASSWORD);
  const idleId = Number(/ferry_session_(\d+)_/.exec(idle.cookie)![1]);
  a.db.prepare('UPDATE user_sessions SET last_used_at = ? WHERE id = ?').run(new Date(Date.now() - SESSION_IDLE_MS - 1000).toISOString(), idleId);
  assert.equal((await call('GET', '/jobs', { session: idle })).code, 'AUTH_INVALID');
  const old = await login('root', PASSWORD);
  const oldId = Number(/ferry_session_(\d+)_/.exec(old.cookie)![1]);
  assert.equal((await call('GET', '/jobs', { session: old })).status, 200);
  a.db.prepare('UPDATE user_sessions SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), oldId);
  assert.equal((await call('GET', '/jobs', { session: old })).code, 'AUTH_INVALID');
  const r = await call('POST', '/login', { body: { username: 'root', password: PASSWORD } });
  assert.match(r.cookie ?? '', /^ferry_session=/);
  const setCookie = (await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'root', password: PASSWORD }) })).headers.get('set-cookie')!;
  assert.match(setCookie, /; Max-Age=43200; HttpOnly; Secure; SameSite=Strict$/);
});

test('a revoked agent is refused at once; a re-enrollment token gives the same source a new credential, once', async () => {
  const enrolled = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'revoke-me' });
  const cred = enrolled.credential;
  assert.equal((await call('GET', `/sources/${enrolled.sourceId}`, { bearer: cred })).status, 200);
  const r = await call('POST', `/sources/${enrolled.sourceId}/revoke-agent`, { session: admin, body: {} });
  assert.deepEqual(r.data, { sourceId: enrolled.sourceId, revoked: 1, wasOnline: false });
  assert.equal((await call('GET', `/sources/${enrolled.sourceId}`, { bearer: cred })).code, 'AUTH_INVALID');
  assert.equal((await call('POST', `/sources/${enrolled.sourceId}/revoke-agent`, { session: admin, body: {} })).code, 'AGENT_REVOKED');
  assert.equal((await call('POST', '/sources/999/revoke-agent', { session: admin, body: {} })).code, 'SOURCE_NOT_FOUND');

  const re = (await call('POST', `/sources/${enrolled.sourceId}/enroll-token`, { session: admin, body: {} })).data as { token: string };
  const again = await call('POST', '/enroll', { body: { token: re.token, hostname: 'revoke-me' } });
  const back = again.data as { sourceId: number; credential: string };
  assert.equal(back.sourceId, enrolled.sourceId, 'the same source, its jobs and points');
  assert.notEqual(back.credential, cred);
  assert.equal((await call('GET', `/sources/${enrolled.sourceId}`, { bearer: back.credential })).status, 200);
  assert.equal((await call('GET', `/sources/${enrolled.sourceId}`, { bearer: cred })).code, 'AUTH_INVALID', 'the old one stays revoked');
  assert.equal((await call('POST', '/enroll', { body: { token: re.token, hostname: 'revoke-me' } })).code, 'ENROLL_TOKEN_USED');
});

test('the audit log records who changed what, from where, and the outcome; only admins read it', async () => {
  const viewer = await login('viewer', PASSWORD);
  await call('POST', '/storage/gc', { session: viewer, body: {} });
  await call('POST', '/login', { body: { username: 'root', password: 'not the password' } });
  const enrolled = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: 'audited' });
  await call('POST', `/sources/${enrolled.sourceId}/revoke-agent`, { session: admin, body: {} });
  const entries = (await call('GET', '/audit?limit=1000', { session: admin })).data as AuditEntry[];
  const refused = entries.find((e) => e.actor === 'user:viewer' && e.action === `POST ${API_PREFIX}/storage/gc` && e.code === 'ROLE_FORBIDDEN');
  assert.ok(refused, 'a refused change by a viewer');
  assert.equal(refused.outcome, 'refused');
  assert.equal(refused.status, 403);
  assert.equal(refused.role, 'viewer');
  assert.match(refused.address, /127\.0\.0\.1/);
  assert.ok(
    entries.some((e) => e.actor === 'login:root' && e.outcome === 'refused' && e.code === 'LOGIN_FAILED'),
    'a failed login',
  );
  assert.ok(
    entries.some((e) => e.actor === 'user:root' && e.action === `POST ${API_PREFIX}/sources/${enrolled.sourceId}/revoke-agent` && e.outcome === 'ok'),
    'a revocation',
  );
  assert.ok(!entries.some((e) => e.action.startsWith('GET ')), 'reads are not recorded');
  assert.deepEqual(
    entries.map((e) => e.id),
    [...entries.map((e) => e.id)].sort((x, y) => y - x),
    'newest first',
  );
  const page = (await call('GET', `/audit?limit=2&before=${entries[0]!.id}`, { session: admin })).data as AuditEntry[];
  assert.deepEqual(
    page.map((e) => e.id),
    entries.slice(1, 3).map((e) => e.id),
  );
  assert.equal((await call('GET', '/audit?limit=5000', { session: admin })).code, 'BAD_REQUEST');
});

test('login rate limit: exponential delay per address and per user, capped, never a permanent lock', () => {
  let now = 1_000_000;
  const th = new LoginThrottle(() => now);
  for (let i = 0; i < 5; i++) th.begin('10.0.0.1', 'admin');
  assert.throws(() => th.begin('10.0.0.1', 'admin'), { code: 'LOGIN_THROTTLED' });
  // Another address may still try the same user (up to the user's own limit).
  th.begin('10.0.0.2', 'admin');
  let waits = 0;
  let last = 0;
  for (let i = 0; i < 40; i++) {
    now += 16 * 60_000; // longer than any address delay
    th.begin('10.0.0.1', 'admin');
    waits++;
    try {
      th.begin('10.0.0.1', 'admin');
    } catch (err) {
      last = Number(/in (\d+) s/.exec((err as Error).message)?.[1]);
    }
  }
  assert.equal(waits, 40, 'after the wait each try is allowed again: no permanent lock');
  assert.ok(last <= 15 * 60, `capped at 15 minutes, got ${last} s`);
  // The user name's delay is capped at a minute: an attacker elsewhere cannot keep the admin out longer.
  now += 60_001;
  th.begin('10.0.0.9', 'admin');
  th.succeeded('10.0.0.9', 'admin');
  th.begin('10.0.0.9', 'admin');
});
