import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, FerryError, type AddPassiveSourceResponse, type JobActionResult, type JobPoint, type PassiveSourceView } from '@ferry/protocol';
import { sh } from '../lib/cli.js';
import { ensureAgentBinary } from '../lib/agent-binary.js';
import { restoreEquals, startTestAppliance, type TestAppliance } from '../lib/jobs.js';
import { linkedNamespace, type LinkedNamespace } from '../lib/netns.js';
import { keygenFingerprint, startSshd, type Sshd } from '../lib/sshd.js';

/*
 * Passive mode against a real sshd (Debian's openssh-server) running in a network namespace the test makes.
 * The source has no route to the appliance: the agent's traffic comes back through the SSH connection. The
 * "source" shares this machine's filesystem, so its disk is an image file here, and the agent lands in
 * root's ~/.ferry-agent (removed afterwards unless it was there before).
 */

const MIB = 1024 * 1024;
const REMOTE_DIR = path.join(os.homedir(), '.ferry-agent');

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

describe('passive sources over SSH', { timeout: 15 * 60_000 }, () => {
  let work: string;
  let ns: LinkedNamespace;
  let sshd: Sshd | null = null;
  let t: TestAppliance;
  let hadRemoteDir = false;
  let clientKey: string;

  before(async () => {
    await ensureAgentBinary();
    hadRemoteDir = await exists(REMOTE_DIR);
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-passive-'));
    ns = await linkedNamespace('pas', 1);
    for (const name of ['host_a', 'host_b', 'client']) await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(work, name)]);
    await writeFile(path.join(work, 'authorized_keys'), await readFile(path.join(work, 'client.pub')));
    await chmod(path.join(work, 'host_a'), 0o600);
    await chmod(path.join(work, 'host_b'), 0o600);
    clientKey = await readFile(path.join(work, 'client'), 'utf8');
    sshd = await startSshd(ns, work, path.join(work, 'host_a'));
    t = await startTestAppliance({ passive: { retryMs: 1000, ssh: { keepaliveIntervalMs: 1000, keepaliveCountMax: 3 } } });
  });

  after(async () => {
    await t?.close();
    await sshd?.stop();
    await ns?.close();
    if (!hadRemoteDir) await rm(REMOTE_DIR, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  const passive = (id: number): Promise<PassiveSourceView> => t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${id}/passive`);
  const waitPassive = async (id: number, what: string, pred: (s: PassiveSourceView) => boolean, timeoutMs = 120_000): Promise<PassiveSourceView> => {
    const deadline = Date.now() + timeoutMs;
    let last: PassiveSourceView | undefined;
    while (Date.now() < deadline) {
      last = await passive(id);
      if (pred(last)) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for passive source ${id}: ${what}; last seen ${JSON.stringify(last)}`);
  };

  let sourceId = 0;
  const image = (): string => path.join(work, 'source.img');

  test('a host key other than the one presented is refused and nothing is deployed', async () => {
    // A source disk: random data after an empty first MiB (no partition table: read whole, zeros dropped).
    const data = randomBytes(24 * MIB);
    data.fill(0, 0, MIB);
    await writeFile(image(), data);
    const added = await t.admin.json<AddPassiveSourceResponse>(`${API_PREFIX}/sources/passive`, {
      method: 'POST',
      body: { name: 'db-01', host: ns.nsAddress, port: 22, username: 'root', privateKey: clientKey, disks: [image()] },
    });
    sourceId = added.source.sourceId;
    assert.equal(added.hostKey.sha256, await keygenFingerprint(path.join(work, 'host_a.pub')), 'the key shown is the one ssh-keygen shows on the source');
    assert.equal(added.hostKey.algorithm, 'ssh-ed25519');
    assert.equal(added.source.state, 'host-key-unconfirmed');
    assert.equal(JSON.stringify(added).includes('PRIVATE KEY'), false, 'the private key is never sent back');
    // Nor is it kept in clear: not in the catalog, its WAL, the logs or anywhere else under the data directory.
    const keyBody = clientKey.split('\n').filter((l) => l && !l.startsWith('-----'));
    assert.ok(keyBody.length >= 3);
    for (const entry of await readdir(t.dataDir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const bytes = await readFile(path.join(entry.parentPath, entry.name));
      for (const line of keyBody) assert.equal(bytes.includes(line), false, `a line of the SSH private key is in ${entry.name}`);
    }

    // The same server, port and user again: refused before anything is probed or stored.
    const sourcesBefore = (await t.admin.json<unknown[]>(`${API_PREFIX}/sources`)).length;
    await assert.rejects(
      t.admin.json(`${API_PREFIX}/sources/passive`, { method: 'POST', body: { name: 'db-01 again', host: ns.nsAddress, port: 22, username: 'root', privateKey: clientKey } }),
      (err: unknown) => err instanceof FerryError && err.code === 'PASSIVE_SOURCE_EXISTS' && err.message.includes(`source ${sourceId} (db-01)`),
    );
    assert.equal((await t.admin.json<unknown[]>(`${API_PREFIX}/sources`)).length, sourcesBefore);
    // Two adds of one new server and user at once (both pass the first check while they probe): one is recorded.
    const twins = await Promise.allSettled(
      [1, 2].map((i) => t.admin.json(`${API_PREFIX}/sources/passive`, { method: 'POST', body: { name: `twin ${i}`, host: ns.nsAddress, port: 22, username: 'twin', password: 'not used' } })),
    );
    assert.equal(twins.filter((r) => r.status === 'fulfilled').length, 1, 'one of the two is recorded');
    const refused = twins.find((r) => r.status === 'rejected');
    assert.ok(refused && refused.reason instanceof FerryError && refused.reason.code === 'PASSIVE_SOURCE_EXISTS', String(refused?.reason));
    assert.equal((await t.admin.json<unknown[]>(`${API_PREFIX}/sources`)).length, sourcesBefore + 1);

    const wrong = await keygenFingerprint(path.join(work, 'host_b.pub'));
    await assert.rejects(
      t.admin.json(`${API_PREFIX}/sources/${sourceId}/host-key`, { method: 'POST', body: { sha256: wrong } }),
      (err: unknown) => err instanceof FerryError && err.code === 'SSH_HOST_KEY_MISMATCH' && err.message.includes(added.hostKey.sha256),
    );
    assert.equal((await passive(sourceId)).state, 'host-key-unconfirmed');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await exists(path.join(REMOTE_DIR, 'passive.pid')), false, 'no agent was started on the source');
  });

  test('confirmed: the agent is deployed over SSH, a job runs full and incremental cycles, and the points restore equal', async () => {
    const confirmed = await t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${sourceId}/host-key`, {
      method: 'POST',
      body: { sha256: await keygenFingerprint(path.join(work, 'host_a.pub')) },
    });
    assert.equal(confirmed.hostKey?.sha256, await keygenFingerprint(path.join(work, 'host_a.pub')));
    const running = await waitPassive(sourceId, 'agent running', (s) => s.state === 'running');
    assert.match(running.agentVersion ?? '', /\d+\.\d+\.\d+/);
    const deadline = Date.now() + 60_000;
    while (!t.server.appliance.agents.online(sourceId)) {
      assert.ok(Date.now() < deadline, 'the passive agent connects through the SSH tunnel');
      await new Promise((r) => setTimeout(r, 200));
    }

    const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, { method: 'POST', body: { sourceId, intervalSeconds: 3600, maxPoints: 3 } });
    await t.advance(0);
    await t.waitFor('the full cycle', job.id, (j) => j.state === 'Waiting', 180_000);
    const fh = await open(image(), 'r+');
    try {
      await fh.write(randomBytes(3 * MIB), 0, 3 * MIB, 5 * MIB);
    } finally {
      await fh.close();
    }
    await t.admin.json(`${API_PREFIX}/jobs/${job.id}/sync-now`, { method: 'POST' });
    await t.advance(0);
    await t.waitFor('the incremental cycle', job.id, (j) => j.state === 'Waiting' && j.pointCount === 2, 180_000);
    const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
    assert.deepEqual(
      points.map((p) => p.name),
      ['CYCLE_1', 'CYCLE_2'],
    );
    assert.ok(points[1]!.bytesChanged <= 4 * MIB, `the incremental sent only the changed blocks (changed ${points[1]!.bytesChanged} bytes)`);
    await restoreEquals(t, points[1]!.id, image(), work);
  });

  test('a changed host key stops the appliance from logging in until the engineer confirms it', async () => {
    await sshd!.stop();
    sshd = await startSshd(ns, work, path.join(work, 'host_b'));
    const changed = await waitPassive(sourceId, 'host key change seen', (s) => s.state === 'host-key-changed');
    assert.equal(changed.presentedHostKey?.sha256, await keygenFingerprint(path.join(work, 'host_b.pub')));
    assert.equal(changed.hostKey?.sha256, await keygenFingerprint(path.join(work, 'host_a.pub')), 'the trusted key is still the old one');
    assert.match(changed.message ?? '', /not the trusted/);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await passive(sourceId)).state, 'host-key-changed', 'no retry logs in to a host with an untrusted key');
    assert.equal(t.server.appliance.agents.online(sourceId), false);

    await t.admin.json(`${API_PREFIX}/sources/${sourceId}/host-key`, { method: 'POST', body: { sha256: changed.presentedHostKey.sha256 } });
    await waitPassive(sourceId, 'agent running again', (s) => s.state === 'running');
  });

  test('a refused login says what to do and is not retried; new credentials bring the source back', async () => {
    // The key the source accepts is replaced by one it does not know (as if the password changed on the source).
    const wrongKey = await readFile(path.join(work, 'host_b'), 'utf8');
    await t.admin.json(`${API_PREFIX}/sources/${sourceId}/passive/credentials`, { method: 'PUT', body: { privateKey: wrongKey } });
    const refused = await waitPassive(sourceId, 'login refused', (s) => s.state === 'failed');
    assert.equal(refused.code, 'SSH_AUTH_FAILED');
    assert.match(refused.message ?? '', /refused the login \(private key\)\. Check the user name and password or key.*Not tried again until new credentials are given/);
    assert.equal(JSON.stringify(refused).includes('PRIVATE KEY'), false, 'the key is never sent back');
    // retryMs is 1 s here: three periods later nothing has been tried again.
    await new Promise((r) => setTimeout(r, 3500));
    const still = await passive(sourceId);
    assert.deepEqual([still.state, still.updatedAt], ['failed', refused.updatedAt], 'no second login attempt with the refused key');
    // Nor after the appliance restarts its passive drivers (as at power-on).
    const passiveService = t.server.appliance.passive;
    await passiveService.close();
    passiveService.start({ host: '127.0.0.1', port: t.server.port, fingerprint: t.server.fingerprint });
    await new Promise((r) => setTimeout(r, 3500));
    const afterStart = await passive(sourceId);
    assert.deepEqual([afterStart.state, afterStart.updatedAt], ['failed', refused.updatedAt], 'a restart does not try the refused key again');

    await assert.rejects(
      t.admin.json(`${API_PREFIX}/sources/${sourceId}/passive/credentials`, { method: 'PUT', body: { password: 'x', privateKey: clientKey } }),
      (err: unknown) => err instanceof FerryError && err.code === 'BAD_REQUEST' && /exactly one/.test(err.message),
    );
    const back = await t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${sourceId}/passive/credentials`, { method: 'PUT', body: { username: 'root', privateKey: clientKey } });
    assert.equal(back.code, null);
    const running = await waitPassive(sourceId, 'agent running with the new key', (s) => s.state === 'running');
    assert.equal(running.code, null);
  });
});
