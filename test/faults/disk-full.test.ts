import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, type CycleState, type GcReport, type JobActionResult, type JobPoint, type JobView } from '@ferry/protocol';
import { enrollAgent, sh, type RunningAppliance } from '../lib/cli.js';
import { attach, detach } from '../lib/disk-image.js';
import { restoreEquals, startAgentDaemon, startTestAppliance, type AgentDaemon, type TestAppliance } from '../lib/jobs.js';
import { backup, catalogIntegrity, faultSeed, kill9, MIB, repoint, restoreEqual, Rng, startFaulty, verifyClean } from './lib.js';

/*
 * The appliance's data directory on a small ext4 file system (an image on a loop device, mounted by the test).
 * docs/reliability.md, "Disk full":
 * - `ferry-agent backup`: a backup larger than the free space stops with APPLIANCE_DISK_FULL, nothing committed is
 *   harmed, and after the data disk is grown (appliance stopped, image enlarged, e2fsck + resize2fs, started
 *   again) the same cycle resumes and completes;
 * - a job and the `ferry-agent run` daemon: the job goes InError naming the full data disk and what to do, nothing
 *   retries by itself; an old point is deleted through the API and garbage collection frees its chunks; Retry
 *   resumes the same cycle, which completes.
 */

const FS_MIB = 64;
const GROWN_MIB = 192;
const IMAGE_MIB = 96;
const FIRST_MIB = 16;
/** The job's source: every block incompressible and rewritten by every cycle, so each point owns all its chunks. */
const JOB_IMAGE_MIB = 22;
const HOUR = 3600_000;
/** The source of the SQLITE_FULL case: small, the catalog is what meets the full disk. */
const SQLITE_IMAGE_MIB = 8;

/** An ext4 file system of `mib` MiB on a loop device, mounted under `work`; `-m 0`: no blocks reserved for root. */
class SmallFs {
  dev: string | undefined;
  mounted = false;
  readonly image: string;
  readonly mnt: string;

  constructor(work: string, name: string) {
    this.image = path.join(work, `${name}-fs.img`);
    this.mnt = path.join(work, `${name}-mnt`);
  }

  async create(mib: number): Promise<this> {
    await mkdir(this.mnt);
    await sh('truncate', ['-s', `${mib}M`, this.image]);
    // No reserved blocks: the appliance runs as root here and would otherwise get 5 % more than an operator's would.
    await sh('mkfs.ext4', ['-q', '-F', '-m', '0', this.image]);
    this.dev = await attach(this.image);
    await this.mount();
    return this;
  }

  async mount(): Promise<void> {
    await sh('mount', [this.dev!, this.mnt]);
    this.mounted = true;
  }

  async unmount(): Promise<void> {
    if (!this.mounted) return;
    await sh('umount', [this.mnt]).catch(() => sh('umount', ['-l', this.mnt]));
    this.mounted = false;
  }

  /** KiB available to the appliance. */
  async freeKiB(): Promise<number> {
    return Number((await sh('df', ['-k', '--output=avail', this.mnt])).trim().split('\n').pop());
  }

  async dispose(): Promise<void> {
    await this.unmount();
    if (this.dev) await detach(this.dev);
    this.dev = undefined;
  }
}

describe('disk full: the appliance runs out of space mid-cycle', { timeout: 10 * 60_000 }, () => {
  const seed = faultSeed('disk-full');
  const rng = new Rng(seed);
  let work: string;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-diskfull-'));
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a backup larger than the free space stops with APPLIANCE_DISK_FULL, committed points stay intact, the cycle resumes after growing', async () => {
    const fs = new SmallFs(work, 'cli');
    let appliance: RunningAppliance | undefined;
    try {
      await fs.create(FS_MIB);
      const dataDir = path.join(fs.mnt, 'appliance');
      const state = path.join(work, 'agent');
      const image = path.join(work, 'source.img');
      // Point 1: FIRST_MIB of data, the rest zeros (nothing stored for them).
      await sh('truncate', ['-s', `${IMAGE_MIB}M`, image]);
      const fh = await open(image, 'r+');
      await fh.write(rng.bytes(FIRST_MIB * MIB), 0, FIRST_MIB * MIB, 0);
      await fh.close();
      const v1 = path.join(work, 'v1.img');
      await copyFile(image, v1);

      appliance = await startFaulty(dataDir);
      await enrollAgent(appliance, state, 'disk-full');
      const first = await backup(state, image);
      assert.equal(first.code, 0, first.stderr);

      // Now every block holds new incompressible data: far more than the file system has left.
      await writeFile(image, rng.bytes(IMAGE_MIB * MIB));
      const full = await backup(state, image);
      process.stdout.write(`# the backup on a full disk: ${full.stderr.trim().split('\n').slice(-3).join(' | ')}\n`);
      assert.notEqual(full.code, 0, 'the backup fails');
      assert.match(full.stderr, /APPLIANCE_DISK_FULL/);
      assert.match(full.stderr, /full/);
      assert.match(full.stderr, /grow the data disk/, 'the hint says what to do');
      assert.equal(appliance.process.exitCode, null, 'the appliance keeps running');
      process.stdout.write(`# free on the data file system after the failure: ${await fs.freeKiB()} KiB\n`);

      // Nothing committed is harmed.
      await catalogIntegrity(dataDir);
      await verifyClean(dataDir);
      await restoreEqual(appliance, first.pointId!, v1, work);

      // The operator stops the appliance, grows the data disk and its file system, and starts it again (online
      // resize2fs is refused in this container), then runs the backup again: the same cycle continues.
      await appliance.stop();
      await fs.unmount();
      await sh('truncate', ['-s', `${GROWN_MIB}M`, fs.image]);
      await sh('losetup', ['-c', fs.dev!]);
      await sh('e2fsck', ['-f', '-y', fs.dev!]);
      await sh('resize2fs', [fs.dev!]);
      await fs.mount();
      appliance = await startFaulty(dataDir);
      await repoint(state, appliance.url);
      const again = await backup(state, image);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /resuming cycle/, 'the interrupted cycle resumed');
      assert.ok(again.bytesSent! < IMAGE_MIB * MIB, `only the unacknowledged part was sent (${again.bytesSent} bytes)`);
      await catalogIntegrity(dataDir);
      await verifyClean(dataDir);
      await restoreEqual(appliance, first.pointId!, v1, work);
      await restoreEqual(appliance, again.pointId!, image, work);
      process.stdout.write(`# resumed after growing: sent ${(again.bytesSent! / MIB).toFixed(1)} MiB of ${IMAGE_MIB}\n`);
      await appliance.stop();
      appliance = undefined;
    } finally {
      if (appliance) await kill9(appliance);
      await fs.dispose();
    }
  });

  test('a job whose cycle fills the data disk goes InError naming it, does not retry by itself, and after an old point is deleted Retry resumes the same cycle', async () => {
    const fs = new SmallFs(work, 'job');
    let t: TestAppliance | undefined;
    let agent: AgentDaemon | undefined;
    try {
      await fs.create(FS_MIB);
      t = await startTestAppliance({ dataDir: path.join(fs.mnt, 'appliance') });
      const state = path.join(work, 'job-agent');
      const image = path.join(work, 'job-source.img');
      const version = (n: number): string => path.join(work, `job-v${n}.img`);
      /** Every block new incompressible data: the cycle stores the whole disk again, the point owns all its chunks. */
      const rewrite = async (n: number): Promise<void> => {
        await writeFile(image, rng.bytes(JOB_IMAGE_MIB * MIB));
        await copyFile(image, version(n));
      };
      await rewrite(1);
      await t.enroll(state, 'disk-full-job');
      agent = startAgentDaemon(state, [image]);
      const sourceId = t.server.appliance.sources.list().find((s) => s.name === 'disk-full-job')!.id;
      const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
        method: 'POST',
        body: { sourceId, intervalSeconds: 3600, maxPoints: 10, throttle: { networkMbps: 0 } },
      });
      const points = (): Promise<JobPoint[]> => t!.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
      await t.waitFor('CYCLE_1', job.id, (v) => v.state === 'Waiting' && v.pointCount === 1);
      await rewrite(2);
      await t.advance(HOUR);
      await t.waitFor('CYCLE_2', job.id, (v) => v.state === 'Waiting' && v.pointCount === 2);
      const [p1, p2] = await points();
      process.stdout.write(`# job: two points of ${JOB_IMAGE_MIB} MiB stored, ${await fs.freeKiB()} KiB left on the ${FS_MIB} MiB data file system\n`);

      // The third cycle needs another JOB_IMAGE_MIB: more than is left.
      await rewrite(3);
      await t.advance(HOUR);
      const failed = await t.waitFor('the cycle to fail on the full disk', job.id, (v) => v.state === 'InError');
      const log = t.server.appliance.jobs.logText(job.id);
      const cycleId = Number([...log.matchAll(/started cycle (\d+)/g)].at(-1)![1]);
      process.stdout.write(`# job error: [${failed.error?.code}] ${failed.error?.message}\n`);
      process.stdout.write(`# job log: ${log.trim().split('\n').slice(-2).join(' | ')}\n`);
      assert.equal(failed.error?.code, 'APPLIANCE_DISK_FULL');
      assert.match(failed.error.message, /data (disk|directory) is full/, 'the error names the full data disk');
      assert.match(failed.error.message, /what to do: free space on the appliance's data disk by deleting old points/, 'and says what to do');
      assert.match(failed.error.message, /or grow the data disk, then press Retry/);
      assert.match(log, new RegExp(`ERROR \\[APPLIANCE_DISK_FULL\\] cycle ${cycleId} failed: `));
      assert.ok(failed.allowedActions.includes('retry'));
      const acked = (await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`)).disks[0]!.nextBlock;
      assert.ok(acked > 0 && acked < JOB_IMAGE_MIB, `stopped mid-cycle: ${acked} of ${JOB_IMAGE_MIB} blocks acknowledged`);
      const freeAfterFailure = await fs.freeKiB();
      process.stdout.write(`# stopped with ${acked} of ${JOB_IMAGE_MIB} blocks acknowledged, ${freeAfterFailure} KiB free\n`);

      // It does not spin: hours of the scheduler later, no cycle has been started again and nothing more written.
      const entries = (await t.admin.json<unknown[]>(`${API_PREFIX}/jobs/${job.id}/log?format=json`)).length;
      for (let i = 0; i < 6; i++) await t.advance(HOUR);
      await new Promise((r) => setTimeout(r, 2000));
      const idle = await t.job(job.id);
      assert.equal(idle.state, 'InError', 'the job stays InError until someone acts');
      assert.equal((await t.admin.json<unknown[]>(`${API_PREFIX}/jobs/${job.id}/log?format=json`)).length, entries, 'no new job log entries');
      assert.equal((await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`)).disks[0]!.nextBlock, acked);
      assert.equal((agent.output().match(/APPLIANCE_DISK_FULL/g) ?? []).length, 1, `the agent tried once:\n${agent.output()}`);

      // Nothing committed is harmed.
      await catalogIntegrity(t.dataDir);
      await verifyClean(t.dataDir);
      await restoreEquals(t, p1!.id, version(1), work);
      await restoreEquals(t, p2!.id, version(2), work);

      // The engineer deletes the oldest point (the running cycle compares against the newest one); garbage
      // collection removes its chunks, which no other point shares.
      await t.admin.json(`${API_PREFIX}/points/${p1!.id}`, { method: 'DELETE' });
      const gc = await t.admin.json<GcReport>(`${API_PREFIX}/storage/gc`, { method: 'POST' });
      const freed = await fs.freeKiB();
      process.stdout.write(`# after deleting ${p1!.name} and garbage collection (last run: ${gc.chunksDeleted} chunks deleted): ${freed} KiB free\n`);
      assert.ok(freed - freeAfterFailure >= (JOB_IMAGE_MIB - 1) * 1024, `deleting ${p1!.name} freed its chunks (${freeAfterFailure} → ${freed} KiB)`);

      const retried = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs/${job.id}/retry`, { method: 'POST', body: {} });
      assert.match(retried.message, new RegExp(`cycle ${cycleId} continues from its last acknowledged block`));
      const done = await t.waitFor('the resumed cycle to commit', job.id, (v: JobView) => v.state === 'Waiting' && v.lastCompletedAt !== idle.lastCompletedAt);
      assert.equal(done.error, null);
      const resumedLog = t.server.appliance.jobs.logText(job.id);
      assert.match(resumedLog, new RegExp(`resumed cycle ${cycleId}\n`));
      // The refused upload's connection was closed, not reused: the retried cycle did not meet ECONNRESET first.
      assert.doesNotMatch(resumedLog, /APPLIANCE_UNREACHABLE/);
      const kept = await points();
      assert.deepEqual(
        kept.map((p) => p.id),
        [p2!.id, cycleId],
        'the interrupted cycle itself became the point',
      );
      const sent = kept[1]!.bytesSent;
      assert.ok(sent <= (JOB_IMAGE_MIB - acked) * MIB + 64 * 1024, `the resumed cycle sent only what was not acknowledged (${sent} bytes)`);
      process.stdout.write(`# resumed after Retry: sent ${(sent / MIB).toFixed(1)} MiB of ${JOB_IMAGE_MIB}\n`);
      const states = (await t.admin.json<{ to: string }[]>(`${API_PREFIX}/jobs/${job.id}/transitions`)).map((x) => x.to);
      assert.deepEqual(states.slice(-3), ['InError', 'Syncing', 'Waiting']);

      await catalogIntegrity(t.dataDir);
      await verifyClean(t.dataDir);
      await restoreEquals(t, p2!.id, version(2), work);
      await restoreEquals(t, cycleId, version(3), work);
    } finally {
      await agent?.kill();
      await t?.close();
      await fs.dispose();
    }
  });

  test('a catalog write that meets the full disk first (SQLITE_FULL) is APPLIANCE_DISK_FULL too; nothing is harmed and the next backup runs after space is freed', async () => {
    const fs = new SmallFs(work, 'sqlite');
    let t: TestAppliance | undefined;
    try {
      await fs.create(FS_MIB);
      t = await startTestAppliance({ dataDir: path.join(fs.mnt, 'appliance') });
      const state = path.join(work, 'sqlite-agent');
      const image = path.join(work, 'sqlite-source.img');
      await writeFile(image, rng.bytes(SQLITE_IMAGE_MIB * MIB));
      const v1 = path.join(work, 'sqlite-v1.img');
      await copyFile(image, v1);
      await t.enroll(state, 'disk-full-sqlite');
      const first = await backup(state, image);
      assert.equal(first.code, 0, first.stderr);

      // Another program fills the data disk to its last block. The next backup's first write is the catalog's
      // (the cycle's row, before its index files and long before any chunk): SQLite cannot grow its WAL.
      const filler = path.join(fs.mnt, 'filler');
      await fillUp(filler);
      assert.equal(await fs.freeKiB(), 0, 'the data file system is full');
      await writeFile(image, rng.bytes(SQLITE_IMAGE_MIB * MIB));
      const full = await backup(state, image);
      process.stdout.write(`# the backup with a full catalog disk: ${full.stderr.split('\n').find((l) => /SQLITE_FULL/.test(l))?.trim()}\n`);
      assert.notEqual(full.code, 0, 'the backup fails');
      assert.match(full.stderr, /APPLIANCE_DISK_FULL/);
      assert.match(full.stderr, /data directory is full \(SQLITE_FULL\)/, 'SQLite met the full disk first');
      assert.match(full.stderr, /grow the data disk/, 'the hint says what to do');

      // Nothing committed is harmed; the catalog holds no half-written cycle.
      await catalogIntegrity(t.dataDir);
      await restoreEquals(t, first.pointId!, v1, work);
      const running = await sh('sqlite3', [path.join(t.dataDir, 'catalog.sqlite'), "SELECT count(*) FROM cycles WHERE state = 'running';"]);
      assert.equal(running.trim(), '0', 'the refused cycle left no row');

      await rm(filler);
      const again = await backup(state, image);
      assert.equal(again.code, 0, again.stderr);
      await catalogIntegrity(t.dataDir);
      await verifyClean(t.dataDir);
      await restoreEquals(t, first.pointId!, v1, work);
      await restoreEquals(t, again.pointId!, image, work);
    } finally {
      await t?.close();
      await fs.dispose();
    }
  });

  test('a job whose cycle meets a full catalog (SQLITE_FULL, the job cannot even be moved to InError) is not started again at every tick, and runs once space is freed', async () => {
    const fs = new SmallFs(work, 'sqlite-job');
    let t: TestAppliance | undefined;
    let agent: AgentDaemon | undefined;
    try {
      await fs.create(FS_MIB);
      t = await startTestAppliance({ dataDir: path.join(fs.mnt, 'appliance') });
      const state = path.join(work, 'sqlite-job-agent');
      const image = path.join(work, 'sqlite-job-source.img');
      await writeFile(image, rng.bytes(SQLITE_IMAGE_MIB * MIB));
      await t.enroll(state, 'disk-full-sqlite-job');
      agent = startAgentDaemon(state, [image]);
      const sourceId = t.server.appliance.sources.list().find((s) => s.name === 'disk-full-sqlite-job')!.id;
      const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
        method: 'POST',
        body: { sourceId, intervalSeconds: 3600, maxPoints: 10, throttle: { networkMbps: 0 } },
      });
      await t.waitFor('CYCLE_1', job.id, (v) => v.state === 'Waiting' && v.pointCount === 1);

      const filler = path.join(fs.mnt, 'filler');
      await fillUp(filler);
      await writeFile(image, rng.bytes(SQLITE_IMAGE_MIB * MIB));
      const attempts = (): number => (agent!.output().match(/starting a cycle/g) ?? []).length;
      await t.advance(HOUR);
      for (const deadline = Date.now() + 30_000; !/SQLITE_FULL/.test(agent.output()) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
      assert.match(agent.output(), /cycle \(not started\) failed: the appliance's data directory is full \(SQLITE_FULL\)/);
      // The scheduler ticks every second (real time): a few seconds, and still only the one attempt.
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal(attempts(), 2, `one attempt after CYCLE_1, not one per tick:\n${agent.output()}`);

      await rm(filler);
      await t.advance(5 * 60_000);
      const done = await t.waitFor('the next cycle to commit once space is free', job.id, (v) => v.state === 'Waiting' && v.pointCount === 2);
      assert.equal(done.error, null);
      await catalogIntegrity(t.dataDir);
      await verifyClean(t.dataDir);
      const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
      await restoreEquals(t, points[1]!.id, image, work);
    } finally {
      await agent?.kill();
      await t?.close();
      await fs.dispose();
    }
  });
});

/** Fills the file system holding `file` to its last block (dd until ENOSPC, in 1 MiB then 1 KiB writes: a file system this small has 1 KiB blocks), flushed. */
async function fillUp(file: string): Promise<void> {
  for (const bs of ['1M', '1K']) {
    await sh('dd', ['if=/dev/zero', `of=${file}`, `bs=${bs}`, 'oflag=append', 'conv=notrunc,fsync', 'status=none']).catch((err: unknown) => {
      if (!/No space left on device/.test(String(err))) throw err;
    });
  }
  await sh('sync', []);
}
