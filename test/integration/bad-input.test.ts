import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import tls from 'node:tls';
import path from 'node:path';
import os from 'node:os';
import {
  ApplianceClient,
  BlockKind,
  Codec,
  encodeBlockFrame,
  encodeChunkFrame,
  encodeEndFrame,
  encodeStreamHeader,
  FerryError,
  initHashing,
  xxh64,
  type CycleState,
  type Point,
} from '@ferry/protocol';
import { openStores } from '@ferry/appliance/testing';
import { enrollAgent, ferry, ferryOk, sh, startAppliance, TEST_PASSPHRASE, type RunningAppliance } from '../lib/cli.js';
import { startAgentDaemon } from '../lib/jobs.js';

const MIB = 1024 * 1024;

/** Expects a FerryError with this code from the appliance API. */
async function refused(p: Promise<unknown>, code: string): Promise<FerryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FerryError, `expected a FerryError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, the call succeeded`);
}

async function chunkFiles(dataDir: string): Promise<string[]> {
  return (await sh('find', [path.join(dataDir, 'chunks'), '-type', 'f'])).split('\n').filter(Boolean);
}

describe('bad input is refused with a clear error and stores nothing', { timeout: 5 * 60_000 }, () => {
  let work: string;
  let appliance: RunningAppliance;
  let agent: ApplianceClient;
  let agentSourceId: number;
  let admin: ApplianceClient;

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bad-'));
    appliance = await startAppliance(path.join(work, 'appliance'));
    await enrollAgent(appliance, path.join(work, 'agent'), 'api-source');
    const state = JSON.parse(await readFile(path.join(work, 'agent', 'agent.json'), 'utf8')) as { credential: string; sourceId: number };
    agent = new ApplianceClient(appliance.url, appliance.fingerprint, state.credential);
    agentSourceId = state.sourceId;
    admin = new ApplianceClient(appliance.url, appliance.fingerprint, appliance.adminToken);
  });

  after(async () => {
    agent?.close();
    admin?.close();
    await appliance?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('enroll with a token the appliance never issued is refused', async () => {
    const state = path.join(work, 'agent-wrong-token');
    const r = await ferry('agent', ['enroll', '--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', 'ferry_enroll_1_' + 'A'.repeat(43), '--state', state]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ENROLL_TOKEN_INVALID/);
    assert.match(r.stderr, /what to do: .*enroll-token/);
    assert.equal(existsSync(path.join(state, 'agent.json')), false);
  });

  test('an enrollment token works once', async () => {
    const token = await appliance.enrollToken();
    const args = (state: string) => ['enroll', '--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', token, '--state', state];
    await ferryOk('agent', args(path.join(work, 'agent-once')));
    const r = await ferry('agent', args(path.join(work, 'agent-twice')));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ENROLL_TOKEN_USED/);
    assert.equal(existsSync(path.join(work, 'agent-twice', 'agent.json')), false);
  });

  test('the appliance speaks TLS 1.2 and 1.3 only: older clients are refused by the server in the handshake', async () => {
    const url = new URL(appliance.url);
    // The client offers old versions (SECLEVEL=0 lets this OpenSSL do so), so a refusal comes from the appliance.
    const outcome = (maxVersion: tls.SecureVersion): Promise<string> =>
      new Promise((resolve) => {
        const s = tls.connect({ host: url.hostname, port: Number(url.port), minVersion: 'TLSv1', maxVersion, rejectUnauthorized: false, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
          resolve(`connected ${s.getProtocol()}`);
          s.destroy();
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
      });
    assert.equal(await outcome('TLSv1'), 'refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    assert.equal(await outcome('TLSv1.1'), 'refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    assert.equal(await outcome('TLSv1.2'), 'connected TLSv1.2');
    assert.equal(await outcome('TLSv1.3'), 'connected TLSv1.3');
  });

  test('a server with another certificate receives not one byte, and the error shows both fingerprints', async () => {
    const key = path.join(work, 'mitm.key');
    const cert = path.join(work, 'mitm.pem');
    await sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=interceptor']);
    let received = 0;
    const server = tls.createServer({ key: await readFile(key), cert: await readFile(cert) }, (socket) => {
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const token = await appliance.enrollToken();
      const r = await ferry('agent', ['enroll', '--appliance', `https://127.0.0.1:${port}`, '--fingerprint', appliance.fingerprint, '--token', token, '--state', path.join(work, 'agent-mitm')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /FINGERPRINT_MISMATCH/);
      assert.ok(r.stderr.includes(appliance.fingerprint), 'names the pinned fingerprint');
      assert.match(r.stderr, /presented SHA256:[0-9A-F:]{95}/);
      const restore = await ferry('restore', ['--appliance', `https://127.0.0.1:${port}`, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', '1', '--target', path.join(work, 'never.img')]);
      assert.equal(restore.code, 2);
      assert.match(restore.stderr, /FINGERPRINT_MISMATCH/);
      assert.equal(existsSync(path.join(work, 'never.img')), false);
      const byCode = await ferry('restore', ['code', '--appliance', `https://127.0.0.1:${port}`, '--fingerprint', appliance.fingerprint, '--code', 'ABCD-EFGH-JKMN-PQRS', '--target', path.join(work, 'never.img')]);
      assert.equal(byCode.code, 2, byCode.stderr);
      assert.match(byCode.stderr, /FINGERPRINT_MISMATCH/);
      assert.ok(byCode.stderr.includes(appliance.fingerprint), 'the restore ISO program names the pinned fingerprint');
      assert.match(byCode.stderr, /presented SHA256:[0-9A-F:]{95}/);
      assert.equal(existsSync(path.join(work, 'never.img')), false);
      // The token is still unused: it never left the agent.
      await ferryOk('agent', ['enroll', '--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', token, '--state', path.join(work, 'agent-after-mitm')]);
      // An enrolled agent's daemon whose appliance address now leads to the interceptor: its credential stays home.
      const daemonState = path.join(work, 'agent-daemon-mitm');
      await cp(path.join(work, 'agent-after-mitm'), daemonState, { recursive: true });
      const stateFile = path.join(daemonState, 'agent.json');
      const enrolled = JSON.parse(await readFile(stateFile, 'utf8')) as { appliance: string };
      await writeFile(stateFile, JSON.stringify({ ...enrolled, appliance: `https://127.0.0.1:${port}` }), { mode: 0o600 });
      const disk = path.join(work, 'daemon-disk.img');
      await writeFile(disk, Buffer.alloc(MIB));
      const daemon = startAgentDaemon(daemonState, [disk]);
      try {
        for (let i = 0; i < 300 && !/FINGERPRINT_MISMATCH/.test(daemon.output()); i++) await new Promise((r) => setTimeout(r, 100));
        assert.match(daemon.output(), /FINGERPRINT_MISMATCH/, daemon.output());
        assert.ok(daemon.output().includes(appliance.fingerprint), 'the daemon names the pinned fingerprint');
        assert.match(daemon.output(), /presented SHA256:[0-9A-F:]{95}/);
      } finally {
        await daemon.kill();
      }
    } finally {
      server.close();
    }
    assert.equal(received, 0, 'application bytes received by the interceptor');
  });

  test('a chunk whose content does not match its id is refused and nothing is stored', async () => {
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    const data = randomBytes(MIB);
    const wrongId = createHash('sha256').update('something else').digest();
    const before = await chunkFiles(appliance.dataDir);
    const err = await refused(
      agent.json(`/api/v1/cycles/${cycle.id}/stream`, {
        method: 'POST',
        stream: [encodeStreamHeader(), ...encodeChunkFrame(wrongId, Codec.None, MIB, data), encodeEndFrame(1)],
      }),
      'CHUNK_MISMATCH',
    );
    assert.match(err.message, /does not hash to its id/);
    assert.deepEqual(await chunkFiles(appliance.dataDir), before, 'no chunk file and no temporary file is left');
  });

  test('chunk ids that are not 64 hex characters are refused', async () => {
    for (const bad of ['xyz', 'A'.repeat(64), '0'.repeat(63), '../../etc/passwd', '0'.repeat(64) + '/..']) {
      await refused(agent.json('/api/v1/chunks/missing', { method: 'POST', body: { ids: [bad] } }), 'CHUNK_ID_INVALID');
    }
    const ok = await agent.json<{ missing: string[] }>('/api/v1/chunks/missing', { method: 'POST', body: { ids: ['0'.repeat(64)] } });
    assert.deepEqual(ok.missing, ['0'.repeat(64)]);
    // The largest query an agent sends (4096 ids, ~270 KB): no smaller body limit of another route applies to it.
    const many = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(64, '0'));
    assert.equal((await agent.json<{ missing: string[] }>('/api/v1/chunks/missing', { method: 'POST', body: { ids: many } })).missing.length, 4096);
  });

  test('a block that names a chunk the appliance lacks is refused and not acknowledged', async () => {
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    const absent = createHash('sha256').update('never uploaded').digest();
    await refused(
      agent.json(`/api/v1/cycles/${cycle.id}/stream`, {
        method: 'POST',
        stream: [encodeStreamHeader(), encodeBlockFrame({ disk: 0, kind: BlockKind.Data, blockNo: 0, xxh64: 1n, chunkId: absent }), encodeEndFrame(1)],
      }),
      'CHUNK_MISSING',
    );
    const state = await agent.json<CycleState>(`/api/v1/cycles/${cycle.id}`);
    assert.equal(state.disks[0]?.nextBlock, 0);
  });

  test('blocks out of order are refused', async () => {
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    await refused(
      agent.json(`/api/v1/cycles/${cycle.id}/stream`, {
        method: 'POST',
        stream: [encodeStreamHeader(), encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo: 1, xxh64: 0n, chunkId: Buffer.alloc(32) }), encodeEndFrame(1)],
      }),
      'BLOCK_OUT_OF_ORDER',
    );
  });

  test('a block sent twice is refused, in one stream or across two, and acknowledges nothing', async () => {
    const disks = [{ key: 'dup-disk', size: 2 * MIB }];
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks } });
    const zero = (blockNo: number): Buffer => encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo, xxh64: 0n, chunkId: Buffer.alloc(32) });
    const err = await refused(agent.json(`/api/v1/cycles/${cycle.id}/stream`, { method: 'POST', stream: [encodeStreamHeader(), zero(0), zero(0), encodeEndFrame(2)] }), 'BLOCK_OUT_OF_ORDER');
    assert.match(err.message, /block 0/);
    const nextBlock = async (): Promise<number | undefined> => {
      const again = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks } });
      assert.equal(again.id, cycle.id);
      return again.disks[0]?.nextBlock;
    };
    assert.equal(await nextBlock(), 0, 'a refused stream acknowledges none of its blocks');
    await agent.json(`/api/v1/cycles/${cycle.id}/stream`, { method: 'POST', stream: [encodeStreamHeader(), zero(0), encodeEndFrame(1)] });
    assert.equal(await nextBlock(), 1);
    // A later stream that repeats an acknowledged block is refused the same way, and changes nothing.
    await refused(agent.json(`/api/v1/cycles/${cycle.id}/stream`, { method: 'POST', stream: [encodeStreamHeader(), zero(0), encodeEndFrame(1)] }), 'BLOCK_OUT_OF_ORDER');
    assert.equal(await nextBlock(), 1);
  });

  test('a commit whose chunk vanished is refused and no point is committed', async () => {
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    const data = randomBytes(MIB);
    const id = createHash('sha256').update(data).digest();
    await agent.json(`/api/v1/cycles/${cycle.id}/stream`, {
      method: 'POST',
      stream: [
        encodeStreamHeader(),
        ...encodeChunkFrame(id, Codec.None, MIB, data),
        encodeBlockFrame({ disk: 0, kind: BlockKind.Data, blockNo: 0, xxh64: xxh64(data), chunkId: id }),
        encodeBlockFrame({ disk: 0, kind: BlockKind.Zero, blockNo: 1, xxh64: 0n, chunkId: Buffer.alloc(32) }),
        encodeEndFrame(3),
      ],
    });
    // The appliance is encrypted: the chunk's file is named by its keyed id.
    await unlink((await openStores(appliance.dataDir, TEST_PASSPHRASE)).chunks.pathOf(id.toString('hex')));
    const stats = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 0 };
    const err = await refused(agent.json(`/api/v1/cycles/${cycle.id}/commit`, { method: 'POST', body: { stats } }), 'CHUNK_MISSING');
    assert.match(err.message, /not committed/);
    const points = await agent.json<Point[]>('/api/v1/points');
    assert.equal(points.length, 0);
    // The next run resumes the same cycle from the block whose chunk vanished, and can then commit.
    const resumed = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    assert.equal(resumed.id, cycle.id);
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.disks[0]?.nextBlock, 0);
  });

  test('a commit before every block is sent is refused', async () => {
    const cycle = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'other-disk', size: 2 * MIB }] } });
    assert.equal(cycle.resumed, false, 'another disk set starts a new cycle');
    const stats = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 0 };
    await refused(agent.json(`/api/v1/cycles/${cycle.id}/commit`, { method: 'POST', body: { stats } }), 'CYCLE_INCOMPLETE');
  });

  test('malformed requests, foreign sources and missing tokens get 4xx codes', async () => {
    await refused(agent.json('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'x', size: -1 }] } }), 'BAD_REQUEST');
    // JSON.parse makes "__proto__" an own key, so it really goes over the wire (a literal would set the prototype).
    const polluted: unknown = JSON.parse(`{"disks":[{"key":"p","size":${MIB}}],"__proto__":{"admin":true}}`);
    await refused(agent.json('/api/v1/cycles', { method: 'POST', body: polluted }), 'BAD_REQUEST');
    await refused(agent.json('/api/v1/points/..%2f..%2fcatalog.sqlite'), 'BAD_REQUEST');
    await refused(agent.json(`/api/v1/sources/${agentSourceId + 1000}`), 'FORBIDDEN');
    await refused(agent.json('/api/v1/sources'), 'FORBIDDEN');
    const anonymous = new ApplianceClient(appliance.url, appliance.fingerprint);
    try {
      await refused(anonymous.json('/api/v1/points'), 'AUTH_REQUIRED');
      anonymous.setAuth('ferry_admin_1_' + 'x'.repeat(43));
      await refused(anonymous.json('/api/v1/points'), 'AUTH_INVALID');
    } finally {
      anonymous.close();
    }
    const truncated = await agent.json<CycleState>('/api/v1/cycles', { method: 'POST', body: { disks: [{ key: 'api-disk', size: 2 * MIB }] } });
    await refused(agent.json(`/api/v1/cycles/${truncated.id}/stream`, { method: 'POST', stream: [encodeStreamHeader()] }), 'STREAM_INVALID');
  });

  test('restore refuses an unknown point, a wrong number of targets and a target too small, writing nothing', async () => {
    const image = path.join(work, 'small-source.img');
    await writeFile(image, randomBytes(4 * MIB));
    await ferryOk('agent', ['backup', '--disk', image, '--state', path.join(work, 'agent')]);
    const point = (await admin.json<Point[]>(`/api/v1/points?sourceId=${agentSourceId}`))[0];
    assert.ok(point);
    const base = ['--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken];

    const unknown = await ferry('restore', [...base, '--point', '999', '--target', path.join(work, 'x.img')]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /POINT_NOT_FOUND/);

    const small = path.join(work, 'small-target.img');
    const smallContent = randomBytes(MIB);
    await writeFile(small, smallContent);
    const tooSmall = await ferry('restore', [...base, '--point', String(point.id), '--target', small]);
    assert.equal(tooSmall.code, 2);
    assert.match(tooSmall.stderr, /TARGET_TOO_SMALL/);
    assert.match(tooSmall.stderr, /needs 4194304 bytes/);
    assert.deepEqual(await readFile(small), smallContent, 'the refused target is untouched');

    const two = await ferry('restore', [...base, '--point', String(point.id), '--target', `${small},${path.join(work, 'second.img')}`]);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /TARGET_COUNT_MISMATCH/);
    assert.match(two.stderr, /has 1 disk\(s\)/);
    assert.deepEqual(await readFile(small), smallContent);

    const good = path.join(work, 'good-target.img');
    await ferryOk('restore', [...base, '--point', String(point.id), '--target', good]);
    assert.deepEqual(await readFile(good), await readFile(image), 'an unpartitioned disk of unknown content restores byte-exact');
  });

  test('a chunk that vanished from the appliance is sent again by the next backup, which then commits', async () => {
    const image = path.join(work, 'small-source.img');
    const points = await admin.json<Point[]>(`/api/v1/points?sourceId=${agentSourceId}`);
    const last = points[points.length - 1]!;
    const chunksBefore = await chunkFiles(appliance.dataDir);
    const index = await admin.bytes(`/api/v1/points/${last.id}/disks/${last.disks[0]!.diskId}/index`);
    const victim = index.subarray(64 + 16, 64 + 48).toString('hex');
    const victimPath = (await openStores(appliance.dataDir, TEST_PASSPHRASE)).chunks.pathOf(victim);
    const victimFile = chunksBefore.find((f) => f === victimPath);
    assert.ok(victimFile, 'block 0 of the point names a stored chunk');
    await unlink(victimFile);
    const r = await ferry('agent', ['backup', '--disk', image, '--state', path.join(work, 'agent'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no longer on the appliance/);
    const result = JSON.parse(r.stdout) as { point: { id: number; name: string } };
    assert.equal(existsSync(victimFile), true, 'the vanished chunk is stored again');
    const target = path.join(work, 'after-repair.img');
    await ferryOk('restore', ['--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', String(result.point.id), '--target', target]);
    assert.deepEqual(await readFile(target), await readFile(image));
  });

  test('the appliance is still running and healthy after all of it', async () => {
    assert.equal(appliance.process.exitCode, null);
    const health = await admin.json<{ status: string }>('/api/v1/health');
    assert.equal(health.status, 'ok');
  });
});
