import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { API_PREFIX, ApplianceClient } from '@ferry/protocol';
import { loadConfig, startServer, type RunningServer } from '@ferry/appliance/testing';
import { TEST_PASSPHRASE, TEST_SCRYPT_N, ROOT } from '../lib/cli.js';

/*
 * GET /api/v1/downloads/ferry-restore.iso on a real appliance over HTTPS, serving a small stand-in for the ISO
 * (FERRY_RESTORE_ISO): the whole file, a resumed range, HEAD for the size, a viewer's browser session, and the
 * refusals (no credential, an agent's credential, no ISO built).
 */

const ISO_URL = `${API_PREFIX}/downloads/ferry-restore.iso`;
const PASSWORD = 'a long enough password';

async function body(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('the restore ISO download', { timeout: 120_000 }, () => {
  let work: string;
  let iso: string;
  let content: Buffer;
  let server: RunningServer;
  let admin: ApplianceClient;
  let anonymous: ApplianceClient;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-iso-download-'));
    iso = path.join(work, 'stand-in.iso');
    // Not a multiple of any block or chunk size, so an off-by-one at the end shows.
    content = randomBytes(3 * 1024 * 1024 + 4321);
    await writeFile(iso, content);
    const config = loadConfig({ data: path.join(work, 'data'), listen: '127.0.0.1:0' }, { FERRY_RESTORE_ISO: iso });
    server = await startServer(config, pino({ level: 'silent' }), {
      version: 'test',
      webRoot: path.join(ROOT, 'web/dist'),
      passphrase: TEST_PASSPHRASE,
      testScryptN: TEST_SCRYPT_N,
    });
    admin = new ApplianceClient(server.url, server.fingerprint, server.appliance.auth.createApiToken('test'));
    anonymous = new ApplianceClient(server.url, server.fingerprint);
  });

  after(async () => {
    admin?.close();
    anonymous?.close();
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  test('GET returns exactly the file, with its length, type and name', async () => {
    const res = await admin.raw(ISO_URL);
    const got = await body(res);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(content.length));
    assert.equal(res.headers['content-type'], 'application/x-iso9660-image');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.match(res.headers['content-disposition'] ?? '', /attachment; filename="ferry-restore.iso"/);
    assert.ok(got.equals(content), `got ${got.length} bytes that differ from the ${content.length} of the file`);
  });

  test('a Range request answers 206 with exactly that slice; open and suffix ranges too', async () => {
    for (const [range, from, to] of [
      ['bytes=1000-1999', 1000, 1999],
      [`bytes=${content.length - 10}-`, content.length - 10, content.length - 1],
      ['bytes=-4321', content.length - 4321, content.length - 1],
      [`bytes=2000000-${content.length + 999}`, 2_000_000, content.length - 1],
    ] as const) {
      const res = await admin.raw(ISO_URL, { headers: { range } });
      const got = await body(res);
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${from}-${to}/${content.length}`, range);
      assert.equal(res.headers['content-length'], String(to - from + 1), range);
      assert.ok(got.equals(content.subarray(from, to + 1)), `${range}: the bytes differ from the file's`);
    }
    // Resuming after the ISO was rebuilt: If-Range with the old ETag gets the whole new file, not a mix.
    const first = await admin.raw(ISO_URL, { method: 'HEAD' });
    await body(first);
    const etag = first.headers.etag!;
    const rebuilt = randomBytes(content.length + 17);
    await writeFile(iso, rebuilt);
    try {
      const res = await admin.raw(ISO_URL, { headers: { range: 'bytes=100-', 'if-range': etag } });
      assert.equal(res.statusCode, 200);
      assert.ok((await body(res)).equals(rebuilt));
    } finally {
      await writeFile(iso, content);
    }
  });

  test('a range past the end is RANGE_NOT_SATISFIABLE with the size; HEAD gives the size without the body', async () => {
    const res = await admin.raw(ISO_URL, { headers: { range: `bytes=${content.length}-` } });
    const reply = JSON.parse((await body(res)).toString()) as { code: string; message: string };
    assert.equal(res.statusCode, 416);
    assert.equal(reply.code, 'RANGE_NOT_SATISFIABLE');
    assert.equal(res.headers['content-range'], `bytes */${content.length}`);
    const head = await admin.raw(ISO_URL, { method: 'HEAD' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(content.length));
    assert.equal((await body(head)).length, 0);
  });

  test('a viewer logged in to the web UI may download it; no credential is AUTH_REQUIRED, an agent is FORBIDDEN', async () => {
    const a = server.appliance;
    await a.ui.users.setup('admin', PASSWORD);
    await a.ui.users.create('viewer', PASSWORD, 'viewer');
    const login = await anonymous.raw(`${API_PREFIX}/login`, { method: 'POST', body: { username: 'viewer', password: PASSWORD } });
    await body(login);
    assert.equal(login.statusCode, 200);
    const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
    const viewer = await anonymous.raw(ISO_URL, { headers: { cookie, range: 'bytes=0-99' } });
    assert.equal(viewer.statusCode, 206);
    assert.ok((await body(viewer)).equals(content.subarray(0, 100)));

    const none = await anonymous.raw(ISO_URL);
    const refused = JSON.parse((await body(none)).toString()) as { code: string };
    assert.equal(none.statusCode, 401);
    assert.equal(refused.code, 'AUTH_REQUIRED');

    const { credential } = a.auth.enroll({ token: a.auth.createEnrollToken(1).token, hostname: 'src' });
    const agent = new ApplianceClient(server.url, server.fingerprint, credential);
    try {
      const res = await agent.raw(ISO_URL);
      const reply = JSON.parse((await body(res)).toString()) as { code: string };
      assert.equal(res.statusCode, 403);
      assert.equal(reply.code, 'FORBIDDEN');
    } finally {
      agent.close();
    }
  });

  test('without an ISO the reply is ISO_NOT_BUILT, saying to run make iso', async () => {
    const away = `${iso}.away`;
    await rename(iso, away);
    try {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await admin.raw(ISO_URL, { method });
        const text = (await body(res)).toString();
        assert.equal(res.statusCode, 503, method);
        if (method === 'GET') {
          const reply = JSON.parse(text) as { ok: boolean; code: string; message: string; hint: string };
          assert.equal(reply.code, 'ISO_NOT_BUILT');
          assert.match(reply.message, /the restore ISO has not been built on this appliance .*run `make iso`/);
          assert.match(reply.hint, /make iso/);
        }
      }
    } finally {
      await rename(away, iso);
    }
    const back = await admin.raw(ISO_URL, { method: 'HEAD' });
    await body(back);
    assert.equal(back.statusCode, 200, 'served again once it is back, without a restart');
  });
});
