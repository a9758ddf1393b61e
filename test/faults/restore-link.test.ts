import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, type RestoreView } from '@ferry/protocol';
import { ferryOk, ROOT } from '../lib/cli.js';
import { enrollAndBackUp, startTestAppliance, type TestAppliance } from '../lib/jobs.js';
import { linkedNamespace, type LinkedNamespace } from '../lib/netns.js';

/*
 * A restore whose link to the appliance is cut: the restore program runs in a network namespace, as the restore
 * ISO on a target VM would, and the test takes the link down mid-restore for longer than the program's request
 * timeout (5 s here, FERRY_IO_TIMEOUT_SECONDS; 60 s by default). The program must keep retrying, continue from the
 * last block it wrote and verified once the link is back, and finish byte-equal without anyone typing anything.
 */

const MIB = 1024 * 1024;
const BLOCKS = 512;
const OUTAGE_MS = 20_000;

describe('a restore survives a cut link', { timeout: 10 * 60_000 }, () => {
  let work: string;
  let ns: LinkedNamespace;
  let t: TestAppliance;
  let image: string;
  let pointId: number;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-restore-link-'));
    ns = await linkedNamespace('rsl', 3);
    t = await startTestAppliance({ listen: `${ns.hostAddress}:0` });
    image = path.join(work, 'srv.img');
    const data = randomBytes(BLOCKS * MIB);
    data.fill(0, 200 * MIB, 210 * MIB);
    await writeFile(image, data);
    pointId = await enrollAndBackUp(t, path.join(work, 'agent'), 'srv', image);
  });
  after(async () => {
    await t?.close();
    await ns?.close();
    await rm(work, { recursive: true, force: true });
  });

  test(`the link goes down for ${OUTAGE_MS / 1000} s mid-restore: the restore retries, continues from the last verified block and is byte-equal`, async () => {
    const code = (await ferryOk('appliance', ['restore-code', '--data', t.dataDir, '--point', String(pointId)])).stdout.trim();
    const restoreId = (await t.admin.json<RestoreView[]>(`${API_PREFIX}/restores`)).at(-1)!.id;
    const target = path.join(work, 'target.img');
    const argv = [process.execPath, path.join(ROOT, 'restore-pe/bin/ferry-restore.js'), 'code', '--appliance', t.server.url, '--fingerprint', t.server.fingerprint, '--code', code, '--target', target];
    const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { env: { ...process.env, FERRY_IO_TIMEOUT_SECONDS: '5' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    try {
      let before = 0;
      for (const deadline = Date.now() + 120_000; before < 48; ) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `the restore got going before the cut\n${out}`);
        before = (await t.admin.json<RestoreView>(`${API_PREFIX}/restores/${restoreId}`)).verified[0]?.nextBlock ?? 0;
        await new Promise((r) => setTimeout(r, 10));
      }
      await ns.down();
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      assert.equal(child.exitCode, null, `the restore is still waiting for the link, not failed\n${out}`);
      await ns.up();
      assert.equal(await exited, 0, `the restore finished after the link came back\n${out}`);

      const retries = [...out.matchAll(/the link to the appliance failed .*? \(disk 1 at block (\d+)\)/g)].map((m) => Number(m[1]));
      assert.ok(retries.length > 0, `the restore said it was retrying\n${out}`);
      assert.ok(retries[0]! >= before && retries[0]! < BLOCKS, `it continued from block ${retries[0]}, at least the ${before} blocks verified before the cut`);
      assert.ok((await readFile(target)).equals(await readFile(image)), 'the restored image is byte-equal to the source');
      const done = await t.admin.json<RestoreView>(`${API_PREFIX}/restores/${restoreId}`);
      assert.equal(done.state, 'finished');
      assert.equal(done.verified[0]!.nextBlock, BLOCKS, 'the appliance knows every block was verified');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
