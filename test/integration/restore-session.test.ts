import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, ApplianceClient, initHashing, type AuditEntry, type RestoreSession, type RestoreView } from '@ferry/protocol';
import { ROUTES } from '@ferry/appliance/testing';
import { ferry, ferryOk, ROOT } from '../lib/cli.js';
import { enrollAndBackUp, startTestAppliance, type TestAppliance } from '../lib/jobs.js';

/*
 * Restore sessions as the restore ISO uses them, run on this machine with image-file targets: a restore code
 * from `ferry-appliance restore-code`, `ferry-restore code`, live progress on the appliance, resume after the
 * restore program is killed, and the refusals that must leave the targets untouched.
 */

const MIB = 1024 * 1024;

describe('restore sessions with a restore code', { timeout: 10 * 60_000 }, () => {
  let work: string;
  let t: TestAppliance;
  let image: string;
  let pointId: number;

  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-restore-session-'));
    t = await startTestAppliance();
    image = path.join(work, 'srv.img');
    const data = randomBytes(384 * MIB);
    data.fill(0, 0, MIB);
    data.fill(0, 100 * MIB, 110 * MIB); // zero blocks are restored as zeroes, not sent
    await writeFile(image, data);
    pointId = await enrollAndBackUp(t, path.join(work, 'agent'), 'srv', image);
  });
  after(async () => {
    await t.close();
    await rm(work, { recursive: true, force: true });
  });

  const restoreCode = async (extra: string[] = []): Promise<string> =>
    (await ferryOk('appliance', ['restore-code', '--data', t.dataDir, '--point', String(pointId), ...extra])).stdout.trim();
  const codeArgs = (code: string, target: string, fingerprint = t.server.fingerprint): string[] => [
    'code',
    '--appliance',
    t.server.url,
    '--fingerprint',
    fingerprint,
    '--code',
    code,
    '--target',
    target,
  ];
  const restoreView = async (id: number): Promise<RestoreView> => t.admin.json<RestoreView>(`${API_PREFIX}/restores/${id}`);

  test('a restore killed mid-way resumes from the last verified block, and the result is byte-equal', async () => {
    const code = await restoreCode();
    assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
    const target = path.join(work, 'target.img');
    const restoreId = (await t.admin.json<RestoreView[]>(`${API_PREFIX}/restores`)).at(-1)!.id;
    const child = spawn(process.execPath, [path.join(ROOT, 'restore-pe/bin/ferry-restore.js'), ...codeArgs(code, target)], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    let verified = 0;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && child.exitCode === null; ) {
      verified = (await restoreView(restoreId)).verified[0]?.nextBlock ?? 0;
      if (verified >= 64) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await exited;
    const interrupted = await restoreView(restoreId);
    const at = interrupted.verified[0]!.nextBlock;
    assert.ok(at >= 64 && at < 384, `killed with ${at} of 384 blocks written and verified`);
    assert.equal(interrupted.phase, 'writing');
    assert.equal(interrupted.state, 'active');

    const r = await ferryOk('restore', codeArgs(code.toLowerCase().replaceAll('-', ' '), target));
    assert.match(r.stdout, new RegExp(`resumed at block ${at}\\)`));
    assert.ok((await readFile(target)).equals(await readFile(image)), 'the resumed restore is byte-equal to the source');
    const done = await restoreView(restoreId);
    assert.equal(done.state, 'finished');
    assert.equal(done.phase, 'done');
    assert.equal(done.verified[0]!.nextBlock, 384);
    assert.ok(done.progress!.bytesDone > 0);

    const again = await ferry('restore', codeArgs(code, path.join(work, 'again.img')));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /RESTORE_NOT_ACTIVE/);
  });

  test('a restore session reads only its own point and restore; every route not made for it and an expired code are refused', async () => {
    const otherImage = path.join(work, 'other.img');
    await writeFile(otherImage, randomBytes(8 * MIB));
    const otherPoint = await enrollAndBackUp(t, path.join(work, 'agent-other'), 'other', otherImage);
    const anonymous = new ApplianceClient(t.server.url, t.server.fingerprint);
    const other = await anonymous.json<RestoreSession>(`${API_PREFIX}/restore-sessions`, { method: 'POST', body: { code: await restoreCode() } });
    const session = await anonymous.json<RestoreSession>(`${API_PREFIX}/restore-sessions`, { method: 'POST', body: { code: await restoreCode() } });
    const client = new ApplianceClient(t.server.url, t.server.fingerprint, session.token);
    const status = async (method: string, route: string): Promise<[number, string | undefined]> => {
      const res = await client.raw(API_PREFIX + route, method === 'GET' ? {} : { method, body: {} });
      const body = Buffer.concat(await res.toArray()).toString('utf8');
      return [res.statusCode ?? 0, res.statusCode === 200 ? undefined : (JSON.parse(body) as { code: string }).code];
    };
    try {
      assert.deepEqual(await status('GET', `/points/${pointId}`), [200, undefined], 'its own point');
      assert.deepEqual(await status('GET', `/restores/${session.restoreId}`), [200, undefined], 'its own restore');
      for (const route of [`/points/${otherPoint}`, `/points/${otherPoint}/disks/1/index`, `/points/${otherPoint}/disks/1/blocks?from=0&to=1`, `/restores/${other.restoreId}`]) {
        assert.deepEqual(await status('GET', route), [403, 'FORBIDDEN'], route);
      }
      const notForRestores = ROUTES.filter((r) => !['admin-or-restore', 'any', 'none'].includes(r.credential));
      for (const r of notForRestores) {
        const route = r.path.replace(/\{\w+\}/g, String(pointId));
        assert.deepEqual(await status(r.method.toUpperCase(), route), [403, 'FORBIDDEN'], `${r.method.toUpperCase()} ${route} with a restore session`);
      }
      // The console command that made the codes is in the audit log, like a request.
      const audit = await t.admin.json<AuditEntry[]>(`${API_PREFIX}/audit?limit=100`);
      assert.ok(
        audit.some((e) => e.action === `CLI restore-code --point ${pointId}` && /^cli:/.test(e.actor) && e.address === 'console' && e.outcome === 'ok'),
        'ferry-appliance restore-code is audited',
      );
      // A code lives ttlHours on the appliance's clock; after that it opens nothing.
      const short = await t.admin.json<{ code: string }>(`${API_PREFIX}/restores/codes`, { method: 'POST', body: { pointId, ttlHours: 0.5 } });
      t.clock.advance(31 * 60_000);
      await assert.rejects(anonymous.json(`${API_PREFIX}/restore-sessions`, { method: 'POST', body: { code: short.code } }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'RESTORE_CODE_EXPIRED');
        assert.match(e.message, /expired at/);
        return true;
      });
    } finally {
      client.close();
      anonymous.close();
    }
  });

  test('a wrong code, a wrong fingerprint, the wrong number of targets and a smaller target are refused; nothing is written', async () => {
    const code = await restoreCode(['--target-disks', '1']);
    const target = path.join(work, 'untouched.img');
    const cases: [string[], RegExp][] = [
      [codeArgs('ABCD-EFGH-JKMN-PQRS', target), /the restore code ABCD-EFGH-JKMN-PQRS is not one this appliance issued[\s\S]*RESTORE_CODE_INVALID/],
      [codeArgs('hello', target), /"hello" is not a restore code[\s\S]*RESTORE_CODE_INVALID/],
      [codeArgs(code, target, 'SHA256:' + '00:'.repeat(31) + '00'), /presented SHA256:[0-9A-F:]+, but SHA256:00:00[\s\S]*FINGERPRINT_MISMATCH/],
      [codeArgs(code, `${target},${path.join(work, 'second.img')}`), /made for a target with 1 disk\(s\), but this machine has 2; nothing was written[\s\S]*TARGET_COUNT_MISMATCH/],
    ];
    for (const [args, message] of cases) {
      const r = await ferry('restore', args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      await assert.rejects(stat(target), 'no target file was created');
    }
    const small = path.join(work, 'small.img');
    const before = randomBytes(MIB);
    await writeFile(small, before);
    const r = await ferry('restore', codeArgs(code, small));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /holds 1048576 bytes but source disk .* needs 402653184 bytes[\s\S]*TARGET_TOO_SMALL/);
    assert.ok((await readFile(small)).equals(before), 'the smaller target is untouched');
    const view = (await t.admin.json<RestoreView[]>(`${API_PREFIX}/restores`)).at(-1)!;
    assert.equal(view.error?.code, 'TARGET_TOO_SMALL', 'the appliance shows why the restore stopped');
  });
});
