import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, BlockIndex, BlockKind, initHashing, type CycleState, type JobActionResult, type JobPoint, type JobProgress, type JobView, type Point } from '@ferry/protocol';
import { TEST_PASSPHRASE } from '../lib/cli.js';
import { openStores } from '@ferry/appliance/testing';
import { restoreEquals, startAgentDaemon, startTestAppliance, watchUi, type AgentDaemon, type TestAppliance } from '../lib/jobs.js';

/*
 * Jobs on real things: the appliance (in this process, with a clock the test moves), agents as `ferry-agent run`
 * daemons over the real socket.io control channel, disk images as plain files, restores with `ferry-restore`.
 */

const MIB = 1024 * 1024;
const HOUR = 3600_000;

/** A disk image of `mib` MiB: block 0 zero (no partition table), then random blocks, some copied from `shared`. */
async function makeImage(file: string, mib: number, shared?: Buffer): Promise<void> {
  const data = randomBytes(mib * MIB);
  data.fill(0, 0, MIB);
  if (shared) shared.copy(data, MIB);
  await writeFile(file, data);
}

/** Overwrites `count` whole blocks starting at block `first` with new random data. */
async function rewriteBlocks(file: string, first: number, count: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(randomBytes(count * MIB), 0, count * MIB, first * MIB);
  } finally {
    await fh.close();
  }
}

async function chunkIdsOf(t: TestAppliance, point: Point): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const d of point.disks) {
    const index = BlockIndex.parse(await t.admin.bytes(`${API_PREFIX}/points/${point.id}/disks/${d.diskId}/index`));
    for (let n = 0; n < index.header.blockCount; n++) if (index.kind(n) === BlockKind.Data) ids.add(index.chunkIdHex(n));
  }
  return ids;
}

/** The file of a chunk: named by its keyed id, since test appliances are encrypted. */
async function chunkPath(dataDir: string, id: string): Promise<string> {
  return (await openStores(dataDir, TEST_PASSPHRASE)).chunks.pathOf(id);
}

async function body(res: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}


describe('migration jobs with real agents', { timeout: 15 * 60_000 }, () => {
  let work: string;
  before(async () => {
    await initHashing();
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-jobs-it-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('job requests that break the rules are refused over REST with a clear error', async () => {
    const t = await startTestAppliance();
    try {
      await t.enroll(path.join(work, 'rules-state'), 'rules');
      const sourceId = t.server.appliance.sources.list().find((s) => s.name === 'rules')!.id;
      const refused = async (method: string, url: string, payload: unknown, code: string, message: RegExp): Promise<void> => {
        const res = await t.admin.raw(`${API_PREFIX}${url}`, { method, body: payload });
        const reply = JSON.parse((await body(res)).toString()) as { ok: boolean; code: string; message: string; hint: string };
        assert.equal(reply.ok, false);
        assert.equal(reply.code, code, reply.message);
        assert.match(reply.message, message);
        assert.ok(reply.hint.length > 10, 'the reply says what to do');
      };
      await refused('POST', '/jobs', { sourceId, intervalSeconds: 1800, maxPoints: 2 }, 'BAD_REQUEST', /intervalSeconds: the interval must be between 1 hour/);
      await refused('POST', '/jobs', { sourceId, intervalSeconds: 8 * 86400, maxPoints: 2 }, 'BAD_REQUEST', /7 days/);
      await refused('POST', '/jobs', { sourceId, intervalSeconds: 3600, maxPoints: 0 }, 'BAD_REQUEST', /maxPoints: max points must be between 1 and 10/);
      await refused('POST', '/jobs', { sourceId, intervalSeconds: 3600, maxPoints: 11 }, 'BAD_REQUEST', /maxPoints/);
      await refused('POST', '/jobs', { sourceId: 999, intervalSeconds: 3600, maxPoints: 2 }, 'SOURCE_NOT_FOUND', /source 999/);
      const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, { method: 'POST', body: { sourceId, intervalSeconds: 3600, maxPoints: 2 } });
      await refused('POST', '/jobs', { sourceId, intervalSeconds: 3600, maxPoints: 2 }, 'JOB_EXISTS', /already has job/);
      await refused('PATCH', `/jobs/${job.id}`, { intervalSeconds: 1800 }, 'BAD_REQUEST', /between 1 hour/);
      await refused('POST', `/jobs/${job.id}/resume`, {}, 'JOB_ACTION_INVALID', /cannot resume job \d+: it is Ready; resume applies to Paused/);
      await t.admin.json(`${API_PREFIX}/jobs/${job.id}/cancel`, { method: 'POST', body: {} });
      await refused('POST', `/jobs/${job.id}/complete`, { lastCycle: true }, 'JOB_ACTION_INVALID', /cannot complete job \d+: it is Cancelled/);
      await refused('POST', '/jobs/abc/pause', {}, 'BAD_REQUEST', /job id must be a positive integer/);
      await refused('POST', '/jobs/4242/pause', {}, 'JOB_NOT_FOUND', /job 4242 does not exist/);
      const doc = JSON.parse((await body(await t.admin.raw(`${API_PREFIX}/openapi.json`))).toString()) as { openapi: string; paths: Record<string, unknown> };
      assert.match(doc.openapi, /^3\.1/);
      assert.ok('/jobs/{id}/pause' in doc.paths);
    } finally {
      await t.close();
    }
  });

  test('a job created paused (startPaused) with its agent online never dispatches a cycle until it is resumed', async () => {
    const t = await startTestAppliance();
    const image = path.join(work, 'paused.img');
    const state = path.join(work, 'paused-state');
    await makeImage(image, 8);
    await t.enroll(state, 'paused');
    const ui = await watchUi(t);
    const agent = startAgentDaemon(state, [image]);
    try {
      const a = t.server.appliance;
      const sourceId = a.sources.list().find((s) => s.name === 'paused')!.id;
      // Online first: a job created Ready now would have its full cycle sent to the agent at once.
      const deadline = Date.now() + 60_000;
      while (!a.agents.online(sourceId)) {
        assert.ok(Date.now() < deadline, `the agent did not connect:\n${agent.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const created = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
        method: 'POST',
        body: { sourceId, intervalSeconds: 3600, maxPoints: 2, startPaused: true },
      });
      assert.equal(created.job.state, 'Paused', 'the reply already shows the job paused');
      assert.match(created.message, /no cycle runs until you resume/);
      // The scheduler runs many times, across more than one interval, with the agent connected all along.
      for (let i = 0; i < 6; i++) await t.advance(HOUR / 2);
      // The agent answers cycle.run by starting a cycle over REST: none may exist.
      const cycles = (): number => (a.db.prepare('SELECT COUNT(*) AS n FROM cycles WHERE source_id = ?').get(sourceId) as { n: number }).n;
      assert.equal(cycles(), 0, 'no cycle was started for the paused job');
      assert.equal((await t.job(created.job.id)).state, 'Paused');
      const transitions = await t.admin.json<{ from: string | null; to: string }[]>(`${API_PREFIX}/jobs/${created.job.id}/transitions`);
      assert.deepEqual(
        transitions.map((x) => [x.from, x.to]),
        [[null, 'Paused']],
        'created Paused: never Ready, never Syncing',
      );
      const seen = ui.events.filter((e) => (e.data as { jobId?: number; id?: number }).jobId === created.job.id || (e.data as { id?: number }).id === created.job.id);
      assert.ok(!seen.some((e) => e.name === 'job.progress'), 'browsers saw no progress');
      assert.ok(seen.filter((e) => e.name === 'job.updated').every((e) => (e.data as JobView).state === 'Paused'), 'browsers saw only Paused');

      // Resumed, the same job runs its full cycle: the agent was able to all along.
      await t.admin.json(`${API_PREFIX}/jobs/${created.job.id}/resume`, { method: 'POST', body: {} });
      const done = await t.waitFor('the full cycle after resume', created.job.id, (v) => v.state === 'Waiting' && v.pointCount === 1);
      assert.equal(done.pointCount, 1);
      assert.equal(cycles(), 1);
    } finally {
      ui.close();
      await agent.kill();
      await t.close();
    }
  });

  test('a job with interval 1 h and max 2 points runs cycles on time, keeps the 2 newest, collects what only the dropped point used, keeps a pinned point', async () => {
    const t = await startTestAppliance();
    const image = path.join(work, 'web1.img');
    const state = path.join(work, 'web1-state');
    await makeImage(image, 24);
    await t.enroll(state, 'web1');
    const agent = startAgentDaemon(state, [image]);
    try {
      const sourceId = t.server.appliance.sources.list().find((s) => s.name === 'web1')!.id;
      const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
        method: 'POST',
        body: { sourceId, intervalSeconds: 3600, maxPoints: 2, throttle: { networkMbps: 0 } },
      });
      const cycle = async (n: number): Promise<Point> => {
        const j = await t.waitFor(`point ${n}`, job.id, (v) => v.state === 'Waiting' && v.pointCount >= Math.min(n, 2) && v.lastCompletedAt !== null);
        const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
        assert.equal(points.at(-1)!.name, `CYCLE_${n}`);
        assert.equal(Date.parse(j.nextRunAt!), t.clock.now() + HOUR, 'the next cycle is due one interval after this one completed');
        return t.admin.json<Point>(`${API_PREFIX}/points/${points.at(-1)!.id}`);
      };
      /** The clock reaches the next run: nothing a minute early, then the cycle starts on time. */
      const onTime = async (): Promise<void> => {
        const before = (await t.job(job.id)).lastCompletedAt;
        await t.advance(HOUR - 60_000);
        assert.equal((await t.job(job.id)).state, 'Waiting', 'no cycle before the interval has passed');
        await t.advance(60_000);
        await t.waitFor('next cycle to start', job.id, (v) => v.state === 'Syncing' || v.lastCompletedAt !== before);
      };

      const p1 = await cycle(1);
      const ids1 = await chunkIdsOf(t, p1);
      await rewriteBlocks(image, 4, 3);
      await onTime();
      const p2 = await cycle(2);
      await rewriteBlocks(image, 10, 2);
      await onTime();
      const p3 = await cycle(3);

      const kept = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
      assert.deepEqual(
        kept.map((p) => p.name),
        ['CYCLE_2', 'CYCLE_3'],
      );
      for (const p of kept) assert.ok(p.sizeBytes > 0 && p.seconds > 0 && p.createdAt.length > 0);
      await t.admin.json(`${API_PREFIX}/storage/gc`, { method: 'POST' });
      const ids2 = await chunkIdsOf(t, p2);
      const ids3 = await chunkIdsOf(t, p3);
      const onlyDropped = [...ids1].filter((id) => !ids2.has(id) && !ids3.has(id));
      assert.equal(onlyDropped.length, 3, 'the three blocks rewritten after CYCLE_1 were its only own chunks');
      for (const id of onlyDropped) assert.equal(await exists(await chunkPath(t.dataDir, id)), false, `chunk ${id} only CYCLE_1 used is deleted`);
      for (const id of [...ids2, ...ids3]) assert.ok(await exists(await chunkPath(t.dataDir, id)), `chunk ${id} of a kept point stays`);

      // A restore of CYCLE_2 pins it: the next cycle drops CYCLE_3 instead.
      await t.admin.json(`${API_PREFIX}/restores`, { method: 'POST', body: { pointId: p2.id } });
      await rewriteBlocks(image, 15, 1);
      await onTime();
      await cycle(4);
      const afterPin = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
      assert.deepEqual(
        afterPin.map((p) => [p.name, p.pinned]),
        [
          ['CYCLE_2', true],
          ['CYCLE_4', false],
        ],
      );
      await restoreEquals(t, afterPin[1]!.id, image, work);

      const transitions = await t.admin.json<{ from: string | null; to: string; cause: string }[]>(`${API_PREFIX}/jobs/${job.id}/transitions`);
      assert.deepEqual(
        transitions.map((x) => x.to),
        ['Ready', 'Syncing', 'Waiting', 'Syncing', 'Waiting', 'Syncing', 'Waiting', 'Syncing', 'Waiting'],
      );
      const logRes = await t.admin.raw(`${API_PREFIX}/jobs/${job.id}/log`);
      assert.match(String(logRes.headers['content-type']), /^text\/plain/);
      assert.match((await body(logRes)).toString(), /INFO  deleted CYCLE_1 \(at most 2 point\(s\) are kept\)/);
      const entries = await t.admin.json<{ level: string; message: string }[]>(`${API_PREFIX}/jobs/${job.id}/log?format=json`);
      assert.ok(entries.some((e) => e.level === 'info' && e.message === 'deleted CYCLE_1 (at most 2 point(s) are kept)'), 'the log as JSON has the same entries');
    } finally {
      await agent.kill();
      await t.close();
    }
  });

  test('an agent killed mid-cycle and restarted continues the same cycle without re-sending acknowledged blocks; browsers see it live', async () => {
    const t = await startTestAppliance();
    const image = path.join(work, 'db1.img');
    const state = path.join(work, 'db1-state');
    await makeImage(image, 96);
    await t.enroll(state, 'db1');
    const ui = await watchUi(t);
    let agent: AgentDaemon = startAgentDaemon(state, [image]);
    try {
      const sourceId = t.server.appliance.sources.list().find((s) => s.name === 'db1')!.id;
      // 64 Mbit/s: the 95 MiB of data take about 12 s, long enough to kill the agent after the first batches.
      const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
        method: 'POST',
        body: { sourceId, intervalSeconds: 86400, maxPoints: 3, throttle: { networkMbps: 64 } },
      });
      const syncing = await t.waitFor('progress of the full cycle', job.id, (v) => v.progress !== null);
      const cycleId = syncing.progress!.cycleId;
      let acked = 0;
      for (const deadline = Date.now() + 60_000; acked < 20 && Date.now() < deadline; ) {
        acked = (await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`)).disks[0]!.nextBlock;
        await new Promise((r) => setTimeout(r, 50));
      }
      await agent.kill('SIGKILL');
      acked = (await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`)).disks[0]!.nextBlock;
      assert.ok(acked >= 20 && acked < 96, `killed mid-cycle with ${acked} of 96 blocks acknowledged`);

      // Away for more than 15 minutes (by the appliance's clock): Suspended, and back by itself when the agent returns.
      await t.waitFor('the appliance to notice the agent is gone', job.id, (v) => !v.agentOnline);
      await t.advance(16 * 60_000);
      assert.equal((await t.job(job.id)).state, 'Suspended');
      await t.admin.json(`${API_PREFIX}/jobs/${job.id}`, { method: 'PATCH', body: { throttle: { networkMbps: 0 } } });
      agent = startAgentDaemon(state, [image]);
      const done = await t.waitFor('the resumed cycle to commit', job.id, (v) => v.state === 'Waiting');
      const states = (await t.admin.json<{ to: string }[]>(`${API_PREFIX}/jobs/${job.id}/transitions`)).map((x) => x.to);
      assert.deepEqual(states, ['Ready', 'Syncing', 'Suspended', 'Syncing', 'Waiting']);
      assert.equal(done.pointCount, 1);
      const point = await t.admin.json<Point>(`${API_PREFIX}/points/${cycleId}`);
      assert.equal(point.name, 'CYCLE_1', 'the killed cycle itself became the point');
      const unacked = (96 - acked) * MIB;
      assert.ok(point.stats.bytesSent <= unacked + 4 * 4096, `the resumed run sent ${point.stats.bytesSent} bytes; ${unacked} were unacknowledged`);
      assert.ok(point.stats.bytesSent >= unacked - MIB, 'and it did send the unacknowledged blocks');
      await restoreEquals(t, cycleId, image, work);
      assert.match(t.server.appliance.jobs.logText(job.id), new RegExp(`resumed cycle ${cycleId}\n`));

      const updates = ui.events.filter((e) => e.name === 'job.updated').map((e) => e.data as JobView);
      assert.deepEqual(
        updates.map((u) => u.state).filter((st, i, all) => i === 0 || all[i - 1] !== st),
        ['Ready', 'Syncing', 'Suspended', 'Syncing', 'Waiting'],
        'every state change reached the browser',
      );
      assert.ok(updates.some((u) => u.phase === 'Transferring'));
      const progress = ui.events.filter((e) => e.name === 'job.progress').map((e) => e.data as JobProgress);
      const measured = progress.find((p) => p.rate !== null && p.etaSeconds !== null && p.bytesDone > 0);
      assert.ok(measured, `a progress event with bytes, rate and ETA (got ${progress.length} progress events)`);
      assert.equal(measured.cycleId, cycleId);
      assert.equal(measured.disks[0]!.blockCount, 96);
      assert.ok(measured.throttle.networkMbps === 64 && measured.bytesTotal >= measured.bytesDone);
      assert.ok(ui.events.some((e) => e.name === 'job.log'));
    } finally {
      ui.close();
      await agent.kill();
      await t.close();
    }
  });

  test('garbage collection during two concurrent cycles that share chunks loses nothing', async () => {
    const t = await startTestAppliance();
    const shared = randomBytes(16 * MIB);
    const images = [path.join(work, 'app1.img'), path.join(work, 'app2.img')];
    const agents: AgentDaemon[] = [];
    try {
      const jobs: number[] = [];
      for (const [i, image] of images.entries()) {
        await makeImage(image, 40, shared);
        const state = path.join(work, `app${i + 1}-state`);
        await t.enroll(state, `app${i + 1}`);
        agents.push(startAgentDaemon(state, [image]));
        const sourceId = t.server.appliance.sources.list().find((s) => s.name === `app${i + 1}`)!.id;
        const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
          method: 'POST',
          body: { sourceId, intervalSeconds: 3600, maxPoints: 1, throttle: { networkMbps: 0 } },
        });
        jobs.push(job.id);
      }
      for (const id of jobs) await t.waitFor('full cycle', id, (v) => v.state === 'Waiting');

      for (let round = 0; round < 2; round++) {
        // Each source rewrites its own blocks and part of the shared ones (to new, again shared, data), so the
        // dropped points' chunks and the running cycles' chunks overlap.
        const again = randomBytes(4 * MIB);
        for (const image of images) {
          const fh = await open(image, 'r+');
          await fh.write(again, 0, again.length, (2 + round * 4) * MIB);
          await fh.close();
          await rewriteBlocks(image, 30 + round * 3, 3);
        }
        for (const id of jobs) await t.admin.json(`${API_PREFIX}/jobs/${id}`, { method: 'PATCH', body: { throttle: { networkMbps: 48 } } });
        await t.advance(HOUR);
        for (const id of jobs) await t.waitFor('cycle to start', id, (v) => v.state === 'Syncing');
        let collections = 0;
        while ((await Promise.all(jobs.map((id) => t.job(id)))).some((v) => v.state !== 'Waiting')) {
          await t.admin.json(`${API_PREFIX}/storage/gc`, { method: 'POST' });
          collections++;
        }
        assert.ok(collections >= 2, `garbage was collected ${collections} times while the cycles ran`);
      }
      for (const [i, id] of jobs.entries()) {
        const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${id}/points`);
        assert.deepEqual(
          points.map((p) => p.name),
          ['CYCLE_3'],
        );
        await restoreEquals(t, points[0]!.id, images[i]!, work);
      }
      const report = await t.server.appliance.verify.run(() => undefined);
      assert.equal(report.ok, true, JSON.stringify(report.points.filter((p) => !p.ok)));
    } finally {
      for (const a of agents) await a.kill();
      await t.close();
    }
  });
});
