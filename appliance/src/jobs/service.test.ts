import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACTION_STATES,
  CreateJobRequestSchema,
  FerryError,
  JOB_ACTIONS,
  JOB_STATES,
  JobSettingsRequestSchema,
  type JobAction,
  type JobState,
} from '@ferry/protocol';
import { agentCycle, block, harness, newSource, SUSPEND_AFTER_S, type Harness } from './test-harness.js';

const HOUR = 3600_000;
const DISK = [block(1), block(2), block(3), block(4)];

let h: Harness;
beforeEach(async () => {
  h = await harness();
});
afterEach(() => h.close());

function state(jobId: number): JobState {
  return h.a.jobs.get(jobId).state;
}

function newJob(name = 'web1', intervalSeconds = 3600, maxPoints = 2): { jobId: number; sourceId: number } {
  const sourceId = newSource(h, name);
  const { job } = h.a.jobs.create({ sourceId, intervalSeconds, maxPoints });
  return { jobId: job.id, sourceId };
}

/** Puts a fresh job into the given state the way it gets there in the field. */
async function jobIn(s: JobState): Promise<{ jobId: number; sourceId: number }> {
  const j = newJob();
  const { jobId, sourceId } = j;
  if (s === 'Ready') return j;
  if (s === 'Suspended') {
    h.clock.advance((SUSPEND_AFTER_S + 1) * 1000);
    await h.a.jobs.tick();
    assert.equal(state(jobId), 'Suspended');
    return j;
  }
  h.agents.connect(sourceId);
  await h.a.jobs.tick();
  assert.equal(state(jobId), 'Syncing');
  if (s === 'Syncing') return j;
  if (s === 'InError') {
    await agentCycle(h, sourceId, DISK, 2);
    h.a.jobs.cycleFailed(sourceId, { jobId, cycleId: null, code: 'DISK_UNREADABLE', message: 'read error at offset 4096' });
    assert.equal(state(jobId), 'InError');
    return j;
  }
  await agentCycle(h, sourceId, DISK);
  assert.equal(state(jobId), 'Waiting');
  if (s === 'Waiting') return j;
  if (s === 'Paused') await h.a.jobs.pause(jobId);
  else if (s === 'Completing') await h.a.jobs.complete(jobId, { lastCycle: true });
  else if (s === 'Completed') await h.a.jobs.complete(jobId, { lastCycle: false });
  else if (s === 'Cancelled') await h.a.jobs.cancel(jobId, { keepPoints: [] });
  assert.equal(state(jobId), s);
  return j;
}

async function act(jobId: number, action: JobAction): Promise<void> {
  const jobs = h.a.jobs;
  switch (action) {
    case 'sync-now':
      jobs.syncNow(jobId);
      return;
    case 'pause':
      await jobs.pause(jobId);
      return;
    case 'resume':
      jobs.resume(jobId);
      return;
    case 'retry':
      jobs.retry(jobId);
      return;
    case 'complete':
      await jobs.complete(jobId, { lastCycle: true });
      return;
    case 'cancel':
      await jobs.cancel(jobId, { keepPoints: [] });
      return;
    case 'settings':
      await jobs.settings(jobId, { intervalSeconds: 7200 });
      return;
  }
}

/** Where each action leads from each state it applies to (settings and sync-now keep the state until the scheduler runs). */
const EXPECTED: Record<JobAction, Partial<Record<JobState, JobState>>> = {
  'sync-now': { Waiting: 'Waiting' },
  pause: { Ready: 'Paused', Syncing: 'Paused', Waiting: 'Paused', InError: 'Paused', Suspended: 'Paused', Completing: 'Paused' },
  resume: { Paused: 'Waiting' },
  retry: { InError: 'Syncing' },
  complete: { Ready: 'Completing', Syncing: 'Completing', Waiting: 'Completing', Paused: 'Completing', InError: 'Completing', Suspended: 'Completing', Completing: 'Completing' },
  cancel: { Ready: 'Cancelled', Syncing: 'Cancelled', Waiting: 'Cancelled', Paused: 'Cancelled', InError: 'Cancelled', Suspended: 'Cancelled', Completing: 'Cancelled' },
  settings: { Ready: 'Ready', Syncing: 'Syncing', Waiting: 'Waiting', Paused: 'Paused', InError: 'InError', Suspended: 'Suspended', Completing: 'Completing' },
};

describe('every job action in every state', () => {
  for (const s of JOB_STATES) {
    for (const action of JOB_ACTIONS) {
      const applies = ACTION_STATES[action].includes(s);
      test(`${action} on a ${s} job ${applies ? `leads to ${EXPECTED[action][s]}` : 'is refused with JOB_ACTION_INVALID'}`, async () => {
        const { jobId } = await jobIn(s);
        const before = h.a.jobs.transitions(jobId).length;
        if (!applies) {
          await assert.rejects(act(jobId, action), (err: FerryError) => {
            assert.equal(err.code, 'JOB_ACTION_INVALID');
            assert.match(err.message, new RegExp(`cannot ${action} job ${jobId}: it is ${s}; ${action} applies to `));
            return true;
          });
          assert.equal(state(jobId), s, 'a refused action changes nothing');
          assert.equal(h.a.jobs.transitions(jobId).length, before);
          return;
        }
        await act(jobId, action);
        assert.equal(state(jobId), EXPECTED[action][s]);
        assert.deepEqual(h.a.jobs.get(jobId).allowedActions, JOB_ACTIONS.filter((a) => ACTION_STATES[a].includes(state(jobId))));
        if (state(jobId) !== s) {
          const last = h.a.jobs.transitions(jobId).at(-1)!;
          assert.equal(last.from, s);
          assert.equal(last.to, state(jobId));
          assert.ok(last.cause.length > 0 && last.at.length > 0, 'a transition records its time and cause');
        }
      });
    }
  }
});

describe('job settings are checked', () => {
  const bad: [string, unknown, RegExp][] = [
    ['an interval of 30 minutes', { sourceId: 1, intervalSeconds: 1800, maxPoints: 2 }, /between 1 hour \(3600 s\) and 7 days/],
    ['an interval of 8 days', { sourceId: 1, intervalSeconds: 8 * 86400, maxPoints: 2 }, /between 1 hour \(3600 s\) and 7 days/],
    ['max points 0', { sourceId: 1, intervalSeconds: 3600, maxPoints: 0 }, /max points must be between 1 and 10/],
    ['max points 11', { sourceId: 1, intervalSeconds: 3600, maxPoints: 11 }, /max points must be between 1 and 10/],
  ];
  for (const [what, body, message] of bad) {
    test(`a job with ${what} is refused`, () => {
      const r = CreateJobRequestSchema.safeParse(body);
      assert.equal(r.success, false);
      assert.match(r.error.issues.map((i) => i.message).join('; '), message);
    });
    test(`changing a job to ${what} is refused`, () => {
      const { sourceId: _s, ...change } = body as Record<string, unknown>;
      const r = JobSettingsRequestSchema.safeParse(what.startsWith('max') ? { maxPoints: change.maxPoints } : { intervalSeconds: change.intervalSeconds });
      assert.equal(r.success, false);
      assert.match(r.error.issues.map((i) => i.message).join('; '), message);
    });
  }

  test('a second live job for the same source is refused with JOB_EXISTS', () => {
    const { sourceId } = newJob();
    assert.throws(() => h.a.jobs.create({ sourceId, intervalSeconds: 3600, maxPoints: 1 }), (e: FerryError) => e.code === 'JOB_EXISTS');
  });

  test('completing without a last cycle needs a point (JOB_NO_POINT)', async () => {
    const { jobId } = newJob();
    await assert.rejects(h.a.jobs.complete(jobId, { lastCycle: false }), (e: FerryError) => e.code === 'JOB_NO_POINT');
    assert.equal(state(jobId), 'Ready');
  });
});

describe('scheduling', () => {
  test('the next cycle starts one interval after the previous one completed', async () => {
    const { jobId, sourceId } = newJob();
    h.agents.connect(sourceId);
    await h.a.jobs.tick();
    h.clock.advance(20 * 60_000); // the full cycle takes 20 minutes
    await agentCycle(h, sourceId, DISK);
    const completed = h.clock.now();
    assert.equal(h.a.jobs.get(jobId).nextRunAt, new Date(completed + HOUR).toISOString());
    h.clock.advance(HOUR - 1000);
    await h.a.jobs.tick();
    assert.equal(state(jobId), 'Waiting', 'not before the interval has passed');
    h.clock.advance(1000);
    await h.a.jobs.tick();
    assert.equal(state(jobId), 'Syncing');
    assert.deepEqual(h.agents.runs(sourceId).map((r) => r.reason), ['first (full) cycle', 'scheduled']);
  });

  test('an interval change takes effect after the next cycle, not the current one', async () => {
    const { jobId, sourceId } = newJob();
    h.agents.connect(sourceId);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK, 2);
    // Changed while the first cycle runs: that cycle is the current one, so its wait still uses 1 hour.
    const r = await h.a.jobs.settings(jobId, { intervalSeconds: 4 * 3600 });
    assert.match(r.message, /changes from 1 hour to 4 hours after the next cycle completes/);
    assert.equal(r.job.pendingIntervalSeconds, 4 * 3600);
    await agentCycle(h, sourceId, DISK);
    let job = h.a.jobs.get(jobId);
    assert.equal(job.intervalSeconds, 3600);
    assert.equal(Date.parse(job.nextRunAt!) - h.clock.now(), HOUR);
    // The next cycle starts after the change; once it completes, the new interval applies.
    h.clock.advance(HOUR);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK);
    job = h.a.jobs.get(jobId);
    assert.equal(job.intervalSeconds, 4 * 3600);
    assert.equal(job.pendingIntervalSeconds, null);
    assert.equal(Date.parse(job.nextRunAt!) - h.clock.now(), 4 * HOUR);
  });

  test('an interval change while waiting keeps the scheduled start and applies after that cycle', async () => {
    const { jobId, sourceId } = newJob();
    h.agents.connect(sourceId);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK);
    const scheduled = h.a.jobs.get(jobId).nextRunAt;
    await h.a.jobs.settings(jobId, { intervalSeconds: 86400 });
    assert.equal(h.a.jobs.get(jobId).nextRunAt, scheduled);
    h.clock.advance(HOUR);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK);
    assert.equal(Date.parse(h.a.jobs.get(jobId).nextRunAt!) - h.clock.now(), 24 * HOUR);
  });

  test('complete with a last cycle lets the running cycle finish, runs one more, then no cycle can run again', async () => {
    const { jobId, sourceId } = newJob();
    h.agents.connect(sourceId);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK, 2);
    await h.a.jobs.complete(jobId, { lastCycle: true });
    await agentCycle(h, sourceId, DISK);
    assert.equal(state(jobId), 'Completing', 'the cycle that began before "complete" is not the last one');
    await h.a.jobs.tick();
    assert.equal(h.agents.runs(sourceId).at(-1)!.reason, 'last cycle');
    await agentCycle(h, sourceId, DISK);
    assert.equal(state(jobId), 'Completed');
    assert.equal(h.a.jobs.get(jobId).pointCount, 2);
    await assert.rejects(agentCycle(h, sourceId, DISK), (e: FerryError) => e.code === 'JOB_COMPLETED');
  });

  test('a job created with startPaused is Paused from the start and sends no cycle until resumed', async () => {
    const sourceId = newSource(h, 'later');
    h.agents.connect(sourceId);
    const { job, message } = h.a.jobs.create({ sourceId, intervalSeconds: 3600, maxPoints: 2, startPaused: true });
    assert.equal(job.state, 'Paused');
    assert.match(message, /no cycle runs until you resume/);
    for (let i = 0; i < 3; i++) {
      h.clock.advance(2 * HOUR);
      await h.a.jobs.tick();
    }
    // The create's own scheduler run (setImmediate) has happened too by now.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.agents.runs(sourceId), [], 'no cycle.run was sent');
    assert.deepEqual(h.a.jobs.transitions(job.id).map((x) => [x.from, x.to]), [[null, 'Paused']]);
    h.a.jobs.resume(job.id);
    assert.equal(state(job.id), 'Ready', 'resumed before its first point: the full cycle is next');
    await h.a.jobs.tick();
    assert.equal(h.agents.runs(sourceId).length, 1);
    assert.equal(state(job.id), 'Syncing');
  });

  test('a paused job refuses cycles the agent starts on its own', async () => {
    const { jobId, sourceId } = await jobIn('Waiting');
    await h.a.jobs.pause(jobId);
    await assert.rejects(agentCycle(h, sourceId, DISK), (e: FerryError) => e.code === 'JOB_PAUSED');
  });

  test('pausing a syncing job tells the agent to stop; resuming continues the same cycle', async () => {
    const { jobId, sourceId } = await jobIn('Syncing');
    const { cycleId } = await agentCycle(h, sourceId, DISK, 2);
    await h.a.jobs.pause(jobId);
    assert.deepEqual(h.agents.sent.at(-1), { sourceId, event: 'cycle.stop', payload: { jobId, reason: 'pause' } });
    h.a.jobs.resume(jobId);
    assert.equal(state(jobId), 'Syncing');
    await h.a.jobs.tick();
    const resumed = await h.a.cycles.start(sourceId, { disks: [{ key: '/dev/vdb', size: DISK.length * 64 * 1024 }] });
    assert.equal(resumed.id, cycleId);
    assert.equal(resumed.disks[0]!.nextBlock, 2, 'acknowledged blocks are not sent again');
  });

  test('retry after an error continues from the last acknowledged block', async () => {
    const { jobId, sourceId } = await jobIn('InError');
    assert.equal(h.a.jobs.get(jobId).error?.code, 'DISK_UNREADABLE');
    const r = h.a.jobs.retry(jobId);
    assert.match(r.message, /continues from its last acknowledged block/);
    assert.equal(r.job.error, null);
    const resumed = await h.a.cycles.start(sourceId, { disks: [{ key: '/dev/vdb', size: DISK.length * 64 * 1024 }] });
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.disks[0]!.nextBlock, 2);
  });

  test('an agent away for more than 15 minutes suspends the job; it resumes by itself when the agent returns', async () => {
    const { jobId, sourceId } = await jobIn('Waiting');
    h.agents.disconnect(sourceId);
    h.clock.advance(15 * 60_000);
    await h.a.jobs.tick();
    assert.equal(state(jobId), 'Waiting', 'exactly 15 minutes is not more than 15 minutes');
    h.clock.advance(1000);
    await h.a.jobs.tick();
    assert.equal(state(jobId), 'Suspended');
    assert.match(h.a.jobs.transitions(jobId).at(-1)!.cause, /unreachable since/);
    h.agents.connect(sourceId);
    h.a.jobs.agentConnected(sourceId, null);
    assert.equal(state(jobId), 'Waiting');
  });

  test('cancel deletes the points except those the user keeps', async () => {
    const { jobId, sourceId } = newJob('db1', 3600, 5);
    h.agents.connect(sourceId);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, DISK);
    h.clock.advance(HOUR);
    await h.a.jobs.tick();
    await agentCycle(h, sourceId, [block(9), ...DISK.slice(1)]);
    const [first, second] = h.a.jobs.points(jobId);
    const r = await h.a.jobs.cancel(jobId, { keepPoints: [second!.id] });
    assert.equal(r.job.state, 'Cancelled');
    assert.deepEqual(h.a.points.list(sourceId).map((p) => p.id), [second!.id]);
    assert.equal(h.a.points.exists(first!.id), false);
    await assert.rejects(h.a.jobs.cancel(jobId, { keepPoints: [] }), (e: FerryError) => e.code === 'JOB_ACTION_INVALID');
  });

  test('the job log says what happened, errors with their codes', async () => {
    const { jobId } = await jobIn('InError');
    const text = h.a.jobs.logText(jobId);
    assert.match(text, /INFO  job created: every 1 hour, at most 2 point\(s\)/);
    assert.match(text, /ERROR \[DISK_UNREADABLE\] cycle \(not started\) failed: read error at offset 4096/);
  });
});

describe('link trouble', () => {
  test('a cycle cut off by the network keeps the job syncing and is sent again after 30 s, not InError', async () => {
    const { jobId, sourceId } = await jobIn('Syncing');
    await agentCycle(h, sourceId, DISK, 2);
    h.a.jobs.cycleFailed(sourceId, { jobId, cycleId: null, code: 'APPLIANCE_UNREACHABLE', message: 'cannot reach the appliance: ECONNRESET' });
    assert.equal(state(jobId), 'Syncing');
    const before = h.agents.runs(sourceId).length;
    h.clock.advance(29_000);
    await h.a.jobs.tick();
    assert.equal(h.agents.runs(sourceId).length, before, 'not at once');
    h.clock.advance(1000);
    await h.a.jobs.tick();
    assert.equal(h.agents.runs(sourceId).length, before + 1);
    assert.equal(h.agents.runs(sourceId).at(-1)!.reason, 'continuing the cycle in progress');
    assert.match(h.a.jobs.logText(jobId), /WARN  \[APPLIANCE_UNREACHABLE\] cycle \(not started\) interrupted: .* it continues in 30 s/);
  });

  test('progress that arrives after a pause does not make the job look busy', async () => {
    const { jobId, sourceId } = await jobIn('Syncing');
    const { cycleId } = await agentCycle(h, sourceId, DISK, 2);
    await h.a.jobs.pause(jobId);
    h.a.jobs.cycleProgress(sourceId, {
      jobId,
      cycleId,
      phase: 'Transferring',
      resumed: false,
      bytesDone: 1,
      bytesTotal: 4,
      bytesChanged: 1,
      bytesSent: 1,
      disks: [],
    });
    h.a.jobs.resume(jobId);
    const before = h.agents.runs(sourceId).length;
    await h.a.jobs.tick();
    assert.equal(h.agents.runs(sourceId).length, before + 1, 'the resumed job asks the agent to continue');
  });
});
