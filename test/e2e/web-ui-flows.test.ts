import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  API_PREFIX,
  RESTORE_CODE_PATTERN,
  type ApplianceSettings,
  type DashboardSummary,
  type JobActionResult,
  type JobLogEntry,
  type JobPoint,
  type JobTransition,
  type JobView,
  type PassiveCredentialsRequest,
  type PassiveSourceView,
  type RestoreView,
  type SourceView,
  type UserView,
} from '@ferry/protocol';
import type { Locator, Page } from 'playwright-core';
import { ROOT, sh } from '../lib/cli.js';
import { ensureAgentBinary } from '../lib/agent-binary.js';
import { createPartitionedImage, withMounted } from '../lib/disk-image.js';
import { startAgentDaemon, startTestAppliance, type AgentDaemon, type TestAppliance } from '../lib/jobs.js';
import { linkedNamespace, type LinkedNamespace } from '../lib/netns.js';
import { keygenFingerprint, startSshd, type Sshd } from '../lib/sshd.js';
import { focused, horizontalOverflow, logIn, navLink, recordInPage, startBrowser, tabTo, waitUntil, type TestBrowser } from '../lib/browser.js';

/*
 * The web UI's flows that test/e2e/web-ui.test.ts does not walk, in Debian's headless Chromium: every job action
 * through its confirmation, the job page's live content (chart, ETA, per-disk bars, points, state history, log
 * with filter and download), a restore followed live by phase while the real restore program writes an image
 * file, a passive source against a real sshd in a network namespace (and its refused login mended with Change
 * credentials…), the Dashboard beside a running cycle, a job in error and the storage it reads, a job created paused
 * with exclusions and throttles, keyboard-only use, every route at laptop and tablet sizes, users and roles, default
 * throttles, the sources list and a source's used/unused bar.
 *
 * One appliance (in-process, real HTTPS/socket.io/SQLite), one agent process backing up a GPT disk image, one
 * browser. The appliance listens on the host end of a veth pair into a namespace (198.18.0.0/15) that holds the
 * sshd of the passive source and runs the restore program, whose link is shaped (htb) to 48 Mbit/s so a restore
 * lasts long enough to be watched. A step that fails because the UI is wrong keeps asserting the right behaviour.
 */

const MIB = 1024 * 1024;
/** The test's sshd listens here too: a second passive source on the same address. */
const SECOND_SSH_PORT = 2222;
const ADMIN = 'admin';
const PASSWORD = 'correct horse battery staple';
const SOURCE = 'flow-src';
/** Where `ferry-agent passive` lands on the source (this machine's root, reached over SSH). */
const REMOTE_DIR = path.join(os.homedir(), '.ferry-agent');
/** The restore program's link while a restore is watched: 128 MiB of disk with ~40 MiB of data takes ~8 s. */
const RESTORE_LINK = '48mbit';

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The web UI's byte sizes ("40.1 MiB") back to bytes, and how far off the rounding may put them. */
function parseBytes(text: string): { bytes: number; slack: number } {
  const m = /^(-?[\d.]+) (B|KiB|MiB|GiB|TiB)$/.exec(text.trim());
  assert.ok(m, `"${text}" is a size the UI formats`);
  const scale = 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB'].indexOf(m[2]!);
  const decimals = m[1]!.split('.')[1]?.length ?? 0;
  return { bytes: Number(m[1]) * scale, slack: (0.5 * scale) / 10 ** decimals };
}

function assertBytes(text: string, expected: number, what: string): void {
  const { bytes, slack } = parseBytes(text);
  assert.ok(Math.abs(bytes - expected) <= slack + 1e-9, `${what}: the page shows ${text}, the appliance says ${expected} bytes`);
}

/** The UI's durations ("1m 5s", "12s", "2h 3m") in seconds. */
function parseDuration(text: string): number {
  const m = /^(?:(\d+)d )?(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+)s)?$/.exec(text.trim());
  assert.ok(m && text.trim() !== '', `"${text}" is a duration the UI formats`);
  const [d, h, min, s] = [m[1], m[2], m[3], m[4]].map((v) => Number(v ?? 0)) as [number, number, number, number];
  return d * 86400 + h * 3600 + min * 60 + s;
}

/** The `<dt>` → `<dd>` texts of the description lists under `selector`. */
function definitions(page: Page, selector: string): Promise<Record<string, string>> {
  return page.evaluate<Record<string, string>>(`(() => {
    const out = {};
    for (const dt of document.querySelectorAll(${JSON.stringify(`${selector} dt`)})) {
      const dd = dt.nextElementSibling;
      if (dd && dd.tagName === 'DD') out[dt.textContent.trim()] = dd.textContent.replace(/\\s+/g, ' ').trim();
    }
    return out;
  })()`);
}

/** The cells' texts of each body row of the first table under `selector`. */
function tableRows(page: Page, selector: string): Promise<string[][]> {
  return page.evaluate<string[][]>(`(() => {
    const table = document.querySelector(${JSON.stringify(selector)});
    if (!table) return [];
    return [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent.replace(/\\s+/g, ' ').trim()));
  })()`);
}

/** The outermost elements whose right edge is past the window's, to name what makes a page scroll sideways. */
function sticksOut(page: Page): Promise<string> {
  return page.evaluate<string>(`(() => {
    const w = window.innerWidth;
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      const parent = el.parentElement?.getBoundingClientRect();
      if (r.right > w + 0.5 && (!parent || parent.right <= w + 0.5)) {
        out.push(el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).trim().replace(/\\s+/g, '.') : '') + ' (right edge ' + Math.round(r.right) + ' px) "' + (el.textContent ?? '').trim().slice(0, 80) + '"');
      }
    }
    return out.slice(0, 4).join('; ');
  })()`);
}

describe('web UI flows in a real browser', { timeout: 12 * 60_000 }, () => {
  let work: string;
  let ns: LinkedNamespace;
  let sshd: Sshd | undefined;
  let t: TestAppliance;
  let agent: AgentDaemon | undefined;
  let b: TestBrowser;
  let image: string;
  let clientKey: string;
  let hadRemoteDir = true;
  let sourceId = 0;
  /** The job driven through the UI from creation to Completed. */
  let jobId = 0;
  let restoredPointId = 0;
  let passiveId = 0;
  /** The passive source whose login was refused, then given the right key. */
  let wrongId = 0;

  const url = (route: string): string => `${t.server.url}/#${route}`;
  const job = (id = jobId): Promise<JobView> => t.job(id);
  const points = (id = jobId): Promise<JobPoint[]> => t.admin.json<JobPoint[]>(`${API_PREFIX}/jobs/${id}/points`);
  const transitions = (id = jobId): Promise<JobTransition[]> => t.admin.json<JobTransition[]>(`${API_PREFIX}/jobs/${id}/transitions`);
  const dialog = (): Locator => b.page.getByRole('dialog');
  const stateShown = (page: Page, state: JobView['state']): Promise<void> => page.locator(`[data-testid="job-state"][data-state="${state}"]`).waitFor({ timeout: 120_000 });
  const diag = (id: number): string => `\njob: ${t.server.appliance.jobs.logText(id)}\nagent: ${agent?.output().slice(-3000) ?? ''}`;

  /** Loads a route in a new document: nothing an earlier step left open (a dialog after a failure) stays. */
  async function fresh(route: string): Promise<void> {
    await b.page.goto(url(route));
    await b.page.reload();
    await b.page.locator('main h1').first().waitFor();
  }

  /** Opens an action's confirmation, checks what it says, confirms it, and returns the appliance's answer shown on the page. */
  async function confirmAction(action: string, body: string, confirm: string, inside?: () => Promise<void>): Promise<string> {
    const { page } = b;
    await page.getByTestId(`action-${action}`).click();
    const d = dialog();
    await d.getByText(body, { exact: true }).waitFor();
    if (inside) await inside();
    await d.getByRole('button', { name: confirm, exact: true }).click();
    await d.waitFor({ state: 'detached' });
    return (await page.getByTestId('action-message').innerText()).trim();
  }

  /** A job made over the API for the same source, with its full cycle done (the chunks are there already: quick). */
  async function jobWithPoints(n: number): Promise<number> {
    const { job: j } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
      method: 'POST',
      body: { sourceId, intervalSeconds: 24 * 3600, maxPoints: 5, throttle: { networkMbps: 0, diskPercent: 100, queueDepth: 4 } },
    });
    await t.waitFor('the full cycle', j.id, (v) => v.state === 'Waiting' && v.pointCount === 1, 180_000);
    for (let i = 2; i <= n; i++) {
      await t.admin.json(`${API_PREFIX}/jobs/${j.id}/sync-now`, { method: 'POST' });
      await t.waitFor(`point ${i}`, j.id, (v) => v.state === 'Waiting' && v.pointCount === i, 180_000);
    }
    return j.id;
  }

  /**
   * The Dashboard in a second tab of the same session, as an engineer keeps it open beside a job's page, marked so a
   * reload would show; `replies()` gives every summary it read (GET /dashboard), in order.
   */
  async function openDashboard(): Promise<{ page: Page; replies(): Promise<DashboardSummary[]> }> {
    const page = await b.context.newPage();
    const replies: Promise<DashboardSummary | null>[] = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname === `${API_PREFIX}/dashboard`) {
        replies.push(
          r.json().then(
            (body: { data: DashboardSummary }) => body.data,
            () => null,
          ),
        );
      }
    });
    await page.goto(url('/'));
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.getByTestId('storage-used').waitFor();
    await page.evaluate('window.__sameDocument = true');
    return { page, replies: async () => (await Promise.all(replies)).filter((x): x is DashboardSummary => x !== null) };
  }

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-web-flows-'));
    // The passive source's agent is the single-file executable the appliance uploads.
    await ensureAgentBinary();
    hadRemoteDir = await exists(REMOTE_DIR);
    ns = await linkedNamespace('wuf', 5);
    for (const name of ['host', 'client']) await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(work, name)]);
    await writeFile(path.join(work, 'authorized_keys'), await readFile(path.join(work, 'client.pub')));
    await chmod(path.join(work, 'host'), 0o600);
    clientKey = await readFile(path.join(work, 'client'), 'utf8');
    sshd = await startSshd(ns, work, path.join(work, 'host'), [22, SECOND_SSH_PORT]);

    // A GPT disk: ext4 with 32 MiB of incompressible files, swap, free space.
    image = path.join(work, 'source.img');
    await createPartitionedImage(image, 'gpt', 128, 104, 8);
    await withMounted(image, 1, async (dir) => {
      for (let i = 0; i < 4; i++) await writeFile(path.join(dir, `data-${i}.bin`), randomBytes(8 * MIB));
    });

    t = await startTestAppliance({ listen: `${ns.hostAddress}:0`, passive: { retryMs: 3000, ssh: { keepaliveIntervalMs: 1000, keepaliveCountMax: 3 } } });
    // The first admin, made the way the first-start page makes it (web-ui.test.ts walks that page).
    await t.admin.json(`${API_PREFIX}/setup`, { method: 'POST', body: { username: ADMIN, password: PASSWORD } });
    const state = path.join(work, 'agent-state');
    await t.enroll(state, SOURCE);
    agent = startAgentDaemon(state, [image]);
    sourceId = t.server.appliance.sources.list().find((s) => s.name === SOURCE)!.id;
    await waitUntil('the agent to connect', () => Promise.resolve(t.server.appliance.agents.online(sourceId)), 60_000);
    b = await startBrowser();
  });

  after(async () => {
    await b?.close().catch(() => undefined);
    await agent?.kill().catch(() => undefined);
    await t?.close().catch(() => undefined);
    await sshd?.stop().catch(() => undefined);
    await ns?.close().catch(() => undefined);
    if (!hadRemoteDir) await rm(REMOTE_DIR, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('keyboard only: log in by typing and Enter; Tab reaches the skip link first; focus is drawn', async () => {
    const { page } = b;
    await page.goto(t.server.url);
    await page.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
    await tabTo(page, 'the user name field', (el) => el.name === 'username');
    await page.keyboard.type(ADMIN);
    await page.keyboard.press('Tab');
    const pw = await focused(page);
    assert.equal(pw.name, 'password', 'Tab goes from the user name to the password');
    assert.ok(pw.visible, `the focused password field is drawn with a focus indicator (${pw.outline}; ${pw.boxShadow})`);
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.getByTestId('user').getByText(ADMIN).waitFor();

    // A page opened afresh: the first Tab lands on the skip link, which shows itself with a focus indicator.
    await page.reload();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.keyboard.press('Tab');
    const skip = await focused(page);
    assert.equal(skip.text, 'Skip to content', `the first Tab reaches the skip link, not ${skip.tag} "${skip.text}"`);
    assert.ok(skip.visible, `the skip link has a visible focus indicator (${skip.outline}; ${skip.boxShadow})`);
    const box = await page.locator('a.skip').boundingBox();
    assert.ok(box && box.x >= 0 && box.y >= 0, `the focused skip link is on screen (${JSON.stringify(box)})`);
    // Every stop of the header (brand, navigation, language, log out) draws its focus.
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      const el = await focused(page);
      assert.ok(el.visible, `${el.tag} "${el.text}" has a visible focus indicator (${el.outline}; ${el.boxShadow})`);
      if (el.testid === 'logout') break;
    }
  });

  test('keyboard only: the skip link moves focus to the page content and keeps the page', async () => {
    const { page } = b;
    await page.goto(url('/jobs'));
    await page.reload();
    await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal((await focused(page)).text, 'Skip to content');
    await page.keyboard.press('Enter');
    await new Promise((r) => setTimeout(r, 300));
    const hash = await page.evaluate<string>('location.hash');
    const heading = await page.locator('main h1').first().innerText();
    const inMain = await page.evaluate<boolean>("document.getElementById('main')?.contains(document.activeElement) ?? false");
    await page.goto(url('/'));
    assert.equal(heading, 'Jobs', `the skip link keeps the Jobs page (it showed "${heading}", address ${hash})`);
    assert.equal(hash, '#/jobs', 'the skip link does not change the route');
    assert.ok(inMain, 'focus is inside the main content after the skip link');
  });

  test('default throttles saved on the Appliance page prefill a new job; its page shows the chart, ETA and per-disk progress while the full cycle runs', async () => {
    const { page } = b;
    await navLink(page, 'Appliance').click();
    const defaults = page.locator('section[aria-labelledby="defaults-h"]');
    await defaults.getByLabel('Network limit (Mbit/s)').fill('16');
    await defaults.getByLabel('Disk time (%)').fill('40');
    await defaults.getByLabel('Reads in flight').fill('3');
    await defaults.getByRole('button', { name: 'Save' }).click();
    await defaults.getByText('Saved.').waitFor();
    const wanted = { networkMbps: 16, diskPercent: 40, queueDepth: 3 };
    assert.deepEqual((await t.admin.json<ApplianceSettings>(`${API_PREFIX}/settings`)).defaultThrottle, wanted);

    await navLink(page, 'Jobs').click();
    await page.getByTestId('new-job').click();
    await page.getByTestId('job-source').selectOption({ label: SOURCE });
    assert.equal(await page.getByLabel('Network limit (Mbit/s)').inputValue(), '16', 'the job form takes the default network limit');
    assert.equal(await page.getByLabel('Disk time (%)').inputValue(), '40');
    assert.equal(await page.getByLabel('Reads in flight').inputValue(), '3');
    await page.getByLabel('Sync every').fill('6');
    await page.getByLabel('Keep at most (points)').fill('4');
    const bar = await recordInPage(page, 'bar', `document.querySelector('[data-testid="job-progress"]')?.getAttribute('data-value') ?? ''`);
    await page.getByTestId('create-job').click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    jobId = Number(/#\/jobs\/(\d+)$/.exec(page.url())![1]);
    const created = await job();
    assert.deepEqual(created.throttle, wanted, 'the new job got the default throttles');
    assert.equal(created.intervalSeconds, 6 * 3600);
    assert.equal(created.maxPoints, 4);

    // During the cycle (16 Mbit/s: ~2 MB/s for the 32 MiB of files): the chart draws, the ETA and each disk's bar show.
    const polyline = page.locator('figure.chart svg polyline');
    const drawn = await waitUntil('the throughput chart to draw a line', async () => {
      const pts = (await polyline.count()) > 0 ? ((await polyline.getAttribute('points')) ?? '') : '';
      return pts.trim().split(/\s+/).length >= 2 ? pts : null;
    }).catch((err: unknown) => assert.fail(`${String(err)}${diag(jobId)}`));
    for (const xy of drawn.trim().split(/\s+/)) assert.match(xy, /^\d+(\.\d+)?,\d+(\.\d+)?$/, `a chart point is x,y: ${xy}`);
    assert.match((await page.locator('figure.chart figcaption').innerText()).trim(), /top of the chart [\d.]+ (B|KiB|MiB|GiB)\/s/);

    const eta = await waitUntil('an ETA', async () => {
      const kv = await definitions(page, 'section[aria-labelledby="progress-h"] dl.kv');
      return kv.ETA && kv.ETA !== '—' ? kv : null;
    });
    assert.ok(parseDuration(eta.ETA!) >= 0, `ETA ${eta.ETA}`);
    assert.match(eta.Rate!, /\/s$/, `the rate shows: ${eta.Rate}`);
    const live = await job();
    assert.equal(live.state, 'Syncing', 'all of this showed while the cycle ran');
    const diskKeys = (await t.admin.json<SourceView>(`${API_PREFIX}/sources/${sourceId}`)).disks.map((d) => d.key);
    const diskRows = page.locator('.disk-progress');
    await waitUntil('a progress bar per disk', async () => (await diskRows.count()) === diskKeys.length);
    for (let i = 0; i < diskKeys.length; i++) {
      const row = diskRows.nth(i);
      assert.equal((await row.locator('span').first().innerText()).trim(), diskKeys[i]);
      const pb = row.getByRole('progressbar', { name: `Progress of ${diskKeys[i]}` });
      const v = Number(await pb.getAttribute('data-value'));
      assert.ok(v >= 0 && v <= 100, `disk bar at ${v} %`);
      assert.match(await row.locator('span.small').innerText(), /^[\d.]+ (B|KiB|MiB|GiB) \/ [\d.]+ (B|KiB|MiB|GiB)$/);
    }
    const [first, later] = await waitUntil('the bar to move', async () => {
      const values = (await bar.values()).map(Number).filter((v) => v > 0 && v < 100);
      const next = values.find((v) => v > values[0]!);
      return next !== undefined ? [values[0]!, next] : null;
    });
    assert.ok(later > first);
    await bar.stop();
  });

  test('keyboard only: reach the job, open Pause, Esc closes it without pausing, then Enter confirms it', async () => {
    const { page } = b;
    await page.goto(url('/'));
    await page.reload();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await tabTo(page, 'the Jobs link of the navigation', (el) => el.href === '#/jobs');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
    await tabTo(page, `the link to job ${jobId}`, (el) => el.href === `#/jobs/${jobId}`);
    await page.keyboard.press('Enter');
    await page.getByTestId('job-state').waitFor();
    const pause = await tabTo(page, 'the Pause button', (el) => el.testid === 'action-pause');
    assert.ok(pause.visible, `the focused Pause button shows its focus (${pause.outline}; ${pause.boxShadow})`);
    const before = await job();
    await page.keyboard.press('Enter');
    await dialog().getByText('The running cycle stops and no cycle runs until you resume.', { exact: false }).waitFor();
    assert.ok((await focused(page)).inDialog, 'focus moves into the dialog');
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
    const after = await job();
    assert.notEqual(after.state, 'Paused', 'Esc paused nothing');
    assert.ok(!(await transitions()).some((x) => x.to === 'Paused'), 'no Paused transition was recorded');
    assert.ok(['Syncing', 'Waiting'].includes(after.state), `the job still runs (${before.state} → ${after.state})`);
    assert.notEqual(await page.getByTestId('job-state').getAttribute('data-state'), 'Paused');

    // Focus is back on the button that opened the dialog, or Tab finds it again.
    if ((await focused(page)).testid !== 'action-pause') await tabTo(page, 'the Pause button', (el) => el.testid === 'action-pause');
    await page.keyboard.press('Enter');
    await dialog().waitFor();
    const confirm = await tabTo(page, 'the dialog’s Pause button', (el) => el.inDialog && el.text === 'Pause', 10);
    assert.ok(confirm.visible, 'the dialog’s confirm button shows its focus');
    await page.keyboard.press('Enter');
    await dialog().waitFor({ state: 'detached' });
    await stateShown(page, 'Paused');
    assert.equal((await job()).state, 'Paused');
    assert.match((await page.getByTestId('action-message').innerText()).trim(), /^Paused\. No cycle runs until the job is resumed/);
  });

  test('resume: the dialog says so, the cycle continues and CYCLE_1 shows with its size, changed bytes and duration; the state history lists every move', async () => {
    const { page } = b;
    const message = await confirmAction('resume', 'The job is scheduled again; a cycle that was stopped continues where it stopped.', 'Resume');
    assert.match(message, /^Resumed: (Syncing|Waiting)\.$/);
    assert.ok(['Syncing', 'Waiting'].includes((await job()).state));
    await t.waitFor('CYCLE_1', jobId, (j) => j.state === 'Waiting' && j.pointCount === 1, 180_000).catch((err: unknown) => assert.fail(`${String(err)}${diag(jobId)}`));
    await stateShown(page, 'Waiting');
    const row = page.getByTestId('point-row').first();
    await row.getByText('CYCLE_1').waitFor({ timeout: 30_000 });
    const [p] = await points();
    const cells = (await tableRows(page, '[data-testid="points"]'))[0]!;
    assert.equal(cells[0], 'CYCLE_1');
    assertBytes(cells[2]!, p!.sizeBytes, 'size');
    assertBytes(cells[3]!, p!.bytesChanged, 'changed bytes');
    assertBytes(cells[4]!, p!.bytesStored, 'stored bytes');
    // Only what was read after the resume counts: a cycle resumed from its acknowledged blocks reports the rest.
    assert.ok(p!.bytesChanged > 0 && p!.bytesChanged <= p!.sizeBytes, `the full cycle reports changed bytes (${p!.bytesChanged})`);
    assert.ok(Math.abs(parseDuration(cells[5]!) - p!.seconds) <= 1, `duration ${cells[5]} vs ${p!.seconds} s`);

    const moves = await transitions();
    assert.deepEqual(
      moves.map((x) => x.to),
      ['Ready', 'Syncing', 'Paused', 'Syncing', 'Waiting'],
    );
    await waitUntil('the state history to list every transition', async () => (await tableRows(page, 'section[aria-labelledby="transitions-h"] table')).length === moves.length);
    const shown = await tableRows(page, 'section[aria-labelledby="transitions-h"] table');
    // Newest first: to, from and cause as the appliance recorded them.
    for (const [i, x] of moves.toReversed().entries()) {
      assert.equal(shown[i]![2], x.to === 'InError' ? 'In error' : x.to);
      assert.ok(shown[i]![3]!.startsWith(x.cause), `row ${i}: "${shown[i]![3]}" shows the cause "${x.cause}"`);
    }
    assert.ok(shown.some((r) => r[1] === 'Syncing' && r[2] === 'Paused' && r[3] === 'paused by the user'));
  });

  test('change settings: interval after the next cycle, max points and throttles at once, on screen and on the appliance', async () => {
    const { page } = b;
    const message = await confirmAction(
      'settings',
      'A new interval takes effect after the next cycle; max points and throttles apply at once (throttles also to a running cycle).',
      'Change settings…',
      async () => {
        const d = dialog();
        assert.equal(await d.getByLabel('Sync every').inputValue(), '6', 'the dialog starts from the current interval');
        assert.equal(await d.getByLabel('Keep at most (points)').inputValue(), '4');
        assert.equal(await d.getByLabel('Network limit (Mbit/s)').inputValue(), '16');
        await d.getByLabel('Sync every').fill('12');
        await d.getByLabel('Keep at most (points)').fill('5');
        await d.getByLabel('Network limit (Mbit/s)').fill('0');
        await d.getByLabel('Disk time (%)').fill('50');
        await d.getByLabel('Reads in flight').fill('4');
      },
    );
    assert.match(message, /The interval changes from 6 hours to 12 hours after the next cycle completes/);
    assert.match(message, /At most 5 point\(s\) are kept from now on\./);
    assert.match(message, /Throttle: unlimited network, 50 % disk time, 4 reads in flight; applies at once\./);
    const j = await job();
    assert.equal(j.intervalSeconds, 6 * 3600, 'the interval itself waits for the next cycle');
    assert.equal(j.pendingIntervalSeconds, 12 * 3600);
    assert.equal(j.maxPoints, 5);
    assert.deepEqual(j.throttle, { networkMbps: 0, diskPercent: 50, queueDepth: 4 });
    const kv = await definitions(page, 'section[aria-labelledby="settings-h"]');
    // The page writes "6 h→ 12 h" (Svelte drops the space at the start of the {#if} block): the words are checked here.
    assert.match(kv['Sync every'] ?? '', /^6 h ?→ 12 h \(after the next cycle\)$/);
    assert.equal(kv['Keep at most (points)'], '5');
    assert.equal(kv['Network limit (Mbit/s)'], 'unlimited');
    assert.equal(kv['Disk time (%)'], '50 % · queue depth 4');
  });

  test('sync now: an incremental cycle runs at once and CYCLE_2 shows the changed bytes; the new interval applies after it; the Dashboard lists the cycle live with its rate and empties when it ends', async () => {
    const { page } = b;
    await withMounted(image, 1, (dir) => writeFile(path.join(dir, 'changed.bin'), randomBytes(4 * MIB)));
    // 4 Mbit/s for this cycle: its 4 MiB of changed blocks take ~8 s to send, long enough to watch it on the Dashboard.
    await t.admin.json(`${API_PREFIX}/jobs/${jobId}`, { method: 'PATCH', body: { throttle: { networkMbps: 4 } } });
    const dash = await openDashboard();
    try {
      const running = dash.page.locator('section[aria-labelledby="running-h"]');
      await running.getByText('No cycle is running right now.').waitFor();
      // Each running-cycles card as "link|source|progress line", or "empty".
      const cards = await recordInPage(
        dash.page,
        'running',
        `(() => {
          const s = document.querySelector('section[aria-labelledby="running-h"]');
          if (!s) return 'none';
          if (s.querySelector('p.empty')) return 'empty';
          return [...s.querySelectorAll('li')]
            .map((li) => [li.querySelector('a')?.getAttribute('href') ?? '', li.querySelector('a')?.textContent.trim() ?? '', li.querySelector('p.small')?.textContent.replace(/\\s+/g, ' ').trim() ?? ''].join('|'))
            .join(';');
        })()`,
      );
      const states = await recordInPage(page, 'states', `document.querySelector('[data-testid="job-state"]')?.dataset.state ?? ''`);
      const message = await confirmAction('sync-now', 'An incremental cycle starts now instead of at the scheduled time. Only blocks changed since the last point are sent.', 'Sync now');
      assert.equal(message, 'A cycle starts now.');
      await t.waitFor('CYCLE_2', jobId, (j) => j.state === 'Waiting' && j.pointCount === 2, 180_000);
      await page.getByTestId('point-row').first().getByText('CYCLE_2').waitFor({ timeout: 30_000 });
      await stateShown(page, 'Waiting');
      const seen = await states.values();
      await states.stop();
      assert.ok(seen.indexOf('Syncing') > 0 && seen.lastIndexOf('Waiting') > seen.indexOf('Syncing'), `the page showed Waiting → Syncing → Waiting: ${seen.join(' → ')}`);
      const p = (await points()).at(-1)!;
      const cells = (await tableRows(page, '[data-testid="points"]'))[0]!;
      assert.equal(cells[0], 'CYCLE_2');
      assertBytes(cells[3]!, p.bytesChanged, 'changed bytes');
      assert.ok(p.bytesChanged >= 4 * MIB && p.bytesChanged < 16 * MIB, `the incremental sent the new 4 MiB file and little else (${p.bytesChanged})`);
      const j = await job();
      assert.equal(j.intervalSeconds, 12 * 3600, 'the interval changed with that cycle');
      assert.equal(j.pendingIntervalSeconds, null);
      await waitUntil('the page to show the new interval', async () => (await definitions(page, 'section[aria-labelledby="settings-h"]'))['Sync every'] === '12 h');

      // The Dashboard, open in another tab all along: the card came with the cycle, showed its rate moving, and went with it.
      await running.getByText('No cycle is running right now.').waitFor({ timeout: 30_000 });
      const values = await cards.values();
      await cards.stop();
      const shown = values.join(' ¦ ');
      assert.equal(await dash.page.evaluate('window.__sameDocument'), true, 'the Dashboard was not reloaded');
      const listed = values.filter((v) => v !== 'empty');
      assert.ok(listed.length > 0, `the Dashboard listed the running cycle: ${shown}`);
      for (const v of listed) {
        const [href, name] = v.split('|');
        assert.equal(href, `#/jobs/${jobId}`, `the only running cycle is this job's: ${v}`);
        assert.equal(name, SOURCE, `named by its source: ${v}`);
      }
      assert.equal(values[0], 'empty', `nothing ran before the sync: ${shown}`);
      assert.equal(values.at(-1), 'empty', `the card emptied when the cycle ended: ${shown}`);
      // "4.00 MiB / 40.1 MiB · 1.21 MiB/s · ETA 3s": the rate is the part after the first " · ".
      const rates = listed.map((v) => v.split('|')[2]!.split(' · ')[1] ?? '').filter((r) => r !== '' && r !== '—');
      assert.ok(
        rates.some((r) => parseBytes(r.replace(/\/s$/, '')).bytes > 0),
        `a non-zero rate showed while the cycle ran: ${shown}`,
      );
      assert.ok(new Set(rates).size >= 2, `the rate changed while the cycle ran, without a reload: ${rates.join(', ')}`);
    } finally {
      await dash.page.close();
      await t.admin.json(`${API_PREFIX}/jobs/${jobId}`, { method: 'PATCH', body: { throttle: { networkMbps: 0 } } });
    }
  });

  test('dashboard: the storage card shows what GET /dashboard says, used + free = total, the bar at used ÷ total, and the reduction ratios', async () => {
    const dash = await openDashboard();
    try {
      const { page } = dash;
      const storage = page.locator('section[aria-labelledby="storage-h"]');
      const read = async (): Promise<{ used: string; total: string; free: string; width: number }> => {
        const usedOf = /^(.+) used of (.+)$/.exec((await page.getByTestId('storage-used').innerText()).trim());
        const free = /^(.+) free$/.exec((await storage.locator('p.muted').innerText()).trim());
        const width = await page.evaluate<number>(`parseFloat(document.querySelector('section[aria-labelledby="storage-h"] .usage-used').style.width)`);
        return { used: usedOf?.[1] ?? '', total: usedOf?.[2] ?? '', free: free?.[1] ?? '', width };
      };
      const near = (text: string, n: number): boolean => {
        const { bytes, slack } = parseBytes(text);
        return Math.abs(bytes - n) <= slack + 1e-9;
      };
      // Used and free change with every write on this machine's disk (other programs' too): the card is compared with
      // the summary the page itself read last, which it shows until the next one.
      const { shown, reply } = await waitUntil(
        'the storage card to show the last summary the page read',
        async () => {
          const reply = (await dash.replies()).at(-1);
          const shown = await read();
          return reply && near(shown.used, reply.storage.usedBytes) && near(shown.free, reply.storage.freeBytes) && near(shown.total, reply.storage.totalBytes) ? { shown, reply } : null;
        },
        30_000,
      ).catch(async (err: unknown) => assert.fail(`${String(err)}: the page shows ${JSON.stringify(await read())}, it read ${JSON.stringify((await dash.replies()).at(-1)?.storage)}`));
      const s = reply.storage;
      assert.equal(s.usedBytes + s.freeBytes, s.totalBytes, 'the appliance counts used + free = total');
      assertBytes(shown.used, s.usedBytes, 'used');
      assertBytes(shown.free, s.freeBytes, 'free');
      assertBytes(shown.total, s.totalBytes, 'total');
      const [u, f, total] = [parseBytes(shown.used), parseBytes(shown.free), parseBytes(shown.total)];
      assert.ok(Math.abs(u.bytes + f.bytes - total.bytes) <= u.slack + f.slack + total.slack + 1e-9, `used ${shown.used} + free ${shown.free} = the total shown, ${shown.total}`);
      assert.ok(Math.abs(shown.width - (100 * s.usedBytes) / s.totalBytes) < 0.01, `the bar's used part is ${shown.width} %, used ÷ total is ${((100 * s.usedBytes) / s.totalBytes).toFixed(2)} %`);
      assert.equal(await page.locator('section[aria-labelledby="storage-h"] .usage').getAttribute('aria-label'), `${shown.used} used of ${shown.total}`);

      // What the appliance itself wrote does not move while no cycle runs: a summary read now agrees.
      const now = await t.admin.json<DashboardSummary>(`${API_PREFIX}/dashboard`);
      assert.equal(now.jobs.running, 0);
      for (const k of ['logicalBytes', 'newChunkBytes', 'storedBytes', 'dedupeRatio', 'compressionRatio'] as const) assert.equal(now.storage[k], s[k], k);
      assert.equal(now.points, (await points()).length, 'the points counted are the job\'s');
      assert.ok(s.dedupeRatio !== null && s.compressionRatio !== null);
      assert.equal(await page.getByTestId('dedupe').innerText(), `${s.dedupeRatio.toFixed(2)}×`);
      assert.equal(await page.getByTestId('compression').innerText(), `${s.compressionRatio.toFixed(2)}×`);
      const kv = await definitions(page, 'section[aria-labelledby="ratio-h"]');
      assertBytes(kv['Points describe']!, s.logicalBytes, 'points describe');
      assertBytes(kv['Unique chunks']!, s.newChunkBytes, 'unique chunks');
      assertBytes(kv.Stored!, s.storedBytes, 'stored');
    } finally {
      await dash.page.close();
    }
  });

  test('retry after an error: a missing disk puts the job InError with what to do; Retry runs the cycle; the log filters and downloads', async () => {
    const { page } = b;
    const away = `${image}.away`;
    await rename(image, away);
    // The reply to Sync now (the job Waiting, its cycle due now) is held back until the live event that says the cycle failed has been
    // shown: arriving last, the older reply must not put the page back to Waiting.
    const held = '**/api/v1/jobs/*/sync-now';
    let replied: JobActionResult | undefined;
    await page.route(held, async (route) => {
      const response = await route.fetch();
      await stateShown(page, 'InError');
      replied = ((await response.json()) as { data: JobActionResult }).data;
      await route.fulfill({ response });
    });
    try {
      await confirmAction('sync-now', 'An incremental cycle starts now instead of at the scheduled time. Only blocks changed since the last point are sent.', 'Sync now');
      assert.equal(replied?.job.state, 'Waiting', 'the reply, shown last, said Waiting');
      assert.equal(await page.getByTestId('job-state').getAttribute('data-state'), 'InError', 'the page kept the newer state');
      const failed = await t.waitFor('InError', jobId, (j) => j.state === 'InError', 120_000);
      assert.equal(failed.error?.code, 'DISK_UNREADABLE');
      await stateShown(page, 'InError');
      const alert = page.locator('div.error[role="alert"]');
      await alert.getByText(failed.error.message).waitFor();
      assert.match(await alert.innerText(), /Error code DISK_UNREADABLE/);
      assert.match(await alert.innerText(), /Fix the cause named above, then press Retry/);
    } finally {
      await page.unroute(held);
      await rename(away, image);
    }
    // The Dashboard, opened in another tab, raises it as an error naming the source and what failed, with a link to the job.
    const failedJob = await job();
    assert.equal(failedJob.state, 'InError');
    const dash = await openDashboard();
    try {
      const jobAlert = dash.page.locator('ul.alerts li.alert.error').filter({ hasText: 'Job failed:' });
      await jobAlert.waitFor();
      const said = (await jobAlert.innerText()).replace(/\s+/g, ' ').trim();
      assert.ok(said.startsWith(`Job failed: ${SOURCE}: ${failedJob.error!.message}`), `the alert names the source and the error: ${said}`);
      assert.equal(await jobAlert.getByRole('link', { name: 'Open the job' }).getAttribute('href'), `#/jobs/${jobId}`);
      const raised = (await t.admin.json<DashboardSummary>(`${API_PREFIX}/dashboard`)).alerts.filter((a) => a.kind === 'job-error');
      assert.deepEqual(
        raised.map((a) => [a.level, a.jobId]),
        [['error', jobId]],
      );

      const message = await confirmAction('retry', 'The error is cleared and the cycle runs again, continuing from its last acknowledged block.', 'Retry');
      assert.match(message, /^Retrying: /);
      await t.waitFor('CYCLE_3 after the retry', jobId, (j) => j.state === 'Waiting' && j.pointCount === 3, 180_000);
      await stateShown(page, 'Waiting');
      await page.getByTestId('point-row').first().getByText('CYCLE_3').waitFor({ timeout: 30_000 });
      assert.equal(await page.locator('div.error[role="alert"]').count(), 0, 'the error is gone from the page');
      // And from the Dashboard, without a reload.
      await jobAlert.waitFor({ state: 'detached', timeout: 30_000 });
      assert.equal(await dash.page.evaluate('window.__sameDocument'), true, 'the Dashboard was not reloaded');
      assert.deepEqual(
        (await t.admin.json<DashboardSummary>(`${API_PREFIX}/dashboard`)).alerts.filter((a) => a.kind === 'job-error'),
        [],
      );
    } finally {
      await dash.page.close();
    }
    const moves = await transitions();
    const inError = moves.find((x) => x.to === 'InError')!;
    assert.equal(inError.code, 'DISK_UNREADABLE');
    await waitUntil('the state history to show the retry', async () => (await tableRows(page, 'section[aria-labelledby="transitions-h"] table')).length === moves.length);
    const shown = await tableRows(page, 'section[aria-labelledby="transitions-h"] table');
    assert.ok(shown.some((r) => r[2] === 'In error' && r[3]!.includes('DISK_UNREADABLE')), 'InError is listed with its code');
    assert.ok(shown.some((r) => r[1] === 'In error' && r[3] === 'retry asked by the user'), 'the retry is listed');

    // The log: every line the appliance has, then only errors, then warnings and errors.
    const entries = await t.admin.json<JobLogEntry[]>(`${API_PREFIX}/jobs/${jobId}/log?format=json`);
    const lines = page.locator('.log .log-line');
    await waitUntil('the log to show every entry', async () => (await lines.count()) >= entries.length);
    const levelOf = async (): Promise<string[]> => page.evaluate<string[]>(`[...document.querySelectorAll('.log .log-line')].map((e) => e.classList[1])`);
    const filter = page.locator('section[aria-labelledby="log-h"] select');
    await filter.selectOption({ label: 'errors' });
    await waitUntil('only errors', async () => (await levelOf()).every((l) => l === 'error'));
    const errors = await lines.allInnerTexts();
    assert.equal(errors.length, entries.filter((e) => e.level === 'error').length);
    assert.ok(errors.some((l) => l.includes('DISK_UNREADABLE')), `the failed cycle is among the errors: ${errors.join('\n')}`);
    await filter.selectOption({ label: 'warnings and errors' });
    await waitUntil('warnings and errors', async () => (await lines.count()) >= entries.filter((e) => e.level !== 'info').length && (await lines.count()) < entries.length);
    assert.ok((await levelOf()).every((l) => l === 'warn' || l === 'error'));
    await filter.selectOption({ label: 'everything' });
    await waitUntil('everything again', async () => (await lines.count()) >= entries.length);

    // Download: the browser saves the log as text that holds the lines the viewer shows.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download log' }).click()]);
    assert.equal(download.suggestedFilename(), `ferry-job-${jobId}.log`);
    const text = await readFile(await download.path(), 'utf8');
    assert.match(text, new RegExp(`^# Ferry job ${jobId} for source ${SOURCE}`));
    const failedLine = entries.find((e) => e.level === 'error' && e.code === 'DISK_UNREADABLE')!;
    assert.ok(text.includes(`ERROR [DISK_UNREADABLE] ${failedLine.message}`), 'the downloaded log has the error line the viewer shows');
    assert.ok(errors.some((l) => l.includes(failedLine.message)));
    // And fetched with the page's own session, as the link does.
    const fetched = await page.evaluate<string>(`fetch(${JSON.stringify(`${API_PREFIX}/jobs/${jobId}/log`)}, { credentials: 'same-origin' }).then((r) => r.text())`);
    assert.ok(fetched.includes(failedLine.message));
  });

  test('complete with one last cycle: the dialog says it, the final cycle runs, the job ends Completed', async () => {
    const { page } = b;
    const before = (await job()).pointCount;
    const message = await confirmAction(
      'complete',
      'Completing ends the job: no more cycles run afterwards. Stop the services on the source first if you want the last cycle to be consistent.',
      'Complete…',
      async () => {
        const d = dialog();
        assert.ok(await d.getByTestId('last-cycle').isChecked(), '"one last cycle" is ticked by default');
        await d.getByText('One more cycle copies the latest changes, then the job is completed.').waitFor();
      },
    );
    assert.match(message, /^Completing: one last cycle runs now, then the job is Completed\./);
    const done = await t.waitFor('Completed', jobId, (j) => j.state === 'Completed', 180_000);
    assert.equal(done.pointCount, before + 1, 'the last cycle made a point');
    await stateShown(page, 'Completed');
    const last = (await points()).at(-1)!;
    assert.equal(last.name, `CYCLE_${before + 1}`, 'the points of the first job of a source are CYCLE_1, CYCLE_2, …');
    await page.getByTestId('point-row').first().getByText(last.name).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('.actions-bar button').count(), 0, 'a completed job offers no action');
    const moves = (await transitions()).slice(-2);
    assert.deepEqual(
      moves.map((x) => x.to),
      ['Completing', 'Completed'],
    );
    assert.match(moves[1]!.cause, new RegExp(`last cycle committed as ${last.name}`));
    restoredPointId = last.id;
  });

  test('a restore made in the UI is followed live by phase while the restore program writes it, and the image equals the point', async () => {
    const { page } = b;
    await page.getByTestId('restore-point').first().click();
    await page.getByRole('heading', { name: 'Create a restore' }).waitFor();
    assert.equal(await page.getByTestId('restore-point-select').inputValue(), String(restoredPointId), 'the point picked on the job page is chosen');
    await page.getByTestId('create-restore').click();
    const code = (await page.getByTestId('restore-code').innerText()).trim();
    assert.match(code, RESTORE_CODE_PATTERN);
    const address = (await page.getByTestId('restore-address').innerText()).trim();
    assert.equal(address, new URL(t.server.url).origin);
    const card = await definitions(page, 'section.code-card dl.kv');
    assert.equal(card['Certificate fingerprint'], t.server.fingerprint);
    const restoreId = (await t.admin.json<RestoreView[]>(`${API_PREFIX}/restores`)).find((r) => r.pointId === restoredPointId && r.state === 'active')!.id;

    await page.getByRole('link', { name: 'Watch the restore' }).click();
    const item = page.getByTestId('restore').filter({ hasText: `#${restoreId}` });
    await item.locator('.phases [aria-current="step"]').getByText('Waiting for the ISO').waitFor();
    await page.evaluate('window.__sameDocument = true');
    const seen = await recordInPage(
      page,
      'restore',
      `(() => {
        const card = [...document.querySelectorAll('[data-testid="restore"]')].find((c) => /#${restoreId}$/.test(c.querySelector('h2')?.textContent.trim() ?? ''));
        if (!card) return 'gone';
        const phase = card.querySelector('.phases [aria-current="step"]')?.textContent.trim() ?? '';
        const bar = card.querySelector('[role="progressbar"]')?.getAttribute('data-value') ?? '';
        return phase + '|' + bar;
      })()`,
    );

    const target = path.join(work, 'restored.img');
    await sh('tc', ['qdisc', 'add', 'dev', ns.hostInterface, 'root', 'handle', '1:', 'htb', 'default', '10']);
    let child: ChildProcess | undefined;
    let out = '';
    try {
      await sh('tc', ['class', 'add', 'dev', ns.hostInterface, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', RESTORE_LINK]);
      const argv = ns.exec([process.execPath, path.join(ROOT, 'restore-pe/bin/ferry-restore.js'), 'code', '--appliance', address, '--fingerprint', card['Certificate fingerprint'], '--code', code, '--target', target]);
      const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exitCode = await new Promise<number | null>((resolve) => c.once('exit', resolve));
      assert.equal(exitCode, 0, `the restore program finished\n${out}`);
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await sh('tc', ['qdisc', 'del', 'dev', ns.hostInterface, 'root']).catch(() => '');
    }
    const view = await t.admin.json<RestoreView>(`${API_PREFIX}/restores/${restoreId}`);
    assert.equal(view.phase, 'done');
    assert.equal(view.state, 'finished');
    assert.equal(await sha256File(target), await sha256File(image), 'the restored image is byte-equal to the source disk of that point');
    await rm(target);

    // What the page showed, without a reload: connected, writing with the bar at two values between 0 and 100, done.
    await waitUntil('the page to take the last update', async () => (await seen.values()).some((v) => v.startsWith('Done') || v === 'gone'), 30_000);
    const values = await seen.values();
    await seen.stop();
    assert.equal(await page.evaluate('window.__sameDocument'), true, 'the page was not reloaded');
    const phases = values.map((v) => v.split('|')[0]!).filter((p, i, all) => p !== all[i - 1]);
    // The program reports after each verified range of 64 blocks and once at the end: here 0, then a value, then 100.
    const writing = values.filter((v) => v.startsWith('Writing|') && v.split('|')[1] !== '').map((v) => Number(v.split('|')[1]));
    assert.ok(phases.includes('Connected'), `the page showed Connected: ${values.join(' ')}`);
    assert.ok(phases.indexOf('Writing') > phases.indexOf('Connected'), `then Writing: ${phases.join(' → ')}`);
    assert.ok(new Set(writing).size >= 2 && writing.some((v) => v > 0 && v < 100), `the bar showed two values, one part-way, while writing: ${values.join(' ')}`);
    assert.deepEqual(writing, writing.toSorted((x, y) => x - y), 'the bar only moved forward');
    if (phases.includes('Verifying')) assert.ok(phases.indexOf('Verifying') > phases.indexOf('Writing'));
    // A restore that is done is finished: ticking "Show finished" lists it as Done at 100 %.
    await page.getByLabel('Show finished and cancelled').check();
    await item.locator('.phases [aria-current="step"]').getByText('Done').waitFor();
    await item.getByText('Finished', { exact: true }).waitFor();
    assert.equal(await item.getByRole('progressbar').getAttribute('data-value'), '100.00');
    // The engineer watching it live sees it reach Done, not vanish.
    assert.ok(phases.includes('Done'), `the page showed the restore Done while it was watched, before anyone ticked "Show finished": ${phases.join(' → ')}`);
  });

  test('complete without a last cycle: the dialog says the points stay as they are, and the job is Completed at once', async () => {
    const { page } = b;
    const id = await jobWithPoints(1);
    await fresh(`/jobs/${id}`);
    await stateShown(page, 'Waiting');
    const message = await confirmAction(
      'complete',
      'Completing ends the job: no more cycles run afterwards. Stop the services on the source first if you want the last cycle to be consistent.',
      'Complete…',
      async () => {
        const d = dialog();
        await d.getByTestId('last-cycle').uncheck();
        await d.getByText('A running cycle is abandoned and the job is completed with the points it has now.').waitFor();
      },
    );
    assert.equal(message, 'Completed. No cycle runs again for this job; its points stay for restores.');
    await stateShown(page, 'Completed');
    const j = await job(id);
    assert.equal(j.state, 'Completed');
    assert.equal(j.pointCount, 1, 'no last cycle ran');
    assert.equal((await transitions(id)).at(-1)!.cause, 'completed by the user (no last cycle)');
    assert.equal((await points(id)).length, 1);
  });

  test('cancel keeping a chosen point: the dialog lists the points, the ticked one stays and the other is deleted', async () => {
    const { page } = b;
    const id = await jobWithPoints(2);
    const [p1, p2] = await points(id);
    await fresh(`/jobs/${id}`);
    await stateShown(page, 'Waiting');
    await page.getByTestId('point-row').nth(1).waitFor();
    const message = await confirmAction(
      'cancel',
      'The running cycle is abandoned and every point of this job is deleted, except those you tick below and those in use by a restore. This cannot be undone.',
      'Cancel job…',
      async () => {
        const keep = dialog().getByRole('group', { name: 'Points to keep' });
        const boxes = keep.getByRole('checkbox');
        assert.equal(await boxes.count(), 2, 'each point of the job is offered');
        const first = keep.getByRole('checkbox', { name: new RegExp(`^${p1!.name} · `) });
        const second = keep.getByRole('checkbox', { name: new RegExp(`^${p2!.name} · `) });
        assert.ok(await second.isChecked(), 'the newest point is ticked to keep by default');
        assert.ok(!(await first.isChecked()));
        await first.check();
        await second.uncheck();
      },
    );
    assert.match(message, /^Cancelled\./);
    await stateShown(page, 'Cancelled');
    assert.equal((await job(id)).state, 'Cancelled');
    assert.match((await transitions(id)).at(-1)!.cause, new RegExp(`keeping point\\(s\\) ${p1!.id}$`));
    assert.deepEqual(
      (await points(id)).map((p) => p.name),
      [p1!.name],
    );
    await t.admin.json(`${API_PREFIX}/points/${p1!.id}`);
    await assert.rejects(t.admin.json(`${API_PREFIX}/points/${p2!.id}`), /NOT_FOUND|does not exist/i, 'the unticked point is deleted');
  });

  test('create a job with exclusions and throttles, full copy not started: the appliance has it Paused with exactly those, and no cycle runs', async () => {
    const { page } = b;
    // The source's earlier jobs are Completed or Cancelled by now, so it may have a new one.
    assert.ok(
      (await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`)).every((j) => j.sourceId !== sourceId || j.state === 'Completed' || j.state === 'Cancelled'),
      'no live job on the source',
    );
    const jobCount = async (): Promise<number> => (await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`)).length;
    const before = await jobCount();
    await fresh('/jobs/new');
    await page.getByRole('heading', { name: 'Create a job' }).waitFor();
    await page.getByTestId('job-source').selectOption({ label: SOURCE });
    await page.getByLabel('Sync every').fill('2');
    await page.getByLabel('Unit').selectOption({ label: 'days' });
    await page.getByLabel('Keep at most (points)').fill('7');
    // Not the defaults the Appliance page set (16 Mbit/s, 40 %, 3), which the form starts from.
    assert.equal(await page.getByLabel('Network limit (Mbit/s)').inputValue(), '16');
    await page.getByLabel('Network limit (Mbit/s)').fill('7');
    await page.getByLabel('Disk time (%)').fill('25');
    await page.getByLabel('Reads in flight').fill('2');
    const runNow = page.getByLabel('Start the full copy now');
    assert.ok(await runNow.isChecked(), 'the full copy starts at once unless the engineer says otherwise');
    await runNow.uncheck();
    await page.getByText('The job is created paused; resume it when you want the full copy to start.').waitFor();

    // The form takes absolute paths, one a line (no patterns): one that is not is refused on the page, by name.
    const exclusions = page.getByLabel('Exclusions (optional)');
    await exclusions.fill('/var/cache\nvar/tmp');
    await page.getByTestId('create-job').click();
    await page.getByRole('alert').getByText('"var/tmp" is not an absolute path: exclusions start with /.').waitFor();
    assert.equal(await jobCount(), before, 'nothing was created');
    // Blank lines and the spaces around a path are dropped; a space inside one is part of it.
    await exclusions.fill('  /var/cache  \n\n/srv/build cache\n');
    await page.getByTestId('create-job').click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = Number(/#\/jobs\/(\d+)$/.exec(page.url())![1]);
    await stateShown(page, 'Paused');

    const made = await job(id);
    assert.equal(made.sourceId, sourceId);
    assert.equal(made.state, 'Paused');
    assert.deepEqual(made.exclusions, ['/var/cache', '/srv/build cache']);
    assert.deepEqual(made.throttle, { networkMbps: 7, diskPercent: 25, queueDepth: 2 });
    assert.equal(made.intervalSeconds, 2 * 86400);
    assert.equal(made.maxPoints, 7);
    // Created paused, not paused after it was created: the only transition is into Paused, and no cycle ran.
    const check = async (when: string): Promise<void> => {
      const j = await job(id);
      assert.equal(j.state, 'Paused', when);
      assert.equal(j.pointCount, 0, when);
      assert.equal(j.progress, null, `${when}: no cycle in progress`);
      const moves = await transitions(id);
      assert.deepEqual(
        moves.map((x) => [x.from, x.to]),
        [[null, 'Paused']],
        `${when}: ${JSON.stringify(moves)}`,
      );
      assert.match(moves[0]!.cause, /created paused/);
      assert.deepEqual(await points(id), [], when);
    };
    await check('just created');
    // The scheduler, run now with the source's agent connected, would send a Ready job's full copy at once: not this one.
    assert.ok(t.server.appliance.agents.online(sourceId), 'the agent is connected');
    await t.advance(0);
    await check('after the scheduler ran');
    const kv = await definitions(page, 'section[aria-labelledby="settings-h"]');
    assert.equal(kv['Sync every'], '2 d');
    assert.equal(kv['Keep at most (points)'], '7');
    assert.equal(kv['Network limit (Mbit/s)'], '7 Mbit/s');
    assert.equal(kv['Disk time (%)'], '25 % · queue depth 2');
    assert.equal(kv['Exclusions (optional)'], '/var/cache, /srv/build cache');
    await page.getByText('No point yet: the first one appears when the full copy finishes.').waitFor();

    // Not needed by the later cases: cancelled (it has no point), and the page follows.
    await t.admin.json(`${API_PREFIX}/jobs/${id}/cancel`, { method: 'POST', body: { keepPoints: [] } });
    await stateShown(page, 'Cancelled');
    assert.equal((await job(id)).state, 'Cancelled');
  });

  test('passive source: the SSH form, the host key screen shows the fingerprint ssh-keygen prints, confirming deploys the agent and it comes online', async () => {
    const { page } = b;
    await fresh('/');
    await navLink(page, 'Sources').click();
    await page.getByRole('link', { name: 'Add passive source (SSH)' }).click();
    await page.getByRole('heading', { name: 'Add a passive source' }).waitFor();
    await page.getByLabel('Host or IP address').fill(ns.nsAddress);
    assert.equal(await page.getByLabel('SSH port').inputValue(), '22');
    assert.equal(await page.getByLabel('SSH user').inputValue(), 'root');
    await page.getByLabel('Name (optional)').fill('ssh-src');
    await page.getByRole('radio', { name: 'Private key' }).check();
    await page.getByRole('textbox', { name: 'Private key' }).fill(clientKey);
    await page.getByRole('button', { name: 'Connect and show the host key' }).click();
    await page.getByRole('heading', { name: 'Confirm the host key' }).waitFor();
    const kv = await definitions(page, 'section.card dl.kv');
    const expected = await keygenFingerprint(path.join(work, 'host.pub'));
    assert.equal(kv.SHA256, expected, 'the page shows the fingerprint ssh-keygen -lf prints for the server key');
    assert.equal(kv['Key type'], 'ssh-ed25519');
    await page.getByText('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub').waitFor();
    const confirm = page.getByRole('button', { name: 'Confirm and deploy the agent' });
    assert.ok(await confirm.isDisabled(), 'nothing is deployed before the engineer says the key matches');
    await page.getByLabel('The fingerprint matches what the source shows').check();
    await confirm.click();
    await page.waitForURL(/#\/sources\/\d+$/);
    passiveId = Number(/#\/sources\/(\d+)$/.exec(page.url())![1]);
    const ssh = page.locator('section[aria-labelledby="ssh-h"]');
    await ssh.getByText('Agent running', { exact: true }).waitFor({ timeout: 180_000 });
    await page.locator('.row.spread .badge').getByText('Online', { exact: true }).waitFor({ timeout: 60_000 });
    const status = await t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${passiveId}/passive`);
    assert.equal(status.state, 'running');
    assert.equal(status.hostKey?.sha256, expected);
    assert.ok(t.server.appliance.agents.online(passiveId), 'the passive agent holds its control connection through the SSH tunnel');
    const shown = await definitions(page, 'section[aria-labelledby="ssh-h"]');
    assert.equal(shown.SSH, `root@${ns.nsAddress}:22`);
    assert.equal(shown['Confirm the host key'], `ssh-ed25519 ${expected}`);
    assert.match(shown['Agent version'] ?? '', /\d+\.\d+\.\d+/);
  });

  test('passive source: the same server and user twice is refused; a wrong password shows an error that says what to do', async () => {
    const { page } = b;
    await fresh('/sources/add-passive');
    await page.getByRole('heading', { name: 'Add a passive source' }).waitFor();
    await page.getByLabel('Host or IP address').fill(ns.nsAddress);
    await page.getByLabel('Name (optional)').fill('ssh-wrong');
    await page.locator('input[type="password"]').fill('not the password');
    await page.getByRole('button', { name: 'Connect and show the host key' }).click();
    // root@ADDRESS:22 is ssh-src already: its agent would be stopped by a second one in the same home directory.
    await page.getByText('That server is already a passive source with this user').waitFor();
    await page.getByText(/PASSIVE_SOURCE_EXISTS/).waitFor();
    // The same address on another port stands for a second server (as behind a NAT's port forwards).
    await page.getByLabel('SSH port').fill(String(SECOND_SSH_PORT));
    await page.getByRole('button', { name: 'Connect and show the host key' }).click();
    await page.getByLabel('The fingerprint matches what the source shows').check();
    await page.getByRole('button', { name: 'Confirm and deploy the agent' }).click();
    await page.waitForURL(/#\/sources\/\d+$/);
    const id = Number(/#\/sources\/(\d+)$/.exec(page.url())![1]);
    wrongId = id;
    const ssh = page.locator('section[aria-labelledby="ssh-h"]');
    // A refused login is not retried (0dbaa42: no account lockout on the source), so the page does not say "retrying".
    await ssh.getByText('Login refused (not retried)').waitFor({ timeout: 60_000 });
    const status = await t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${id}/passive`);
    assert.equal(status.state, 'failed');
    const text = await ssh.innerText();
    assert.match(text, /refused the login \(password\)/, text);
    assert.match(text, /SSH_AUTH_FAILED/, 'the error code is shown');
    assert.ok(!t.server.appliance.agents.online(id));
    // What to do: the hint of SSH_AUTH_FAILED (protocol/src/errors.ts), not only that it keeps retrying.
    assert.match(text, /check the user name and password/i, `the page says what to do about the refused login:\n${text}`);
  });

  test('passive source: after the refused login, Change credentials… with the right key: the page follows the new login to Agent running and Online without a reload, and the refusal is gone', async () => {
    const { page } = b;
    assert.ok(passiveId && wrongId, 'the two passive cases above ran');
    const passive = (id: number): Promise<PassiveSourceView> => t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${id}/passive`);
    const setCredentials = (id: number, body: PassiveCredentialsRequest): Promise<PassiveSourceView> =>
      t.admin.json<PassiveSourceView>(`${API_PREFIX}/sources/${id}/passive/credentials`, { method: 'PUT', body });
    const refusedAndGone = (id: number, what: string): Promise<PassiveSourceView> =>
      waitUntil(what, async () => {
        const p = await passive(id);
        return p.state === 'failed' && p.code === 'SSH_AUTH_FAILED' && !t.server.appliance.agents.online(id) ? p : null;
      });
    // Both passive sources are root on this machine, so their agents share ~/.ferry-agent and its pid file, and a
    // passive agent stops the one that file names (left over from a broken SSH session): two running at once would
    // stop each other in turn. ssh-src is given a login the source refuses (not retried) while ssh-wrong runs, and
    // its key back afterwards, so the later cases find ssh-src online and ssh-wrong refused, as before.
    await setCredentials(passiveId, { password: 'not the password' });
    await refusedAndGone(passiveId, 'ssh-src to be refused and its agent gone');
    try {
      await fresh(`/sources/${wrongId}`);
      const ssh = page.locator('section[aria-labelledby="ssh-h"]');
      await ssh.getByText('Login refused (not retried)').waitFor();
      const badge = page.locator('.row.spread .badge');
      assert.equal((await badge.innerText()).trim(), 'Offline');
      await page.evaluate('window.__sameDocument = true');
      const states = await recordInPage(page, 'passive', `document.querySelector('[data-testid="passive-state"]')?.dataset.state ?? ''`);

      const change = ssh.getByTestId('change-credentials');
      assert.match((await change.getAttribute('class')) ?? '', /\bprimary\b/, 'after a refused login, Change credentials… is the button to press');
      await change.click();
      const d = dialog();
      await d.getByRole('heading', { name: 'Change the SSH credentials' }).waitFor();
      assert.equal(await d.getByLabel('SSH user').inputValue(), 'root', 'the dialog starts from the user the source has');
      assert.ok(await d.getByRole('radio', { name: 'Password' }).isChecked(), 'and from how it signs in now');
      assert.equal(await d.locator('input[type="password"]').inputValue(), '', 'the old password is not shown again');
      // A user name the appliance refuses: the dialog says why and stays open; nothing changes on the appliance.
      await d.getByLabel('SSH user').fill('bad user!');
      await d.locator('input[type="password"]').fill('x');
      await d.getByRole('button', { name: 'Save and connect' }).click();
      const refusal = d.getByRole('alert');
      await refusal.waitFor();
      const said = await refusal.innerText();
      assert.match(said, /user name has letters, digits/, said);
      assert.match(said, /BAD_REQUEST/, said);
      const unchanged = await passive(wrongId);
      assert.equal(unchanged.state, 'failed', 'a refused change connects nothing');
      assert.equal(unchanged.username, 'root');
      assert.equal(unchanged.auth, 'password');

      await d.getByLabel('SSH user').fill('root');
      await d.getByRole('radio', { name: 'Private key' }).check();
      await d.getByRole('textbox', { name: 'Private key' }).fill(clientKey);
      await d.getByRole('button', { name: 'Save and connect' }).click();
      await d.waitFor({ state: 'detached' });
      await ssh.getByText('Agent running', { exact: true }).waitFor({ timeout: 180_000 });
      await badge.getByText('Online', { exact: true }).waitFor({ timeout: 60_000 });

      const text = await ssh.innerText();
      assert.equal(await ssh.getByTestId('passive-error').count(), 0, `the refusal is gone:\n${text}`);
      assert.doesNotMatch(text, /Login refused|refused the login|SSH_AUTH_FAILED/, text);
      await ssh.getByText('New credentials saved. The status above shows how the new login goes.').waitFor();
      assert.ok(!(await change.getAttribute('class'))?.includes('primary'), 'Change credentials… is an ordinary button again');
      const shown = await definitions(page, 'section[aria-labelledby="ssh-h"]');
      assert.equal(shown.SSH, `root@${ns.nsAddress}:${SECOND_SSH_PORT}`);
      assert.match(shown['Agent version'] ?? '', /\d+\.\d+\.\d+/);
      assert.equal(await page.evaluate('window.__sameDocument'), true, 'the page was not reloaded');
      const seen = (await states.values()).filter((v, i, all) => v !== all[i - 1]);
      await states.stop();
      assert.equal(seen[0], 'failed', `the page started from the refusal: ${seen.join(' → ')}`);
      assert.equal(seen.at(-1), 'running', `and ended running: ${seen.join(' → ')}`);
      assert.ok(seen.indexOf('connecting') > 0 && seen.indexOf('connecting') < seen.lastIndexOf('running'), `it followed the new login: ${seen.join(' → ')}`);

      const now = await passive(wrongId);
      assert.equal(now.state, 'running');
      assert.equal(now.code, null);
      assert.equal(now.auth, 'key', 'the appliance signs in with the key from now on');
      assert.ok(t.server.appliance.agents.online(wrongId), 'its agent holds its control connection through the SSH tunnel');
    } finally {
      await setCredentials(wrongId, { password: 'not the password' });
      await refusedAndGone(wrongId, 'ssh-wrong to be refused again and its agent gone');
      await setCredentials(passiveId, { privateKey: clientKey });
      await waitUntil('ssh-src to run again', async () => (await passive(passiveId)).state === 'running' && t.server.appliance.agents.online(passiveId), 180_000);
    }
  });

  test('sources list: name, OS, mode, online/offline, last seen, disks; a source page draws the used/unused bar from its newest point', async () => {
    const { page } = b;
    await fresh('/');
    await navLink(page, 'Sources').click();
    await page.getByTestId('source-row').nth(2).waitFor();
    const sources = await t.admin.json<SourceView[]>(`${API_PREFIX}/sources`);
    await waitUntil('the list to show the passive source online', async () => {
      const rows = await tableRows(page, '[data-testid="sources"]');
      return rows.some((r) => r[0]!.startsWith('ssh-src') && r[3] === 'Online');
    });
    const rows = await tableRows(page, '[data-testid="sources"]');
    for (const s of sources) {
      const row = rows.find((r) => r[0]!.startsWith(s.name));
      assert.ok(row, `${s.name} is listed`);
      assert.equal(row[1], s.os ?? '—', `${s.name}: OS`);
      assert.equal(row[2], s.mode === 'active' ? 'Active (agent)' : 'Passive (SSH)', `${s.name}: mode`);
      assert.equal(row[3], s.online ? 'Online' : 'Offline', `${s.name}: online`);
      if (s.lastSeen) assert.notEqual(row[4], '—', `${s.name}: last seen`);
      for (const d of s.disks) assert.ok(row[5]!.includes(d.key), `${s.name}: disk ${d.key} in "${row[5]}"`);
      if (s.disks.length === 0) assert.equal(row[5], '—');
    }
    const active = sources.find((s) => s.id === sourceId)!;
    const activeRow = rows.find((r) => r[0]!.startsWith(SOURCE))!;
    assert.ok(/\((\d|\.)+ MiB\)/.test(activeRow[5]!), `the disk's size shows: ${activeRow[5]}`);
    assert.equal(rows.find((r) => r[0]!.startsWith('ssh-wrong'))![3], 'Offline');

    await page.getByRole('link', { name: SOURCE, exact: true }).click();
    await page.getByText('Partition table: GPT').waitFor();
    const disk = active.lastPoint!.disks[0]!;
    const used = disk.dataBlocks * disk.blockSize;
    assert.ok(used >= 36 * MIB && used < disk.size, `the newest point holds the 36 MiB of files and less than the disk (${used} of ${disk.size})`);
    const usage = page.locator('.disk .usage').first();
    const label = (await usage.getAttribute('aria-label'))!;
    const [usedText, sizeText] = label.split(' used of ') as [string, string];
    assertBytes(usedText, used, 'used');
    assertBytes(sizeText, disk.size, 'disk size');
    const width = await page.evaluate<number>(`parseFloat(document.querySelector('.disk .usage-used').style.width)`);
    assert.ok(Math.abs(width - (100 * used) / disk.size) < 0.01, `the used part is ${width} % of the bar; the point says ${((100 * used) / disk.size).toFixed(2)} %`);
    const unused = /· (.+) unused$/.exec((await page.locator('.disk p.small').first().innerText()).trim());
    assert.ok(unused, 'the unused bytes are written out');
    assertBytes(unused[1]!, disk.size - used, 'unused');
  });

  test('users: an admin adds one with a role and changes it; a viewer is offered no change and the appliance refuses one; the admin deletes it', async () => {
    const { page } = b;
    // A paused job for the viewer to try to resume (a job an earlier step left running is cancelled first).
    for (const j of await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`)) {
      if (j.sourceId === sourceId && j.state !== 'Completed' && j.state !== 'Cancelled') {
        await t.admin.json(`${API_PREFIX}/jobs/${j.id}/cancel`, { method: 'POST', body: { keepPoints: [] } });
      }
    }
    const { job: paused } = await t.admin.json<JobActionResult>(`${API_PREFIX}/jobs`, {
      method: 'POST',
      body: { sourceId, intervalSeconds: 24 * 3600, maxPoints: 2, throttle: { networkMbps: 0, diskPercent: 100, queueDepth: 4 } },
    });
    await t.admin.json(`${API_PREFIX}/jobs/${paused.id}/pause`, { method: 'POST' });

    await fresh('/');
    await navLink(page, 'Appliance').click();
    const users = page.locator('section[aria-labelledby="users-h"]');
    const form = users.locator('form');
    await form.getByLabel('User name').fill('night-viewer');
    await form.getByLabel('Password').fill('a long viewer password');
    await form.getByLabel('Role').selectOption({ label: 'Operator' });
    await form.getByRole('button', { name: 'Add user' }).click();
    const role = page.getByTestId('user-role-night-viewer');
    await role.waitFor();
    assert.equal(await role.inputValue(), 'operator');
    const byName = async (): Promise<UserView | undefined> => (await t.admin.json<UserView[]>(`${API_PREFIX}/users`)).find((u) => u.username === 'night-viewer');
    assert.equal((await byName())?.role, 'operator');
    await role.selectOption({ label: 'Viewer' });
    await waitUntil('the role change', async () => (await byName())?.role === 'viewer');

    const context = await b.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 }, locale: 'en-US', timezoneId: 'UTC' });
    try {
      const viewer = await context.newPage();
      await viewer.goto(t.server.url);
      await logIn(viewer, 'night-viewer', 'a long viewer password');
      await viewer.goto(url(`/jobs/${paused.id}`));
      await viewer.locator('[data-testid="job-state"][data-state="Paused"]').waitFor();
      // Pages hide what the role cannot do (operator guide §9): no job action, and the page says why.
      assert.deepEqual(await viewer.locator('.actions-bar button').allInnerTexts(), [], 'a viewer is offered no job action');
      assert.equal(await viewer.getByTestId('action-resume').count(), 0);
      assert.match(await viewer.getByTestId('role-note').innerText(), /need the operator role; you are a viewer/);
      assert.equal(await viewer.getByTestId('restore-point').count(), 0, 'a viewer is offered no restore of a point');
      // The appliance refuses the change all the same: the call the Resume button makes, with this session's cookie and CSRF token.
      const refused = await viewer.evaluate<{ status: number; body: { code?: string; message?: string; hint?: string } }>(`(async () => {
        const session = await (await fetch(${JSON.stringify(`${API_PREFIX}/session`)})).json();
        const res = await fetch(${JSON.stringify(`${API_PREFIX}/jobs/${paused.id}/resume`)}, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json', 'x-ferry-csrf': session.data.csrfToken },
          body: '{}',
        });
        return { status: res.status, body: await res.json() };
      })()`);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.code, 'ROLE_FORBIDDEN');
      assert.match(refused.body.message ?? '', /needs the operator role; you are a viewer/);
      assert.match(refused.body.hint ?? '', /Your role does not allow this/);
      assert.equal((await job(paused.id)).state, 'Paused', 'the viewer changed nothing');
      // Nor are the other changes offered: adding sources, creating or ending restores, verifying storage.
      await viewer.goto(url('/sources'));
      await viewer.getByTestId('source-row').first().waitFor();
      assert.equal(await viewer.getByTestId('add-active').count(), 0, 'a viewer is offered no source to add');
      assert.equal(await viewer.getByRole('link', { name: 'Add passive source (SSH)' }).count(), 0);
      await viewer.goto(url('/restores'));
      await viewer.getByRole('heading', { name: 'Restores', exact: true }).waitFor();
      assert.equal(await viewer.getByRole('link', { name: 'Create a restore' }).count(), 0, 'a viewer is offered no restore to create');
      assert.equal(await viewer.getByRole('button', { name: 'Mark finished' }).count(), 0);
      await viewer.goto(url('/appliance'));
      await viewer.getByRole('heading', { name: 'Appliance' }).waitFor();
      await viewer.locator('section[aria-labelledby="defaults-h"]').waitFor();
      assert.equal(await viewer.locator('section[aria-labelledby="users-h"]').count(), 0, 'a viewer does not see the users');
      assert.ok(await viewer.locator('section[aria-labelledby="defaults-h"]').getByRole('button', { name: 'Save' }).isDisabled(), 'a viewer cannot save settings');
      assert.equal(await viewer.getByTestId('verify').count(), 0, 'a viewer is offered no storage verify');

      // The admin deletes the user: it is logged out everywhere.
      await users.locator('tbody tr', { hasText: 'night-viewer' }).getByRole('button', { name: 'Delete…' }).click();
      await dialog().getByText('User night-viewer is deleted and logged out everywhere. It cannot log in again.').waitFor();
      await dialog().getByRole('button', { name: 'Delete…' }).click();
      await dialog().waitFor({ state: 'detached' });
      await role.waitFor({ state: 'detached' });
      assert.equal(await byName(), undefined);
      await viewer.reload();
      await viewer.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
    } finally {
      await context.close();
    }
    // The paused job is not needed any more.
    await t.admin.json(`${API_PREFIX}/jobs/${paused.id}/cancel`, { method: 'POST', body: { keepPoints: [] } });
  });

  test('every route at 1366×768 and on a 768×1024 tablet: nothing wider than the screen, the main navigation on screen and clickable', async () => {
    const { page } = b;
    const routes = [
      '/',
      '/sources',
      `/sources/${sourceId}`,
      ...(passiveId ? [`/sources/${passiveId}`] : []),
      '/sources/add-active',
      '/sources/add-passive',
      '/jobs',
      ...(jobId ? [`/jobs/${jobId}`] : []),
      '/jobs/new',
      '/restores',
      `/restores/new${restoredPointId ? `?point=${restoredPointId}` : ''}`,
      '/appliance',
      '/no-such-page',
    ];
    const problems: string[] = [];
    for (const [width, height] of [
      [1366, 768],
      [768, 1024],
    ] as const) {
      await page.setViewportSize({ width, height });
      for (const route of routes) {
        await page.goto(url(route));
        await page.locator('main h1').first().waitFor();
        await page.getByText('Loading…').waitFor({ state: 'detached' });
        await page.evaluate('window.scrollTo(0, 0)');
        const overflow = await horizontalOverflow(page);
        if (overflow > 0) problems.push(`${width}×${height} ${route}: ${overflow} px wider than the window; sticking out: ${await sticksOut(page)}`);
        for (const name of ['Dashboard', 'Sources', 'Jobs', 'Restores', 'Appliance']) {
          const link = navLink(page, name);
          const box = await link.boundingBox();
          const hit = box
            ? await page.evaluate<boolean>(`(() => {
                const el = document.elementFromPoint(${box.x + box.width / 2}, ${box.y + box.height / 2});
                return !!el && el.closest('nav a')?.textContent.trim() === ${JSON.stringify(name)};
              })()`)
            : false;
          if (!box || box.x < 0 || box.x + box.width > width || box.y + box.height > height || !hit) {
            problems.push(`${width}×${height} ${route}: the ${name} link is not on screen and clickable (${JSON.stringify(box)})`);
          }
        }
      }
    }
    await page.setViewportSize({ width: 1366, height: 768 });
    assert.deepEqual(problems, []);
    // And the navigation works at the tablet size: a click moves to the page.
    await page.setViewportSize({ width: 768, height: 1024 });
    await page.goto(url('/'));
    await navLink(page, 'Restores').click();
    await page.getByRole('heading', { name: 'Restores', exact: true }).waitFor();
    await page.setViewportSize({ width: 1366, height: 768 });
  });
});
