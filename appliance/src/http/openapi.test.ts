import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { Express } from 'express';
import { API_PREFIX, ERRORS, isErrorCode } from '@ferry/protocol';
import { buildAppliance, type Appliance } from '../appliance.js';
import { loadConfig } from '../config.js';
import { createApp } from './app.js';
import { openApiDocument, pathParams, ROUTES } from './openapi.js';
import { lockRoutes } from '../keys/routes.js';
import { ApplianceLock } from '../keys/lock.js';

type Json = { [key: string]: unknown };
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const doc = openApiDocument('1.2.3-test') as Json;
const paths = doc.paths as Record<string, Record<string, Json>>;

function operations(): { method: string; path: string; op: Json }[] {
  return Object.entries(paths).flatMap(([p, item]) =>
    Object.entries(item)
      .filter(([m]) => METHODS.includes(m))
      .map(([method, op]) => ({ method, path: p, op })),
  );
}

/** Every value of `key` anywhere in the document, with where it was found. */
function collect(value: unknown, key: string, at: string, out: { at: string; value: unknown }[] = []): { at: string; value: unknown }[] {
  if (Array.isArray(value)) value.forEach((v, i) => collect(v, key, `${at}/${i}`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === key) out.push({ at, value: v });
      collect(v, key, `${at}/${k}`, out);
    }
  }
  return out;
}

function resolvePointer(pointer: string): unknown {
  let cur: unknown = doc;
  for (const raw of pointer.replace(/^#\//, '').split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Json)[part];
  }
  return cur;
}

test('openApiDocument() is an OpenAPI 3.1 document of plain JSON', () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.equal((doc.info as Json).version, '1.2.3-test');
  assert.deepEqual(doc.servers, [{ url: API_PREFIX, description: (doc.servers as Json[])[0]!.description }]);
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc, 'nothing undefined, no functions, no cycles');
  assert.ok(operations().length > 0);
});

test('every operation has an id, a credential, a success reply and its path parameters', () => {
  const ids = new Set<string>();
  for (const { method, path: p, op } of operations()) {
    const where = `${method.toUpperCase()} ${p}`;
    assert.equal(typeof op.operationId, 'string', where);
    assert.ok(!ids.has(op.operationId as string), `${where}: operationId ${String(op.operationId)} used twice`);
    ids.add(op.operationId as string);
    assert.ok(['admin', 'agent', 'admin-or-agent', 'admin-or-restore', 'any', 'none'].includes(op['x-ferry-credential'] as string), where);
    const responses = op.responses as Json;
    assert.ok(responses && Object.keys(responses).length > 0, `${where}: no responses`);
    assert.ok(responses['200'], `${where}: no 200 reply`);
    for (const r of Object.values(responses)) assert.equal(typeof (r as Json).description, 'string', `${where}: a reply without description`);
    const declared = ((op.parameters as Json[] | undefined) ?? []).filter((x) => x.in === 'path').map((x) => x.name);
    assert.deepEqual(declared, pathParams(p), `${where}: path parameters`);
    const schemes = (op.security as Record<string, string[]>[]).flatMap((s) => Object.keys(s));
    for (const s of schemes) assert.ok((doc.components as Json).securitySchemes && Object.hasOwn((doc.components as { securitySchemes: Json }).securitySchemes, s), `${where}: unknown security scheme ${s}`);
    assert.equal(schemes.length === 0, op['x-ferry-credential'] === 'none', `${where}: security matches x-ferry-credential`);
  }
});

test('every $ref resolves within the document', () => {
  const refs = collect(doc, '$ref', '#');
  assert.ok(refs.length > 20);
  for (const { at, value } of refs) {
    assert.equal(typeof value, 'string', at);
    assert.match(value as string, /^#\//, `${at}: ${String(value)} points outside the document`);
    assert.notEqual(resolvePointer(value as string), undefined, `${at}: ${String(value)} does not resolve`);
  }
});

test('the socket.io extension names its namespaces, path and events', () => {
  const io = doc['x-socket-io'] as { path: string; namespaces: Record<string, { serverToClient: Json; clientToServer: Json }> };
  assert.equal(io.path, '/socket.io');
  assert.deepEqual(Object.keys(io.namespaces).sort(), ['/agent', '/ui']);
  assert.ok(Object.hasOwn(io.namespaces['/agent']!.serverToClient, 'cycle.run'));
  assert.ok(Object.hasOwn(io.namespaces['/ui']!.serverToClient, 'job.updated'));
});

test('every error code of an operation is in the registry, with the HTTP status it is listed under', () => {
  const enumCodes = ((doc.components as { schemas: { Error: { properties: { code: { enum: string[] } } } } }).schemas.Error.properties.code.enum).slice().sort();
  assert.deepEqual(enumCodes, Object.keys(ERRORS).sort(), 'the Error schema lists every code');
  for (const { method, path: p, op } of operations()) {
    const where = `${method.toUpperCase()} ${p}`;
    const codes = op['x-ferry-errors'] as string[];
    assert.ok(codes.includes('INTERNAL'), where);
    for (const code of codes) {
      assert.ok(isErrorCode(code), `${where}: ${code} is not in ERRORS`);
      const status = ERRORS[code].status;
      assert.notEqual(status, 0, `${where}: ${code} has no HTTP status`);
      const listed = collect((op.responses as Json)[String(status)], 'enum', '').flatMap((x) => x.value as string[]);
      assert.ok(listed.includes(code), `${where}: ${code} is not under ${status}`);
    }
  }
});

/** What express 5 (router 2) keeps of each registered handler; internal, so only what this walk needs. */
interface LayerLike {
  route?: { path: unknown; methods: Record<string, boolean | undefined> };
  handle: unknown;
  rawPath?: unknown;
}

/** (METHOD, path) of every route registered under `stack`, with mount paths joined and `:id` written `{id}`. */
function registeredRoutes(stack: LayerLike[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      assert.equal(typeof layer.route.path, 'string', `route under ${prefix} has a non-string path`);
      const full = (prefix + (layer.route.path as string)).replace(/:(\w+)/g, '{$1}');
      return Object.keys(layer.route.methods)
        .filter((m) => m !== '_all' && layer.route!.methods[m])
        .map((m) => `${m.toUpperCase()} ${full}`);
    }
    const inner = (layer.handle as { stack?: unknown } | null)?.stack;
    if (!Array.isArray(inner)) return []; // plain middleware
    assert.equal(typeof layer.rawPath, 'string', `router mounted under ${prefix} on a non-string path`);
    const mount = layer.rawPath === '/' ? '' : (layer.rawPath as string);
    return registeredRoutes(inner as LayerLike[], prefix + mount);
  });
}

let dataDir = '';
let appliance: Appliance | undefined;
let app: Express;

before(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-openapi-'));
  appliance = buildAppliance(loadConfig({ data: dataDir, listen: '127.0.0.1:0' }, {}), pino({ level: 'silent' }));
  app = createApp(appliance, pino({ level: 'silent' }), { fingerprint: 'SHA256:00', version: '1.2.3-test', webRoot: path.join(dataDir, 'no-web') });
});

after(() => {
  appliance?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('the document lists exactly the routes the express app registers under /api/v1', () => {
  const registered = registeredRoutes((app.router as unknown as { stack: LayerLike[] }).stack);
  assert.ok(registered.length > 20, `only ${registered.length} routes found: has express changed its internals?`);
  const api = registered.filter((r) => r.split(' ')[1]!.startsWith(`${API_PREFIX}/`)).sort();
  assert.deepEqual(api, [...new Set(api)], 'a route is registered twice');
  // The routes served in front of the app while it is locked (server.ts): unlock, initialise, and health again.
  const lock = new ApplianceLock(dataDir, pino({ level: 'silent' }), { onUnlocked: () => Promise.resolve() });
  for (const r of registeredRoutes((lockRoutes(lock, 'test') as unknown as { stack: LayerLike[] }).stack)) {
    if (r.split(' ')[1]!.startsWith(`${API_PREFIX}/`) && !api.includes(r)) api.push(r);
  }
  api.sort();
  const documented = operations()
    .map(({ method, path: p }) => `${method.toUpperCase()} ${API_PREFIX}${p}`)
    .sort();
  assert.deepEqual(api, documented);
  assert.equal(ROUTES.length, documented.length, 'ROUTES has no duplicate (method, path)');
});

test('GET /api/v1/openapi.json serves the document without a token', async () => {
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}${API_PREFIX}/openapi.json`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), doc);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
