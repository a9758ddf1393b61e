import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { FerryError, type CycleFailedReport, type CycleProgressReport, type CycleStoppedReport,
  type CycleLogReport, type Reply, type Throttle } from '@ferry/protocol';
import type { CycleResult } from '../backup/cycle.js';
import { LiveThrottle } from '../backup/throttle.js';
import { answer, replyTo } from './answer.js';
import { CycleControl, type CycleRequest } from './cycle-control.js';

/*
 * The real runner (disks + runCycle against an appliance) is covered by the integration tests; here a fake
 * runner shows what the control channel does with commands, outcomes and progress.
 */

const THROTTLE: Throttle = { networkMbps: 100, diskPercent: 30, queueDepth: 4 };

const RESULT: CycleResult = {
  point: { id: 3, name: 'CYCLE_3' },
  resumed: false,
  bytesRead: 10,
  bytesCompared: 10,
  bytesChanged: 5,
  bytesSent: 4,
  bytesStored: 4,
  seconds: 1,
};

/** A cycle that runs until the test ends it, and stops like runCycle does when its signal aborts. */
class FakeRunner {
  readonly calls: CycleRequest[] = [];
  #end: { resolve: (r: CycleResult) => void; reject: (e: unknown) => void } | null = null;

  readonly run = (req: CycleRequest): Promise<CycleResult> => {
    this.calls.push(req);
    return new Promise<CycleResult>((resolve, reject) => {
      this.#end = { resolve, reject };
      req.signal.addEventListener('abort', () => reject(new FerryError('CYCLE_STOPPED', 'the cycle was stopped')));
    });
  };

  progress(p: Partial<CycleProgressReport> = {}): void {
    this.calls.at(-1)!.onProgress({
      cycleId: 7,
      phase: 'Comparing',
      resumed: false,
      bytesDone: 0,
      bytesTotal: 100,
      bytesChanged: 0,
      bytesSent: 0,
      disks: [{ slot: 0, key: '/dev/sda', blocksDone: 0, blockCount: 10, bytesDone: 0, bytesTotal: 100 }],
      ...p,
    });
  }

  succeed(): void {
    this.#end?.resolve(RESULT);
  }

  fail(err: unknown): void {
    this.#end?.reject(err);
  }
}

class Reports {
  readonly progress: CycleProgressReport[] = [];
  readonly failed: CycleFailedReport[] = [];
  readonly stopped: CycleStoppedReport[] = [];
  readonly logged: CycleLogReport[] = [];
  readonly sink = {
    progress: (r: CycleProgressReport) => this.progress.push(r),
    failed: (r: CycleFailedReport) => this.failed.push(r),
    stopped: (r: CycleStoppedReport) => this.stopped.push(r),
    log: (r: CycleLogReport) => this.logged.push(r),
  };
}

function setup(): { control: CycleControl; runner: FakeRunner; reports: Reports; throttle: LiveThrottle; lines: string[] } {
  const runner = new FakeRunner();
  const reports = new Reports();
  const throttle = new LiveThrottle();
  const lines: string[] = [];
  const control = new CycleControl(runner.run, reports.sink, throttle, (l) => lines.push(l));
  return { control, runner, reports, throttle, lines };
}

/** Sends a command the way the daemon does, and returns the acknowledgement. */
async function send<T>(fn: () => T | Promise<T>): Promise<Reply<T>> {
  let reply: Reply<T> | undefined;
  await answer((r: Reply<T>) => (reply = r), fn, () => undefined);
  assert.ok(reply, 'acknowledged');
  return reply;
}

void test("'cycle.run' twice for the same job starts one cycle, with the command's throttle", async () => {
  const { control, runner, throttle } = setup();
  assert.deepEqual(await send(() => control.run({ jobId: 1, reason: 'scheduled', throttle: THROTTLE })), { ok: true, data: { started: true } });
  assert.deepEqual(await send(() => control.run({ jobId: 1, reason: 'reconnected', throttle: { ...THROTTLE, networkMbps: 1 } })), {
    ok: true,
    data: { started: false },
  });
  assert.equal(runner.calls.length, 1);
  assert.equal(control.busyJobId, 1);
  assert.deepEqual(throttle.current, THROTTLE);
  assert.equal(runner.calls[0]!.throttle, throttle);
  runner.succeed();
  await turn();
  assert.equal(control.busyJobId, null);
});

void test("'cycle.run' for another job while one runs is refused as BAD_REQUEST", async () => {
  const { control, runner } = setup();
  await send(() => control.run({ jobId: 1, reason: 'scheduled', throttle: THROTTLE }));
  const reply = await send(() => control.run({ jobId: 2, reason: 'scheduled', throttle: THROTTLE }));
  assert.equal(reply.ok, false);
  assert.ok(!reply.ok && reply.code === 'BAD_REQUEST' && /job 1/.test(reply.message) && reply.hint);
  assert.equal(runner.calls.length, 1);
});

void test("'cycle.run' with a malformed command is refused as BAD_REQUEST naming the bad fields", async () => {
  const { control, runner } = setup();
  const reply = await send(() => control.run({ jobId: 'one', reason: 'scheduled', throttle: { ...THROTTLE, queueDepth: 0 } }));
  assert.ok(!reply.ok && reply.code === 'BAD_REQUEST', JSON.stringify(reply));
  assert.match(reply.message, /jobId/);
  assert.match(reply.message, /throttle\.queueDepth/);
  assert.equal(runner.calls.length, 0);
});

void test("'cycle.stop' aborts the job's cycle and 'cycle.stopped' reports it with its cycle id", async () => {
  const { control, runner, reports } = setup();
  await send(() => control.run({ jobId: 4, reason: 'scheduled', throttle: THROTTLE }));
  runner.progress({ cycleId: 12 });
  assert.deepEqual(await send(() => control.stop({ jobId: 5, reason: 'pause' })), { ok: true, data: { stopped: false } });
  assert.equal(runner.calls[0]!.signal.aborted, false);
  assert.deepEqual(await send(() => control.stop({ jobId: 4, reason: 'pause' })), { ok: true, data: { stopped: true } });
  assert.equal(runner.calls[0]!.signal.aborted, true);
  await turn();
  assert.deepEqual(reports.stopped, [{ jobId: 4, cycleId: 12, reason: 'pause' }]);
  assert.deepEqual(reports.failed, []);
  assert.equal(control.busyJobId, null);
});

void test("'cycle.stop' with nothing running answers stopped: false", async () => {
  const { control } = setup();
  assert.deepEqual(await send(() => control.stop({ jobId: 1, reason: 'cancel' })), { ok: true, data: { stopped: false } });
});

void test("'cycle.run' right after a stop waits for the stopping cycle to end, then starts a new one", async () => {
  const { control, runner, reports } = setup();
  await send(() => control.run({ jobId: 1, reason: 'scheduled', throttle: THROTTLE }));
  control.stop({ jobId: 1, reason: 'pause' });
  assert.deepEqual(await send(() => control.run({ jobId: 1, reason: 'resume', throttle: THROTTLE })), { ok: true, data: { started: true } });
  assert.equal(runner.calls.length, 2);
  assert.equal(reports.stopped.length, 1);
  assert.equal(control.busyJobId, 1);
});

void test('progress is forwarded with the job id', async () => {
  const { control, runner, reports } = setup();
  await send(() => control.run({ jobId: 9, reason: 'scheduled', throttle: THROTTLE }));
  runner.progress({ phase: 'Transferring', bytesDone: 50, bytesChanged: 20, bytesSent: 10 });
  assert.equal(reports.progress.length, 1);
  assert.deepEqual(reports.progress[0], {
    jobId: 9,
    cycleId: 7,
    phase: 'Transferring',
    resumed: false,
    bytesDone: 50,
    bytesTotal: 100,
    bytesChanged: 20,
    bytesSent: 10,
    disks: [{ slot: 0, key: '/dev/sda', blocksDone: 0, blockCount: 10, bytesDone: 0, bytesTotal: 100 }],
  });
});

void test("a failed cycle is reported with the error's code, or INTERNAL for a bug", async () => {
  const { control, runner, reports, lines } = setup();
  await send(() => control.run({ jobId: 2, reason: 'scheduled', throttle: THROTTLE }));
  runner.progress({ cycleId: 21 });
  runner.fail(new FerryError('APPLIANCE_UNREACHABLE', 'cannot reach the appliance at 10.0.0.5:8443: ECONNREFUSED'));
  await turn();
  await send(() => control.run({ jobId: 2, reason: 'retry', throttle: THROTTLE }));
  runner.fail(new TypeError('x is undefined'));
  await turn();
  assert.deepEqual(reports.failed, [
    { jobId: 2, cycleId: 21, code: 'APPLIANCE_UNREACHABLE', message: 'cannot reach the appliance at 10.0.0.5:8443: ECONNREFUSED' },
    { jobId: 2, cycleId: null, code: 'INTERNAL', message: 'x is undefined' },
  ]);
  assert.ok(lines.some((l) => /failed: .*ECONNREFUSED.*what to do/.test(l)));
  assert.ok(lines.some((l) => /this is a bug/.test(l)));
});

void test('a committed cycle is logged by its point name; nothing else is reported', async () => {
  const { control, runner, reports, lines } = setup();
  await send(() => control.run({ jobId: 3, reason: 'scheduled', throttle: THROTTLE }));
  runner.progress({ cycleId: 3 });
  runner.succeed();
  await turn();
  assert.ok(lines.some((l) => /^job 3: CYCLE_3 committed \(point 3, cycle 3\)/.test(l)), lines.join('\n'));
  assert.equal(reports.failed.length + reports.stopped.length, 0);
});

void test("'throttle.set' changes the live throttle; a malformed one is refused", async () => {
  const { control, throttle } = setup();
  const next = { networkMbps: 0, diskPercent: 100, queueDepth: 16 };
  assert.deepEqual(await send(() => control.setThrottle(next)), { ok: true, data: { applied: true } });
  assert.deepEqual(throttle.current, next);
  const bad = await send(() => control.setThrottle({ networkMbps: -5, diskPercent: 30, queueDepth: 4 }));
  assert.ok(!bad.ok && bad.code === 'BAD_REQUEST');
  assert.deepEqual(throttle.current, next);
});

void test('shutdown() stops the running cycle without reporting it as stopped or failed', async () => {
  const { control, runner, reports } = setup();
  await send(() => control.run({ jobId: 1, reason: 'scheduled', throttle: THROTTLE }));
  await control.shutdown();
  assert.equal(runner.calls[0]!.signal.aborted, true);
  assert.equal(reports.stopped.length + reports.failed.length, 0);
  assert.equal(control.busyJobId, null);
});

void test('replyTo() turns a FerryError into its code and hint, and anything else into INTERNAL', async () => {
  const bugs: unknown[] = [];
  const ferry = await replyTo(() => {
    throw new FerryError('DISK_UNREADABLE', 'cannot open disk /dev/sdz');
  }, (e) => bugs.push(e));
  assert.deepEqual(ferry, { ok: false, code: 'DISK_UNREADABLE', message: 'cannot open disk /dev/sdz', hint: new FerryError('DISK_UNREADABLE', '').hint });
  const bug = await replyTo(() => Promise.reject(new RangeError('boom')), (e) => bugs.push(e));
  assert.ok(!bug.ok && bug.code === 'INTERNAL' && /boom/.test(bug.message) && /bug/.test(bug.hint ?? ''));
  assert.equal(bugs.length, 1);
});

void test('answer() runs a command sent without an acknowledgement callback', async () => {
  let ran = false;
  await answer(undefined, () => (ran = true), () => assert.fail('not a bug'));
  assert.equal(ran, true);
});
