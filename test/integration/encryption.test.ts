import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { AGENT_NAMESPACE, API_PREFIX, ApplianceClient, BlockIndex, BlockKind, initHashing, SOCKET_PATH, UI_NAMESPACE, type AuditEntry, type JobView, type Point } from '@ferry/protocol';
import { openStores, ROUTES } from '@ferry/appliance/testing';
import { enrollAgent, ferry, ferryOk, sh, startAppliance, TEST_PASSPHRASE, testPassphraseFile, type RunningAppliance } from '../lib/cli.js';
import { type BackupJson } from '../lib/fixture-data.js';
import { createPartitionedImage, treeChecksums, withMounted } from '../lib/disk-image.js';
import { flipBits } from '../lib/damage.js';

/*
 * Encryption at rest on real things: an ext4 source image, a real appliance process encrypted with a passphrase,
 * the agent and restore CLIs. What a thief holding only the appliance's disks can see, what a flipped byte on
 * them does, and what a locked appliance answers.
 */

const MARKER = 'FERRY-AT-REST-MARKER-5d0c7e21|';
const MIB = 1024 * 1024;

/** Every occurrence of `needle` in every file under `dir` (catalog, WAL, logs, keyring, chunks, indexes). */
async function occurrences(dir: string, needle: Buffer): Promise<{ count: number; files: string[] }> {
  let count = 0;
  const files: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const bytes = await readFile(file);
    for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
      count++;
      if (!files.includes(file)) files.push(file);
    }
  }
  return { count, files };
}

/** Points the enrolled agent at the appliance's new address (the test restarts it on another ephemeral port). */
async function repoint(stateDir: string, url: string): Promise<void> {
  const file = path.join(stateDir, 'agent.json');
  const state = JSON.parse(await readFile(file, 'utf8')) as { appliance: string };
  await writeFile(file, JSON.stringify({ ...state, appliance: url }), { mode: 0o600 });
}

async function allFileNames(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map((p) => path.basename(p));
}

/** The status and reply of a request to the appliance without credentials. */
async function call(url: string, fingerprint: string, route: string, opts: { method?: string; body?: unknown; auth?: string } = {}): Promise<{ status: number; body: string }> {
  const client = new ApplianceClient(url, fingerprint, opts.auth);
  try {
    const res = await client.raw(route, { method: opts.method ?? 'GET', ...(opts.body === undefined ? {} : { body: opts.body }) });
    let body = '';
    for await (const part of res) body += (part as Buffer).toString();
    return { status: res.statusCode ?? 0, body };
  } finally {
    client.close();
  }
}

/** The error a socket.io connection to `nsp` ends with (or 'connected'). */
async function socketOutcome(a: RunningAppliance, nsp: string): Promise<{ message: string; code?: string }> {
  const client = new ApplianceClient(a.url, a.fingerprint);
  const socket = io(new URL(nsp, a.url).toString(), {
    path: SOCKET_PATH,
    transports: ['websocket'],
    agent: client.httpsAgent as unknown as string,
    auth: { token: a.adminToken || 'ferry_admin_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    reconnection: false,
  });
  try {
    return await new Promise((resolve) => {
      socket.once('connect', () => resolve({ message: 'connected' }));
      socket.once('connect_error', (err: Error & { data?: { code?: string } }) => resolve({ message: err.message, ...(err.data?.code ? { code: err.data.code } : {}) }));
    });
  } finally {
    socket.disconnect();
    client.close();
  }
}

describe('encryption at rest', { timeout: 20 * 60_000 }, () => {
  let work: string;
  let dataDir: string;
  let appliance: RunningAppliance;
  let image: string;
  let admin: ApplianceClient;
  let pointA: BackupJson;
  let pointB: BackupJson;
  let filesB: Map<string, string>;

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-enc-'));
    dataDir = path.join(work, 'appliance');
    appliance = await startAppliance(dataDir);
    admin = new ApplianceClient(appliance.url, appliance.fingerprint, appliance.adminToken);
  });

  after(async () => {
    admin?.close();
    await appliance?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('a marker written to the source disk has 0 occurrences anywhere under the data directory after backup', async () => {
    image = path.join(work, 'source.img');
    await createPartitionedImage(image, 'gpt', 128, 96, 8);
    await withMounted(image, 1, async (dir) => {
      // Compressible on purpose: LZ4 keeps literals, so an unencrypted chunk would show the marker.
      await writeFile(path.join(dir, 'marker.txt'), MARKER.repeat(Math.ceil((3 * MIB) / MARKER.length)));
      await writeFile(path.join(dir, 'victim.bin'), randomBytes(4 * MIB));
      await writeFile(path.join(dir, 'other.bin'), randomBytes(2 * MIB));
    });
    const state = path.join(work, 'agent');
    await enrollAgent(appliance, state, 'encrypted-source');
    pointA = JSON.parse((await ferryOk('agent', ['backup', '--disk', image, '--state', state, '--json'])).stdout) as BackupJson;

    // Point B: victim.bin overwritten in place, so some of point A's chunks are not in point B.
    filesB = await withMounted(image, 1, async (dir) => {
      const fh = await open(path.join(dir, 'victim.bin'), 'r+');
      await fh.write(randomBytes(4 * MIB), 0, 4 * MIB, 0);
      await fh.close();
      return treeChecksums(dir);
    });
    pointB = JSON.parse((await ferryOk('agent', ['backup', '--disk', image, '--state', state, '--json'])).stdout) as BackupJson;

    const found = await occurrences(dataDir, Buffer.from(MARKER));
    assert.equal(found.count, 0, `marker found in ${found.files.join(', ')}`);
    // Nor its prefix: a shorter run of it that LZ4 could have kept.
    assert.equal((await occurrences(dataDir, Buffer.from(MARKER.slice(0, 12)))).count, 0);

    // Keyed ids: no chunk id the points name is a file name, and no id's bytes appear in any file.
    const point = await admin.json<Point>(`${API_PREFIX}/points/${pointA.point.id}`);
    const index = BlockIndex.parse(await admin.bytes(`${API_PREFIX}/points/${pointA.point.id}/disks/${point.disks[0]!.diskId}/index`));
    const ids = new Set<string>();
    for (let n = 0; n < index.header.blockCount; n++) if (index.kind(n) === BlockKind.Data) ids.add(index.chunkIdHex(n));
    assert.ok(ids.size > 10);
    const names = new Set(await allFileNames(path.join(dataDir, 'chunks')));
    assert.equal([...ids].filter((id) => names.has(id)).length, 0, 'chunk files are not named by their plaintext hash');
    const someId = [...ids][0]!;
    assert.equal((await occurrences(dataDir, Buffer.from(someId, 'hex'))).count, 0, 'a chunk id does not appear in any stored file');
    // The stores still hold everything: the test passphrase opens them.
    const { chunks, encrypted } = await openStores(dataDir, TEST_PASSPHRASE);
    assert.equal(encrypted, true);
    assert.equal(await chunks.has(someId), true);
  });

  test('one flipped byte in a stored chunk: verify reports that point alone, its restore fails naming the block, the other point restores equal', async () => {
    assert.ok(pointA && pointB, 'needs the backups above');
    const disksOf = async (id: number): Promise<{ index: BlockIndex; diskId: number }> => {
      const p = await admin.json<Point>(`${API_PREFIX}/points/${id}`);
      const diskId = p.disks[0]!.diskId;
      return { diskId, index: BlockIndex.parse(await admin.bytes(`${API_PREFIX}/points/${id}/disks/${diskId}/index`)) };
    };
    const a = await disksOf(pointA.point.id);
    const b = await disksOf(pointB.point.id);
    const inB = new Set<string>();
    for (let n = 0; n < b.index.header.blockCount; n++) if (b.index.kind(n) === BlockKind.Data) inB.add(b.index.chunkIdHex(n));
    let victim: { id: string; block: number } | undefined;
    for (let n = 0; n < a.index.header.blockCount && !victim; n++) {
      if (a.index.kind(n) === BlockKind.Data && !inB.has(a.index.chunkIdHex(n))) victim = { id: a.index.chunkIdHex(n), block: n };
    }
    assert.ok(victim, 'point A has a chunk point B does not use');
    const { chunks } = await openStores(dataDir, TEST_PASSPHRASE);
    const file = chunks.pathOf(victim.id);
    await flipBits(file, 100, 0x01);

    const v = await ferry('appliance', ['verify', '--data', dataDir, '--json']);
    assert.equal(v.code, 1, v.stderr);
    const report = JSON.parse(v.stdout) as { ok: boolean; points: { id: number; ok: boolean; problems: string[] }[]; damagedChunks: { id: string; points: string[] }[] };
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.points.filter((p) => !p.ok).map((p) => p.id),
      [pointA.point.id],
      'only the point that uses the damaged chunk is damaged',
    );
    assert.deepEqual(report.damagedChunks.map((c) => c.id), [victim.id]);
    assert.match(report.points.find((p) => p.id === pointA.point.id)!.problems.join('\n'), /does not authenticate/);

    const restoreTo = async (pointId: number): Promise<{ code: number | null; stderr: string; target: string }> => {
      const target = path.join(work, `restore-${pointId}.img`);
      await sh('truncate', ['-s', '128M', target]);
      const r = await ferry('restore', ['--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', String(pointId), '--target', target]);
      return { code: r.code, stderr: r.stderr + r.stdout, target };
    };
    const bad = await restoreTo(pointA.point.id);
    assert.notEqual(bad.code, 0, 'the restore of the damaged point fails');
    assert.match(bad.stderr, /CHUNK_DAMAGED/);
    assert.match(bad.stderr, new RegExp(`block ${victim.block}\\b`), `the failure names block ${victim.block}: ${bad.stderr}`);
    await rm(bad.target);

    const good = await restoreTo(pointB.point.id);
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(await withMounted(good.target, 1, (dir) => treeChecksums(dir), true), filesB, 'point B restores equal to the source');
    await rm(good.target);
  });

  test('after a restart the appliance is locked and answers only health, unlock, initialise and the unlock page', async () => {
    await appliance.stop();
    const token = appliance.adminToken;
    appliance = { ...(await startAppliance(dataDir, { unlock: false })), adminToken: token };
    const { url, fingerprint } = appliance;

    const health = await call(url, fingerprint, `${API_PREFIX}/health`);
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body) as { data: { status: string } }).data.status, 'locked');
    const page = await call(url, fingerprint, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /locked/);
    assert.match(page.body, /<form/);

    // Every route of the API (ids filled in) but health, unlock and initialise, and the files around it.
    const apiRoutes = ROUTES.filter((r) => !['/health', '/unlock', '/initialize'].includes(r.path)).map(
      (r) => [r.method.toUpperCase(), `${API_PREFIX}${r.path.replace(/\{\w+\}/g, String(pointB.point.id))}`] as const,
    );
    assert.ok(apiRoutes.length > 60);
    for (const [method, route] of [
      ...apiRoutes,
      ['GET', `${API_PREFIX}/points/${pointB.point.id}/disks/1/index`] as const,
      ['GET', '/downloads/ferry-agent'] as const,
      ['GET', '/assets/index.js'] as const,
    ]) {
      const r = await call(url, fingerprint, route, { method, auth: token, ...(method === 'POST' ? { body: {} } : {}) });
      assert.equal(r.status, 503, `${method} ${route}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'APPLIANCE_LOCKED', `${method} ${route}`);
    }
    for (const nsp of [AGENT_NAMESPACE, UI_NAMESPACE, '/']) {
      const outcome = await socketOutcome(appliance, nsp);
      assert.equal(outcome.code, 'APPLIANCE_LOCKED', `socket.io ${nsp}: ${outcome.message}`);
    }
    const init = await call(url, fingerprint, `${API_PREFIX}/initialize`, { method: 'POST', body: { passphrase: 'another long passphrase' } });
    assert.equal(init.status, 409);
    assert.equal((JSON.parse(init.body) as { code: string }).code, 'APPLIANCE_INITIALISED');
  });

  test('a wrong passphrase is refused, repeated tries are slowed down, and the right one brings back every point', async () => {
    const { url, fingerprint } = appliance;
    for (let i = 0; i < 5; i++) {
      const r = await call(url, fingerprint, `${API_PREFIX}/unlock`, { method: 'POST', body: { passphrase: `wrong passphrase number ${i}` } });
      assert.equal(r.status, 401);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'PASSPHRASE_WRONG');
    }
    const throttled = await call(url, fingerprint, `${API_PREFIX}/unlock`, { method: 'POST', body: { passphrase: TEST_PASSPHRASE } });
    assert.equal(throttled.status, 429);
    assert.equal((JSON.parse(throttled.body) as { code: string }).code, 'UNLOCK_THROTTLED');
    assert.equal((await call(url, fingerprint, `${API_PREFIX}/sources`, { auth: appliance.adminToken })).status, 503, 'still locked');
    // The CLI, as an engineer runs it after power-on (the wait after five wrong tries is 1 s).
    await new Promise((r) => setTimeout(r, 1100));
    const wrongFile = path.join(work, 'wrong-passphrase');
    await writeFile(wrongFile, 'not the passphrase at all\n');
    const wrong = await ferry('appliance', ['unlock', '--url', url, '--fingerprint', fingerprint, '--passphrase-file', wrongFile]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /PASSPHRASE_WRONG/);
    await new Promise((r) => setTimeout(r, 2100));
    await ferryOk('appliance', ['unlock', '--url', url, '--fingerprint', fingerprint, '--passphrase-file', testPassphraseFile()]);
    const health = await call(url, fingerprint, `${API_PREFIX}/health`);
    assert.equal((JSON.parse(health.body) as { data: { status: string } }).data.status, 'ok');

    admin.close();
    admin = new ApplianceClient(url, fingerprint, appliance.adminToken);
    // Every try made while locked is in the audit log now, in order, with its own time, address and outcome.
    const tries = (await admin.json<AuditEntry[]>(`${API_PREFIX}/audit?limit=1000`))
      .filter((e) => e.action === `POST ${API_PREFIX}/unlock` || e.action === `POST ${API_PREFIX}/initialize`)
      .slice(0, 9)
      .reverse();
    assert.deepEqual(
      tries.map((e) => [e.action.replace(`POST ${API_PREFIX}/`, ''), e.actor, e.outcome, e.status, e.code]),
      [
        ['initialize', 'anonymous', 'refused', 409, 'APPLIANCE_INITIALISED'],
        ...Array.from({ length: 5 }, () => ['unlock', 'anonymous', 'refused', 401, 'PASSPHRASE_WRONG']),
        ['unlock', 'anonymous', 'refused', 429, 'UNLOCK_THROTTLED'],
        ['unlock', 'anonymous', 'refused', 401, 'PASSPHRASE_WRONG'],
        ['unlock', 'anonymous', 'ok', 200, null],
      ],
    );
    for (const e of tries) assert.match(e.address, /127\.0\.0\.1$/, 'the address the try came from');
    assert.deepEqual(
      tries.map((e) => e.at),
      tries.map((e) => e.at).sort(),
      'each try keeps the time it was made',
    );
    assert.ok(tries[0]!.at < tries[8]!.at, 'the times are the tries\' own, not the time they were written');
    const points = await admin.json<Point[]>(`${API_PREFIX}/points`);
    assert.deepEqual(
      points.map((p) => p.id).sort((x, y) => x - y),
      [pointA.point.id, pointB.point.id],
    );
    const target = path.join(work, 'restore-after-unlock.img');
    await sh('truncate', ['-s', '128M', target]);
    await ferryOk('restore', ['--appliance', url, '--fingerprint', fingerprint, '--token', appliance.adminToken, '--point', String(pointB.point.id), '--target', target]);
    assert.deepEqual(await withMounted(target, 1, (dir) => treeChecksums(dir), true), filesB);
    await rm(target);
  });

  test('prepare for transport writes a signed manifest and refuses cycles; the arrival check names a damaged point, and passes once it is whole', async () => {
    const { url, fingerprint, adminToken: token } = appliance;
    const cli = (args: string[]) => ferry('appliance', ['transport', ...args, '--url', url, '--fingerprint', fingerprint, '--token', token, '--json']);
    // Point A is damaged by the test above: delete it, so the preparation starts from intact points.
    await admin.json(`${API_PREFIX}/points/${pointA.point.id}`, { method: 'DELETE' });

    // A live job for point B's source: prepare pauses it, and nothing can set it going before the arrival check.
    const source = (await admin.json<Point>(`${API_PREFIX}/points/${pointB.point.id}`)).sourceId;
    const { job } = await admin.json<{ job: JobView }>(`${API_PREFIX}/jobs`, { method: 'POST', body: { sourceId: source, intervalSeconds: 3600, maxPoints: 5 } });
    const refusedActions = async (): Promise<void> => {
      for (const action of ['resume', 'sync-now', 'retry']) {
        await assert.rejects(admin.json(`${API_PREFIX}/jobs/${job.id}/${action}`, { method: 'POST', body: {} }), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'TRANSPORT_UNCHECKED', `${action}: ${e.message}`);
          assert.match(e.message, /run the arrival check/);
          return true;
        });
      }
      assert.equal((await admin.json<JobView>(`${API_PREFIX}/jobs/${job.id}`)).state, 'Paused');
    };

    const prepared = await cli(['prepare']);
    assert.equal(prepared.code, 0, prepared.stderr + prepared.stdout);
    const ready = JSON.parse(prepared.stdout) as { phase: string; powerOffSafe: boolean; jobsAllowed: boolean; rootHash: string };
    assert.equal(ready.phase, 'ready');
    assert.equal(ready.powerOffSafe, true);
    assert.equal(ready.jobsAllowed, false);
    const manifest = JSON.parse(await readFile(path.join(dataDir, 'transport', 'manifest.json'), 'utf8')) as { rootHash: string; points: { id: number }[]; signature: { value: string } };
    assert.equal(manifest.rootHash, ready.rootHash);
    assert.match(manifest.rootHash, /^[0-9a-f]{64}$/);
    assert.match(manifest.signature.value, /^[0-9a-f]{64}$/);
    assert.deepEqual(manifest.points.map((p) => p.id), [pointB.point.id]);
    const report = await readFile(path.join(dataDir, 'transport', 'report.txt'), 'utf8');
    assert.match(report, /ok +CYCLE_2/);
    assert.match(report, /everything verified/);

    await refusedActions();
    const state = path.join(work, 'agent');
    await repoint(state, url);
    const refusedBackup = await ferry('agent', ['backup', '--disk', image, '--state', state, '--json']);
    assert.notEqual(refusedBackup.code, 0);
    assert.match(refusedBackup.stderr, /TRANSPORT_UNCHECKED/);

    // Power-off, transport, power-on: still waiting for the arrival check.
    await appliance.stop();
    appliance = { ...(await startAppliance(dataDir, { unlock: false })), adminToken: token };
    await ferryOk('appliance', ['unlock', '--url', appliance.url, '--fingerprint', appliance.fingerprint, '--passphrase-file', testPassphraseFile()]);
    await repoint(state, appliance.url);
    const cli2 = (args: string[]) => ferry('appliance', ['transport', ...args, '--url', appliance.url, '--fingerprint', appliance.fingerprint, '--token', token, '--json']);
    const status = JSON.parse((await cli2(['status'])).stdout) as { phase: string; jobsAllowed: boolean };
    assert.deepEqual([status.phase, status.jobsAllowed], ['ready', false]);
    admin.close();
    admin = new ApplianceClient(appliance.url, appliance.fingerprint, token);
    await refusedActions();

    // Someone with the disks edits the saved state to skip the check, or deletes it: jobs stay refused.
    const stateFile = path.join(dataDir, 'transport', 'state.json');
    for (const tamper of [
      async () => writeFile(stateFile, (await readFile(stateFile, 'utf8')).replace('"jobsAllowed": false', '"jobsAllowed": true').replace('"phase": "ready"', '"phase": "arrived"')),
      async () => rm(stateFile),
    ]) {
      await appliance.stop();
      await tamper();
      appliance = { ...(await startAppliance(dataDir)), adminToken: token };
      const now = JSON.parse((await cli2(['status'])).stdout) as { phase: string; jobsAllowed: boolean; message: string };
      assert.deepEqual([now.phase, now.jobsAllowed], ['failed', false], now.message);
      assert.match(now.message, /(changed outside the appliance|is missing)[\s\S]*run the arrival check/);
      admin.close();
      admin = new ApplianceClient(appliance.url, appliance.fingerprint, token);
      await refusedActions();
    }
    await repoint(state, appliance.url);

    // A byte changed in transit in a chunk of point B.
    const { chunks } = await openStores(dataDir, TEST_PASSPHRASE);
    admin.close();
    admin = new ApplianceClient(appliance.url, appliance.fingerprint, token);
    const p = await admin.json<Point>(`${API_PREFIX}/points/${pointB.point.id}`);
    const index = BlockIndex.parse(await admin.bytes(`${API_PREFIX}/points/${pointB.point.id}/disks/${p.disks[0]!.diskId}/index`));
    let n = 0;
    while (index.kind(n) !== BlockKind.Data) n++;
    const file = chunks.pathOf(index.chunkIdHex(n));
    const flip = (): Promise<void> => flipBits(file, 60, 0x80);
    await flip();
    const failed = await cli2(['arrival']);
    assert.equal(failed.code, 1, failed.stderr);
    const bad = JSON.parse(failed.stdout) as { phase: string; jobsAllowed: boolean; damagedPoints: { id: number }[] };
    assert.equal(bad.phase, 'failed');
    assert.equal(bad.jobsAllowed, false);
    assert.deepEqual(bad.damagedPoints.map((x) => x.id), [pointB.point.id]);
    assert.match(await readFile(path.join(dataDir, 'transport', 'arrival-report.txt'), 'utf8'), /DAMAGED CYCLE_2/);
    assert.match((await ferry('agent', ['backup', '--disk', image, '--state', state, '--json'])).stderr, /TRANSPORT_UNCHECKED/);

    await flip(); // the byte put back: the chunk is whole again
    const passed = await cli2(['arrival']);
    assert.equal(passed.code, 0, passed.stderr + passed.stdout);
    const ok = JSON.parse(passed.stdout) as { phase: string; jobsAllowed: boolean; rootHash: string };
    assert.deepEqual([ok.phase, ok.jobsAllowed, ok.rootHash], ['arrived', true, ready.rootHash]);
    const resumed = await admin.json<{ job: JobView }>(`${API_PREFIX}/jobs/${job.id}/resume`, { method: 'POST', body: {} });
    assert.notEqual(resumed.job.state, 'Paused', 'after the arrival check the job resumes');
    const after = JSON.parse((await ferryOk('agent', ['backup', '--disk', image, '--state', state, '--json'])).stdout) as BackupJson;
    assert.equal(after.point.name, 'CYCLE_3');
  });
});
