import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { API_PREFIX } from '@ferry/protocol';
import { buildAppliance, type Appliance } from '../appliance.js';
import { loadConfig } from '../config.js';
import { createApp } from '../http/app.js';

/*
 * Web UI accounts over the real express app on loopback HTTP (TLS is the server's business, not this one's):
 * first start, login, the session cookie as an admin credential, logout, and the refusals.
 */
let dataDir = '';
let appliance: Appliance | undefined;
let server: Server;
let base = '';

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-ui-users-'));
  appliance = buildAppliance(loadConfig({ data: dataDir, listen: '127.0.0.1:0' }, {}), pino({ level: 'silent' }));
  server = createServer(createApp(appliance, pino({ level: 'silent' }), { fingerprint: 'SHA256:00', version: 'test', webRoot: path.join(dataDir, 'no-web') }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}${API_PREFIX}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  appliance?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: { ok: boolean; code?: string; data?: unknown };
  cookie: string | null;
}

async function call(method: string, route: string, opts: { body?: unknown; cookie?: string; origin?: string; bearer?: string; csrf?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.csrf) headers['x-ferry-csrf'] = opts.csrf;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.origin) headers.origin = opts.origin;
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  const res = await fetch(base + route, { method, headers, body: opts.body === undefined ? null : JSON.stringify(opts.body) });
  const set = res.headers.get('set-cookie');
  return { status: res.status, body: (await res.json()) as Answer['body'], cookie: set ? set.split(';')[0]! : null };
}

test('before setup: the session says so, and login is refused with SETUP_REQUIRED', async () => {
  const s = await call('GET', '/session');
  assert.deepEqual(s.body.data, { setupRequired: true, user: null, csrfToken: null });
  const login = await call('POST', '/login', { body: { username: 'admin', password: 'anything at all' } });
  assert.equal(login.status, 409);
  assert.equal(login.body.code, 'SETUP_REQUIRED');
});

test('setup refuses a short password, then creates the one admin and logs it in; it runs once', async () => {
  const weak = await call('POST', '/setup', { body: { username: 'admin', password: 'short' } });
  assert.equal(weak.status, 400);
  assert.equal(weak.body.code, 'PASSWORD_WEAK');
  const ok = await call('POST', '/setup', { body: { username: 'admin', password: 'a long enough password' } });
  assert.equal(ok.status, 200);
  assert.match(ok.cookie ?? '', /^ferry_session=ferry_session_\d+_/);
  const again = await call('POST', '/setup', { body: { username: 'other', password: 'a long enough password' } });
  assert.equal(again.status, 409);
  assert.equal(again.body.code, 'SETUP_DONE');
});

test('the session cookie is an admin credential; bearer tokens keep working beside it', async () => {
  const { cookie } = await call('POST', '/login', { body: { username: 'ADMIN', password: 'a long enough password' } });
  assert.ok(cookie);
  assert.equal((await call('GET', '/jobs', { cookie })).status, 200);
  assert.equal((await call('GET', '/dashboard', { cookie })).status, 200);
  const info = await call('GET', '/session', { cookie });
  assert.equal((info.body.data as { user: { username: string } }).user.username, 'admin');
  assert.equal((await call('GET', '/jobs', { bearer: appliance!.auth.createApiToken('t') })).status, 200);
  assert.equal((await call('GET', '/jobs')).status, 401);
});

test('a changing request with the cookie from another origin is refused', async () => {
  const { cookie } = await call('POST', '/login', { body: { username: 'admin', password: 'a long enough password' } });
  const csrf = ((await call('GET', '/session', { cookie: cookie! })).body.data as { csrfToken: string }).csrfToken;
  const r = await call('POST', '/users', { cookie: cookie!, csrf, origin: 'https://evil.example', body: { username: 'x', password: 'another long one' } });
  assert.equal(r.status, 403);
  assert.equal(r.body.code, 'CSRF_REJECTED');
  const login = await call('POST', '/login', { origin: 'https://evil.example', body: { username: 'admin', password: 'a long enough password' } });
  assert.equal(login.status, 403);
});

test('a wrong password is refused; five in a row make the address wait', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await call('POST', '/login', { body: { username: 'admin', password: `wrong password ${i}` } });
    assert.equal(r.status, 401);
    assert.equal(r.body.code, 'LOGIN_FAILED');
    assert.equal(r.cookie, null);
  }
  const throttled = await call('POST', '/login', { body: { username: 'admin', password: 'a long enough password' } });
  assert.equal(throttled.status, 429);
  assert.equal(throttled.body.code, 'LOGIN_THROTTLED');
});

test('users: create, refuse a duplicate, refuse deleting the last admin; logout ends the session', async () => {
  const users = appliance!.ui.users;
  const u = await users.create('second', 'second admin password', 'admin');
  await assert.rejects(users.create('SECOND', 'second admin password', 'viewer'), { code: 'USER_EXISTS' });
  users.delete(u.id);
  assert.throws(() => users.delete(users.list()[0]!.id), { code: 'LAST_ADMIN' });

  const session = await users.setup('x', 'xxxxxxxxxxxx').catch(() => null);
  assert.equal(session, null, 'setup stays closed');
  const opened = await users.login('admin', 'a long enough password', 'test');
  const cookie = `ferry_session=${opened.token}`;
  assert.equal((await call('GET', '/jobs', { cookie })).status, 200);
  const csrf = ((await call('GET', '/session', { cookie })).body.data as { csrfToken: string }).csrfToken;
  assert.equal((await call('POST', '/logout', { cookie })).body.code, 'CSRF_REJECTED', 'logout with the cookie needs the CSRF header');
  const out = await call('POST', '/logout', { cookie, csrf });
  assert.deepEqual(out.body.data, { loggedOut: true });
  const after = await call('GET', '/jobs', { cookie });
  assert.equal(after.status, 401);
  assert.equal(after.body.code, 'AUTH_INVALID');
});
