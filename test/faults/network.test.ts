import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, type CycleState, type JobActionResult, type JobPoint, type JobProgress, type JobTransition, type JobView } from '@ferry/protocol';
import { ROOT, sh } from '../lib/cli.js';
import { impairedLink, type ImpairCounters, type ImpairedLink, type Impairment } from '../lib/impair.js';
import { restoreEquals, startAgentDaemon, startTestAppliance, watchUi, type AgentDaemon, type TestAppliance, type UiWatcher } from '../lib/jobs.js';
import { linkedNamespace, type LinkedNamespace } from '../lib/netns.js';
import { faultSeed, MIB, Rng, scribble } from './lib.js';

/*
 * The network part of the fault suite (docs/reliability.md, "Network").
 *
 * Outages: the agent daemon runs in a network namespace joined to the host by a veth pair; the appliance runs in
 * this process with a clock the test moves, listening on the host end. An incremental is throttled so the link
 * can be cut while it sends; the link stays down for the outage, then comes back.
 *
 * Time. FERRY_FAULT_TIME_SCALE unset (CI): outages up to 60 s last that long for real; longer ones are real only
 * until the appliance has noticed the agent is gone, then the appliance's clock is moved through the rest of the
 * outage in 30 s steps (the scheduler runs at each step), and the agent gives up on a silent request after 15 s
 * (FERRY_IO_TIMEOUT_SECONDS) instead of 60 s. FERRY_FAULT_TIME_SCALE=1: every outage lasts its full length for
 * real, the appliance's clock follows real time (moved every second by the time that passed) and the agent keeps
 * its default timeouts. FERRY_OUTAGES=5s,60s,5m,14m,16m,60m picks outages (default: all; add "lossy" to also run
 * the lossy link when a list is given), so a real-time run can be split over processes.
 *
 * The lossy link: this kernel has no sch_netem, so test/lib/impair.py (two tun devices and a seeded forwarder)
 * is the agent's only way to the appliance: loss, delay with jitter, reordering, a bottleneck.
 */

const REAL_TIME = process.env.FERRY_FAULT_TIME_SCALE === '1';
assert.ok(
  process.env.FERRY_FAULT_TIME_SCALE === undefined || REAL_TIME,
  `FERRY_FAULT_TIME_SCALE="${process.env.FERRY_FAULT_TIME_SCALE}": leave it unset (scaled time) or set it to 1 (real time)`,
);

interface Outage {
  label: string;
  ms: number;
  /** Longer than the appliance's suspend threshold (15 min). */
  suspends: boolean;
}
const OUTAGES: Outage[] = [
  { label: '5s', ms: 5_000, suspends: false },
  { label: '60s', ms: 60_000, suspends: false },
  { label: '5m', ms: 5 * 60_000, suspends: false },
  { label: '14m', ms: 14 * 60_000, suspends: false },
  { label: '16m', ms: 16 * 60_000, suspends: true },
  { label: '60m', ms: 60 * 60_000, suspends: true },
];
const chosen = process.env.FERRY_OUTAGES?.split(',').map((s) => s.trim()).filter(Boolean);
for (const c of chosen ?? []) {
  assert.ok(c === 'lossy' || OUTAGES.some((o) => o.label === c), `FERRY_OUTAGES: unknown "${c}"; choose from ${OUTAGES.map((o) => o.label).join(',')},lossy`);
}
const selected = OUTAGES.filter((o) => !chosen || chosen.includes(o.label));
const runLossy = !chosen || chosen.includes('lossy');
/** Outages up to this long are real in scaled mode too. */
const REAL_UP_TO_MS = 60_000;
/** The promise: a Suspended job resumes by itself within this long of the link returning. */
const RESUME_PROMISE_MS = 30_000;

const IMAGE_MIB = 96;
/** Each outage scenario rewrites this region (whole 1 MiB blocks) and cuts the link after CUT_AFTER_MIB are sent. */
const CHANGE_FIRST_MIB = 8;
const CHANGE_MIB = 48;
const CUT_AFTER_MIB = 12;
const THROTTLE_MBPS = 40;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number): string => (bytes / MIB).toFixed(1);

async function rewrite(file: string, rng: Rng, firstMiB: number, count: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    for (let i = 0; i < count; i++) await fh.write(rng.bytes(MIB), 0, MIB, (firstMiB + i) * MIB);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function rxBytes(ifname: string): Promise<number> {
  return Number((await readFile(`/sys/class/net/${ifname}/statistics/rx_bytes`, 'utf8')).trim());
}

/** A /30 of 198.18.201.0/24 (linkedNamespace index 64–127) not configured on this host yet: parallel runs differ. */
async function freeNamespaceIndex(): Promise<number> {
  const addresses = await sh('ip', ['-4', '-o', 'addr', 'show']);
  for (let k = 0; k < 64; k++) {
    const index = 64 + ((process.pid + k) % 64);
    if (!addresses.includes(` 198.18.201.${(index % 64) * 4 + 1}/`)) return index;
  }
  throw new Error('no free /30 in 198.18.201.0/24 for the network fault test');
}

/** Moves the appliance's clock along with real time, once a second, until stopped. */
function followRealTime(t: TestAppliance): { stop(): Promise<void> } {
  let stopped = false;
  let last = Date.now();
  const loop = (async () => {
    while (!stopped) {
      await sleep(1000);
      const now = Date.now();
      await t.advance(now - last);
      last = now;
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Each run of a cycle (the first, then each resume) and the most it reported sent. */
function runsOf(events: JobProgress[]): number[] {
  const runs: number[] = [];
  let prev = -1;
  for (const p of events) {
    if (runs.length === 0 || (p.resumed && p.bytesSent < prev)) runs.push(p.bytesSent);
    else runs[runs.length - 1] = Math.max(runs.at(-1)!, p.bytesSent);
    prev = p.bytesSent;
  }
  return runs;
}

describe('network outages: the cycle continues, or is Suspended and resumes by itself', { skip: selected.length === 0, timeout: (REAL_TIME ? 180 : 15) * 60_000 }, () => {
  const seed = faultSeed('network outages');
  const rng = new Rng(seed);
  let work: string;
  let ns: LinkedNamespace;
  let t: TestAppliance;
  let ui: UiWatcher;
  let agent: AgentDaemon | null = null;
  let follower: { stop(): Promise<void> } | null = null;
  let loop = '';
  let job: JobView;
  const figures: string[] = [];
  const image = (): string => path.join(work, 'source.img');

  const progressOf = (cycleId?: number): { at: number; p: JobProgress }[] =>
    ui.events
      .filter((e) => e.name === 'job.progress')
      .map((e) => ({ at: e.at, p: e.data as JobProgress }))
      .filter((e) => e.p.jobId === job.id && (cycleId === undefined || e.p.cycleId === cycleId));
  const waitProgress = async (what: string, pred: (p: JobProgress) => boolean, timeoutMs = 120_000): Promise<JobProgress> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = progressOf().find((e) => pred(e.p));
      if (hit) return hit.p;
      assert.ok(Date.now() < deadline, `timed out waiting for progress: ${what}\n${agent?.output()}`);
      await sleep(100);
    }
  };
  /** Scaled: moves the clock 31 s at a time (past the 30 s pause after a failed upload) while the agent is online. Real time: waits. */
  const waitJob = async (what: string, pred: (j: JobView) => boolean, timeoutMs: number): Promise<JobView> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const j = await t.job(job.id);
      if (pred(j)) return j;
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}; job ${JSON.stringify(j)}\n${t.server.appliance.jobs.logText(job.id)}\n${agent?.output()}`);
      if (!REAL_TIME && t.server.appliance.agents.online(job.sourceId)) await t.advance(31_000);
      await sleep(500);
    }
  };
  const setThrottle = (throttle: Partial<JobView['throttle']>): Promise<unknown> =>
    t.admin.json(`${API_PREFIX}/jobs/${job.id}`, { method: 'PATCH', body: { throttle } });
  const transitions = (): Promise<JobTransition[]> => t.admin.json<JobTransition[]>(`${API_PREFIX}/jobs/${job.id}/transitions`);

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-net-'));
    ns = await linkedNamespace('net', await freeNamespaceIndex());
    const data = rng.bytes(IMAGE_MIB * MIB);
    data.fill(0, 0, MIB);
    await writeFile(image(), data);
    loop = (await sh('losetup', ['-f', '--show', image()])).trim();
    t = await startTestAppliance({ listen: `${ns.hostAddress}:0` });
    ui = await watchUi(t);
    const state = path.join(work, 'agent-state');
    await t.enroll(state, 'net-01');
    agent = startAgentDaemon(state, [loop], { netns: ns.name, env: REAL_TIME ? {} : { FERRY_IO_TIMEOUT_SECONDS: '15' } });
    if (REAL_TIME) follower = followRealTime(t);
    const deadline = Date.now() + 60_000;
    while (!t.server.appliance.sources.list().some((s) => s.name === 'net-01' && t.server.appliance.agents.online(s.id))) {
      assert.ok(Date.now() < deadline, `the agent connects from its namespace\n${agent.output()}`);
      await sleep(200);
    }
    const source = t.server.appliance.sources.list().find((s) => s.name === 'net-01')!;
    ({ job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
      method: 'POST',
      body: { sourceId: source.id, intervalSeconds: 24 * 3600, maxPoints: 10, throttle: { networkMbps: 0, diskPercent: 100, queueDepth: 4 } },
    }));
    await t.advance(0);
    await waitJob('the full cycle', (j) => j.state === 'Waiting' && j.pointCount === 1, 180_000);
    await setThrottle({ networkMbps: THROTTLE_MBPS });
  });

  after(async () => {
    if (figures.length > 0) process.stdout.write(`# network outages (${REAL_TIME ? 'real time' : 'scaled time'}):\n${figures.map((f) => `#   ${f}\n`).join('')}`);
    await follower?.stop();
    ui?.close();
    await agent?.kill();
    await t?.close();
    if (loop) await sh('losetup', ['-d', loop]).catch(() => '');
    await ns?.close();
    await rm(work, { recursive: true, force: true });
  });

  for (const outage of selected) {
    const promise = outage.suspends ? 'the job is Suspended, resumes by itself within 30 s of the link returning' : 'the same cycle continues, no Suspended, no InError';
    test(`an outage of ${outage.label} mid-cycle: ${promise}; the point restores byte-equal`, async (tc) => {
      await rewrite(image(), rng, CHANGE_FIRST_MIB, CHANGE_MIB);
      const before = (await t.job(job.id)).pointCount;
      const transitionsBefore = Math.max(0, ...(await transitions()).map((x) => x.id));
      const lastCycle = Math.max(0, ...progressOf().map((e) => e.p.cycleId));
      const rx0 = await rxBytes(ns.hostInterface);
      await t.admin.json(`${API_PREFIX}/jobs/${job.id}/sync-now`, { method: 'POST' });
      await t.advance(0);
      const sending = await waitProgress('the incremental sending', (p) => p.cycleId > lastCycle && p.bytesSent > CUT_AFTER_MIB * MIB && p.bytesChanged > 0);
      const cycleId = sending.cycleId;

      // The outage.
      const cutAt = Date.now();
      await ns.down();
      const clock = REAL_TIME ? null : followRealTime(t);
      let wentOffline = false;
      let watching = true;
      const watchOffline = (async () => {
        while (watching && !wentOffline) {
          wentOffline = !t.server.appliance.agents.online(job.sourceId);
          await sleep(250);
        }
      })();
      if (!REAL_TIME && outage.ms > REAL_UP_TO_MS) {
        const deadline = Date.now() + 60_000;
        while (t.server.appliance.agents.online(job.sourceId)) {
          assert.ok(Date.now() < deadline, 'the appliance notices the agent is gone');
          await sleep(250);
        }
        await clock!.stop();
        let rest = outage.ms - (Date.now() - cutAt);
        while (rest > 0) {
          const step = Math.min(30_000, rest);
          await t.advance(step);
          rest -= step;
        }
      } else {
        await sleep(cutAt + outage.ms - Date.now());
        await clock?.stop();
      }
      watching = false;
      await watchOffline;
      const realOutage = Date.now() - cutAt;
      const state = await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`);
      const ackBefore = state.disks[0]!.nextBlock;
      const blockSize = state.disks[0]!.blockSize;
      const stateBefore = (await t.job(job.id)).state;
      assert.equal(stateBefore, outage.suspends ? 'Suspended' : 'Syncing', `after ${outage.label} away the job is ${outage.suspends ? 'Suspended' : 'still Syncing'}`);

      // The link returns.
      const upAt = Date.now();
      await ns.up();
      let reconnectMs: number | null = null;
      let resumeMs: number | null = null;
      const deadline = upAt + 120_000;
      while ((wentOffline && reconnectMs === null) || (outage.suspends && resumeMs === null)) {
        if (reconnectMs === null && t.server.appliance.agents.online(job.sourceId)) reconnectMs = Date.now() - upAt;
        if (outage.suspends && resumeMs === null && (await t.job(job.id)).state !== 'Suspended') resumeMs = Date.now() - upAt;
        assert.ok(Date.now() < deadline, `the agent comes back within 120 s of the link; job log:\n${t.server.appliance.jobs.logText(job.id)}\n${agent?.output()}`);
        await sleep(100);
      }
      if (outage.suspends) assert.ok(resumeMs! <= RESUME_PROMISE_MS, `resumed by itself ${resumeMs} ms after the link returned (promised: within ${RESUME_PROMISE_MS} ms)`);

      const done = await waitJob('the cycle to complete after the outage', (j) => j.pointCount === before + 1 && j.state === 'Waiting', REAL_TIME ? 10 * 60_000 : 180_000);
      assert.equal(done.error, null);
      const rx = (await rxBytes(ns.hostInterface)) - rx0;

      const since = (await transitions()).filter((x) => x.id > transitionsBefore);
      const path_ = since.map((x) => `${x.to} (${x.cause})`).join('; ');
      assert.ok(!since.some((x) => x.to === 'InError'), `no InError: ${path_}`);
      if (outage.suspends) {
        const back = since.findIndex((x) => x.from === 'Suspended');
        assert.ok(since.some((x) => x.to === 'Suspended'), `Suspended: ${path_}`);
        assert.ok(back >= 0 && /reachable again/.test(since[back]!.cause) && since[back]!.to === 'Syncing', `resumed by itself, the cycle in progress: ${path_}`);
      } else {
        assert.ok(!since.some((x) => x.to === 'Suspended'), `no Suspended: ${path_}`);
      }

      // The same cycle, continued: no other cycle started, this one committed, nothing acknowledged sent again.
      assert.ok(!progressOf().some((e) => e.p.cycleId > cycleId), 'no new cycle was started');
      assert.equal((await t.admin.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`)).state, 'committed', `cycle ${cycleId} is the one committed`);
      const runs = runsOf(progressOf(cycleId).map((e) => e.p));
      const changed = CHANGE_MIB * MIB;
      const changedEnd = (CHANGE_FIRST_MIB * MIB + changed) / blockSize;
      const unacknowledged = Math.max(0, changedEnd - Math.max(ackBefore, (CHANGE_FIRST_MIB * MIB) / blockSize)) * blockSize;
      const slack = (n: number): number => n * 1.01 + MIB;
      if (runs.length === 1) {
        assert.ok(runs[0]! <= slack(changed), `one run sent ${mib(runs[0]!)} MiB for ${mib(changed)} MiB changed`);
      } else {
        assert.ok(runs.at(-1)! <= slack(unacknowledged), `the last resume sent ${mib(runs.at(-1)!)} MiB; not acknowledged before the link returned: ${mib(unacknowledged)} MiB`);
      }
      const sent = runs.reduce((a, b) => a + b, 0);
      const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
      await restoreEquals(t, points.at(-1)!.id, image(), work);

      const line =
        `${outage.label}: link down ${(realOutage / 1000).toFixed(1)} s real` +
        (realOutage + 1000 < outage.ms ? ` + ${((outage.ms - realOutage) / 1000).toFixed(0)} s on the appliance's clock` : '') +
        `, ${wentOffline ? `control channel dropped, back ${(reconnectMs! / 1000).toFixed(1)} s after the link` : 'control channel stayed up'}` +
        (resumeMs !== null ? `, Suspended → Syncing ${(resumeMs / 1000).toFixed(1)} s after the link` : '') +
        `, ${runs.length} run(s) of cycle ${cycleId}, sent ${mib(sent)} MiB for ${mib(changed)} MiB changed (re-sent ${mib(Math.max(0, sent - changed))} MiB;` +
        ` unacknowledged when the link returned ${mib(unacknowledged)} MiB), ${mib(rx)} MiB on the wire; restored byte-equal`;
      figures.push(line);
      tc.diagnostic(line);
      process.stdout.write(`# ${line}\n`);
    });
  }
});

/** `ferry-restore` run inside the namespace, so the restore crosses the impaired link too. */
function restoreIn(link: ImpairedLink, t: TestAppliance, pointId: number, target: string): Promise<{ code: number | null; output: string }> {
  const argv = link.exec([
    process.execPath,
    path.join(ROOT, 'restore-pe/bin/ferry-restore.js'),
    '--appliance', t.server.url,
    '--fingerprint', t.server.fingerprint,
    '--token', t.admin.credential!,
    '--point', String(pointId),
    '--target', target,
  ]);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('a lossy, slow, reordering link: the restored disk is byte-equal', { skip: !runLossy, timeout: 15 * 60_000 }, () => {
  const seed = faultSeed('network lossy link');
  const rng = new Rng(seed);
  const impairment: Impairment = { seed, loss: 0.02, delayMs: 20, jitterMs: 10, reorder: 0.05, reorderMs: 15, rateMbit: 40, queueMs: 100 };
  const LOSSY_MIB = 48;
  let work: string;
  let link: ImpairedLink | null = null;
  let t: TestAppliance;
  let agent: AgentDaemon | null = null;
  let loop = '';
  const image = (): string => path.join(work, 'lossy.img');

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-lossy-'));
    link = await impairedLink('lsy', process.pid % 250, impairment);
    // Part random, part zero (zero blocks are not sent), part repeated (deduplicated).
    const data = Buffer.alloc(LOSSY_MIB * MIB);
    rng.bytes(32 * MIB).copy(data, 0);
    data.copy(data, 40 * MIB, 8 * MIB, 16 * MIB);
    await writeFile(image(), data);
    loop = (await sh('losetup', ['-f', '--show', image()])).trim();
    t = await startTestAppliance({ listen: `${link.hostAddress}:0` });
  });

  after(async () => {
    await agent?.kill();
    await t?.close();
    if (loop) await sh('losetup', ['-d', loop]).catch(() => '');
    await link?.close();
    await rm(work, { recursive: true, force: true });
  });

  test(`${impairment.loss * 100} % loss, ${impairment.delayMs} ± ${impairment.jitterMs} ms, ${impairment.reorder * 100} % reordered, ${impairment.rateMbit} Mbit/s: full, incremental, restore over the link`, async (tc) => {
    const state = path.join(work, 'agent-state');
    await t.enroll(state, 'lossy-01');
    agent = startAgentDaemon(state, [loop], { netns: link!.name });
    let deadline = Date.now() + 60_000;
    while (!t.server.appliance.sources.list().some((s) => s.name === 'lossy-01' && t.server.appliance.agents.online(s.id))) {
      assert.ok(Date.now() < deadline, `the agent connects over the impaired link\n${agent.output()}`);
      await sleep(200);
    }
    const source = t.server.appliance.sources.list().find((s) => s.name === 'lossy-01')!;
    const { job } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
      method: 'POST',
      body: { sourceId: source.id, intervalSeconds: 24 * 3600, maxPoints: 3, throttle: { networkMbps: 0, diskPercent: 100, queueDepth: 4 } },
    });
    const cycle = async (what: string, points: number): Promise<number> => {
      const t0 = Date.now();
      await t.advance(0);
      deadline = Date.now() + 5 * 60_000;
      for (;;) {
        const j = await t.job(job.id);
        if (j.state === 'Waiting' && j.pointCount === points) break;
        assert.ok(j.state !== 'InError' && Date.now() < deadline, `${what}: job ${JSON.stringify(j)}\n${t.server.appliance.jobs.logText(job.id)}\n${agent?.output()}`);
        // A failed upload pauses the job 30 s (of the appliance's clock) before it continues.
        if (t.server.appliance.agents.online(job.sourceId)) await t.advance(31_000);
        await sleep(500);
      }
      return Date.now() - t0;
    };
    const fullMs = await cycle('the full cycle', 1);
    await scribble(image(), rng, 8);
    await t.admin.json(`${API_PREFIX}/jobs/${job.id}/sync-now`, { method: 'POST' });
    const incrementalMs = await cycle('the incremental', 2);
    const points = await t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${job.id}/points`);
    const moves = await t.admin.json<JobTransition[]>(`${API_PREFIX}/jobs/${job.id}/transitions`);
    assert.ok(!moves.some((x) => x.to === 'InError' || x.to === 'Suspended'), `no InError, no Suspended: ${moves.map((x) => x.to).join(' → ')}`);

    const target = path.join(work, 'restored.img');
    const r0 = Date.now();
    const r = await restoreIn(link!, t, points.at(-1)!.id, target);
    const restoreMs = Date.now() - r0;
    assert.equal(r.code, 0, `ferry-restore inside the namespace:\n${r.output}`);
    assert.ok((await readFile(target)).equals(await readFile(image())), 'the last point, restored over the impaired link, is byte-equal');

    // The agent's connections close over the link while it still forwards (else the appliance waits for them).
    await agent.kill();
    for (let i = 0; i < 100 && (await sh('ss', ['-Htn', 'state', 'established', 'dst', link!.nsAddress])).trim() !== ''; i++) await sleep(100);
    const c: ImpairCounters = await link!.stop();
    assert.ok(c.dropped > 0, `packets were dropped: ${JSON.stringify(c)}`);
    assert.ok(c.reordered > 0, `packets were reordered: ${JSON.stringify(c)}`);
    const line =
      `lossy link (${JSON.stringify(impairment)}): full ${(fullMs / 1000).toFixed(1)} s (${mib(points[0]!.bytesSent)} MiB sent), ` +
      `incremental ${(incrementalMs / 1000).toFixed(1)} s (${mib(points[1]!.bytesSent)} MiB), restore ${(restoreMs / 1000).toFixed(1)} s; ` +
      `impairer: ${c.forwarded} packets forwarded (${mib(c.bytes)} MiB), ${c.dropped} dropped at random, ${c.queueDropped} by the full queue, ` +
      `${c.heldBack} held back, ${c.reordered} delivered out of order; restored byte-equal`;
    tc.diagnostic(line);
    process.stdout.write(`# ${line}\n`);
  });
});
