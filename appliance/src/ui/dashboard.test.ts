import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentCycle, block, BLOCK, harness, newSource, SUSPEND_AFTER_S, type Harness } from '../jobs/test-harness.js';
import { DashboardRepository, DashboardService, LOW_SPACE_ERROR, LOW_SPACE_WARNING } from './dashboard.js';
import type { PassiveSourceView } from '@ferry/protocol';

/*
 * The dashboard over a real catalog and chunk store (cycles uploaded and committed as an agent does) and a real
 * filesystem: the data directory's space is read from a 64 MiB ext4 image on a loop device, made with mkfs.ext4's
 * default 5 % of blocks reserved for root, so free blocks and available blocks differ as on a real data disk.
 */

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** df's own numbers for a mount point, in bytes. */
function df(dir: string): { size: number; used: number; avail: number } {
  const [size, used, avail] = run('df', ['-B1', '--output=size,used,avail', dir]).trim().split('\n').pop()!.trim().split(/\s+/).map(Number);
  return { size: size!, used: used!, avail: avail! };
}

/** Sum of the sizes of every file under dir. */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? bytesUnder(p) : statSync(p).size;
  }
  return n;
}

describe('DashboardService', () => {
  let work: string;
  let mnt: string;
  let dev: string | undefined;
  let mounted = false;
  let h: Harness;
  let dashboard: DashboardService;
  let passiveViews: PassiveSourceView[] = [];

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'ferry-dashboard-'));
    const img = path.join(work, 'data.img');
    mnt = path.join(work, 'mnt');
    mkdirSync(mnt);
    run('truncate', ['-s', '64M', img]);
    run('mkfs.ext4', ['-q', '-F', '-m', '5', img]);
    dev = run('losetup', ['-f', '--show', img]).trim();
    run('mount', [dev, mnt]);
    mounted = true;
    h = await harness();
    dashboard = new DashboardService({
      repo: new DashboardRepository(h.a.db),
      dataDir: mnt,
      jobs: () => h.a.jobs.list(),
      restores: () => h.a.restores.list(),
      passive: () => passiveViews,
      online: (id) => h.agents.online(id),
    });
  });

  after(() => {
    h?.close();
    try {
      if (mounted) run('umount', [mnt]);
    } finally {
      if (dev) run('losetup', ['-d', dev]);
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('used and free are what df shows as Used and Avail, and add up to the total', async () => {
    const { storage } = await dashboard.summary();
    const d = df(mnt);
    assert.equal(storage.usedBytes, d.used);
    assert.equal(storage.freeBytes, d.avail);
    assert.equal(storage.usedBytes + storage.freeBytes, storage.totalBytes);
    // The root reserve is the difference to df's Size: without it, used (blocks − free) + avail would fall short.
    assert.ok(storage.totalBytes < d.size, `total ${storage.totalBytes} leaves out the ${d.size - storage.totalBytes} bytes reserved for root`);
  });

  test('no space alert above 15 % free, a warning below it, an error below 5 %', async () => {
    const { storage } = await dashboard.summary();
    const total = storage.totalBytes;
    let n = 0;
    /** Fills the filesystem until `share` of it is free (the total stays: used grows as available shrinks). */
    const leaveFree = async (share: number): Promise<number> => {
      const now = (await dashboard.summary()).storage;
      const fill = Math.floor((now.freeBytes - share * total) / 4096) * 4096;
      if (fill > 0) run('fallocate', ['-l', String(fill), path.join(mnt, `fill-${n++}`)]);
      const after = (await dashboard.summary()).storage;
      assert.equal(after.totalBytes, total, 'used + free stays the total');
      return after.freeBytes / total;
    };
    const lowSpace = async () => (await dashboard.summary()).alerts.filter((a) => a.kind === 'storage-low');

    const plenty = await leaveFree(LOW_SPACE_WARNING + 0.05);
    assert.ok(plenty > LOW_SPACE_WARNING, `${plenty} free`);
    assert.deepEqual(await lowSpace(), []);

    const low = await leaveFree((LOW_SPACE_WARNING + LOW_SPACE_ERROR) / 2);
    assert.ok(low < LOW_SPACE_WARNING && low > LOW_SPACE_ERROR, `${low} free`);
    const warning = await lowSpace();
    assert.equal(warning.length, 1);
    assert.equal(warning[0]!.level, 'warning');
    assert.equal(warning[0]!.message, `${(low * 100).toFixed(1)} % of the appliance's storage is free`);

    const critical = await leaveFree(LOW_SPACE_ERROR / 2);
    assert.ok(critical < LOW_SPACE_ERROR, `${critical} free`);
    const error = await lowSpace();
    assert.equal(error.length, 1);
    assert.equal(error[0]!.level, 'error');
    for (let i = 0; i < n; i++) rmSync(path.join(mnt, `fill-${i}`));
  });

  test('deduplication is what the points describe ÷ the unique chunks written, compression those ÷ the chunk files', async () => {
    const empty = (await dashboard.summary()).storage;
    assert.deepEqual([empty.dedupeRatio, empty.compressionRatio], [null, null], 'no data, no ratio');
    const sourceId = newSource(h, 'ratios');
    const [a, b, c, d, e] = [block(1), block(2), block(3), block(4), block(5)];
    const stats = (changedBlocks: number) => ({ bytesRead: 4 * BLOCK, bytesCompared: 4 * BLOCK, bytesChanged: changedBlocks * BLOCK, bytesSent: 0, seconds: 1 });
    // The full cycle: four new blocks, four new chunks.
    await agentCycle(h, sourceId, [a, b, c, d], undefined, stats(4));
    // The next: blocks 2 and 3 changed, one to a new chunk (e), one to a chunk the store holds already (a).
    await agentCycle(h, sourceId, [a, b, e, a], undefined, stats(2));
    const s = (await dashboard.summary()).storage;
    assert.equal(s.logicalBytes, 8 * BLOCK, 'two points of four data blocks');
    assert.equal(s.changedBytes, 6 * BLOCK, 'as the agent reported it');
    assert.equal(s.newChunkBytes, 5 * BLOCK, 'five distinct chunks were written');
    assert.equal(s.storedBytes, bytesUnder(path.join(h.dir, 'chunks')), 'stored is what the chunk files take');
    assert.equal(s.dedupeRatio, 8 / 5);
    assert.equal(s.compressionRatio, (5 * BLOCK) / s.storedBytes);
    const overall = s.logicalBytes / s.storedBytes;
    assert.ok(Math.abs(s.dedupeRatio * s.compressionRatio - overall) < overall * 1e-12, 'together: what the points describe ÷ what is stored');
    assert.equal((await dashboard.summary()).points, 2);
  });

  test('a job in error raises an error alert with its message, a suspended one a warning', async () => {
    const lost = newSource(h, 'lost');
    const suspended = h.a.jobs.create({ sourceId: lost, intervalSeconds: 3600, maxPoints: 2 }).job.id;
    const broken = newSource(h, 'broken');
    const failing = h.a.jobs.create({ sourceId: broken, intervalSeconds: 3600, maxPoints: 2 }).job.id;
    h.agents.connect(broken);
    await h.a.jobs.tick();
    await agentCycle(h, broken, [block(7), block(8)], 1);
    h.a.jobs.cycleFailed(broken, { jobId: failing, cycleId: null, code: 'DISK_UNREADABLE', message: 'read error at offset 4096' });
    // The agent of `lost` never connected: past the suspend delay its job is Suspended; `broken`'s stays online.
    h.clock.advance((SUSPEND_AFTER_S + 1) * 1000);
    await h.a.jobs.tick();
    assert.equal(h.a.jobs.get(suspended).state, 'Suspended');
    assert.equal(h.a.jobs.get(failing).state, 'InError');

    const summary = await dashboard.summary();
    const jobAlerts = summary.alerts.filter((x) => x.jobId !== null).map((x) => ({ level: x.level, kind: x.kind, jobId: x.jobId }));
    assert.deepEqual(
      jobAlerts.sort((x, y) => x.jobId! - y.jobId!),
      [
        { level: 'warning', kind: 'job-suspended', jobId: suspended },
        { level: 'error', kind: 'job-error', jobId: failing },
      ],
    );
    assert.match(summary.alerts.find((x) => x.jobId === failing)!.message, /^broken: .*read error at offset 4096/);
    assert.match(summary.alerts.find((x) => x.jobId === suspended)!.message, /^lost: the source has been unreachable/);
    assert.equal(summary.jobs.inError, 1);
    assert.equal(summary.jobs.suspended, 1);
    assert.deepEqual(summary.sources, { total: 3, online: 1 });
  });

  test('a passive source whose login was refused or whose host key changed raises an alert that links to it', async () => {
    const view = (sourceId: number, name: string, state: PassiveSourceView['state'], message: string): PassiveSourceView => ({
      sourceId,
      name,
      host: '198.18.0.9',
      port: 22,
      username: 'root',
      auth: 'password',
      disks: null,
      state,
      message,
      code: state === 'failed' ? 'SSH_AUTH_FAILED' : null,
      hostKey: null,
      presentedHostKey: null,
      agentVersion: null,
      updatedAt: '2026-03-01T08:00:00.000Z',
    });
    passiveViews = [view(41, 'db-01', 'failed', 'root@198.18.0.9:22 refused the login (password)'), view(42, 'db-02', 'running', 'agent running'), view(43, 'db-03', 'host-key-changed', 'the host key is not the trusted one')];
    try {
      const alerts = (await dashboard.summary()).alerts.filter((a) => a.kind === 'source-failed');
      assert.deepEqual(
        alerts.map((a) => [a.level, a.sourceId, a.message]),
        [
          ['error', 41, 'db-01: root@198.18.0.9:22 refused the login (password)'],
          ['error', 43, 'db-03: the host key is not the trusted one'],
        ],
      );
    } finally {
      passiveViews = [];
    }
  });
});
