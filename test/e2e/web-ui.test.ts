import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, BlockIndex, BlockKind, RESTORE_CODE_PATTERN, type JobView, type Point } from '@ferry/protocol';
import { openStores } from '@ferry/appliance/testing';
import type { Page } from 'playwright-core';
import { ferryOk, ROOT, TEST_PASSPHRASE } from '../lib/cli.js';
import { createPartitionedImage, withMounted } from '../lib/disk-image.js';
import { startAgentDaemon, startTestAppliance, type AgentDaemon, type TestAppliance } from '../lib/jobs.js';
import { startBrowser, waitUntil, type TestBrowser } from '../lib/browser.js';
import { ensureAgentBinary } from '../lib/agent-binary.js';
import { flipBits } from '../lib/damage.js';

/*
 * The web UI in Debian's headless Chromium against an in-process appliance (real HTTPS, socket.io, SQLite, chunk
 * store) and a real agent process backing up a partitioned ext4 disk image. Saves screenshots of the main
 * screens into docs/screenshots/ (linked from docs/operator-guide.md).
 */

const ADMIN = 'admin';
const PASSWORD = 'correct horse battery staple';
const LANGS = ['en', 'zh-CN', 'ja'] as const;
/** Where the test appliance looks for the restore ISO: its default, `make iso`'s output. */
const DEFAULT_RESTORE_ISO = path.join(ROOT, 'iso/out/ferry-restore.iso');

/** A link of the main navigation (the dashboard repeats some of them). */
const nav = (page: Page, name: string) => page.getByRole('navigation').getByRole('link', { name, exact: true });

describe('web UI in a real browser', { timeout: 10 * 60_000 }, () => {
  let work: string;
  let t: TestAppliance;
  let b: TestBrowser;
  let agent: AgentDaemon | undefined;
  let image: string;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-web-ui-'));
    // A GPT disk: ext4 with 48 MiB of incompressible files, swap, free space; the agent reads only used blocks.
    image = path.join(work, 'source.img');
    await createPartitionedImage(image, 'gpt', 128, 104, 8);
    await withMounted(image, 1, async (dir) => {
      for (let i = 0; i < 6; i++) await writeFile(path.join(dir, `data-${i}.bin`), randomBytes(8 * 1024 * 1024));
    });
    t = await startTestAppliance();
    b = await startBrowser();
  });

  after(async () => {
    await agent?.kill().catch(() => undefined);
    await b?.close().catch(() => undefined);
    await t?.close().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  test('first start asks for an admin password: there is no default account', async () => {
    const { page } = b;
    await page.goto(t.server.url);
    await page.getByRole('heading', { name: 'Set the admin password' }).waitFor();
    // Nobody can log in before setup.
    const res = await page.request.post(`${t.server.url}${API_PREFIX}/login`, { data: { username: 'admin', password: 'admin' } });
    assert.equal(res.status(), 409);
    assert.equal(((await res.json()) as { code: string }).code, 'SETUP_REQUIRED');
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByLabel('Repeat the password').fill('short');
    await page.getByRole('button', { name: 'Create admin and log in' }).click();
    await page.getByText('The password is too short').waitFor();
    await b.screenshot('first-start');
    await page.getByLabel('User name').fill(ADMIN);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create admin and log in' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.getByText('Nothing needs your attention.').waitFor();
    await b.screenshot('dashboard-empty');
    // Setup runs once.
    const again = await page.request.post(`${t.server.url}${API_PREFIX}/setup`, { data: { username: 'other', password: 'another long password' } });
    assert.equal(again.status(), 409);
  });

  test('logout, a wrong password is refused, the right one logs in', async () => {
    const { page } = b;
    await page.getByTestId('logout').click();
    await page.getByRole('heading', { name: 'Log in to Ferry' }).waitFor();
    // The session cookie no longer opens the API.
    assert.equal((await page.request.get(`${t.server.url}${API_PREFIX}/jobs`)).status(), 401);
    await page.getByLabel('User name').fill(ADMIN);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    const refusal = page.getByRole('alert');
    await refusal.getByText('Wrong user name or password').waitFor();
    assert.match(await refusal.innerText(), /LOGIN_FAILED/);
    await b.screenshot('login-refused');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.getByTestId('user').getByText(ADMIN).waitFor();
  });

  test('add an active source: the install command, then the source comes online when its agent enrolls', async () => {
    const { page } = b;
    // POST /agent-installs offers the agent executable: build it (make skips the work when nothing changed).
    await ensureAgentBinary();
    await nav(page, 'Sources').click();
    await page.getByText('No source yet.').waitFor();
    await page.getByTestId('add-active').click();
    await page.getByTestId('make-command').click();
    const command = page.getByTestId('install-command');
    await command.waitFor();
    const token = (await page.getByTestId('enroll-token').innerText()).trim();
    const fingerprint = (await page.getByTestId('fingerprint').innerText()).trim();
    assert.match(await command.innerText(), /ferry_enroll_/);
    assert.equal(fingerprint, t.server.fingerprint);
    await b.screenshot('add-active-source');

    // From here on the pages learn about the source only from source.updated events: count the REST reads of
    // sources they make, which must be none while the page waits.
    let sourceReads = 0;
    const countReads = (req: { method(): string; url(): string }): void => {
      if (req.method() === 'GET' && new URL(req.url()).pathname.startsWith(`${API_PREFIX}/sources`)) sourceReads++;
    };
    page.on('request', countReads);
    try {
      const state = path.join(work, 'agent-state');
      await ferryOk('agent', ['enroll', '--appliance', t.server.url, '--fingerprint', fingerprint, '--token', token, '--state', state, '--name', 'web-source']);
      const arrived = page.getByTestId('arrived');
      await arrived.getByText('web-source').waitFor({ timeout: 60_000 });
      await arrived.getByText('Offline').waitFor();
      assert.equal(sourceReads, 0, 'the enrolled source appeared without the page asking for it');

      // The list shows it offline; the agent starts and the same page, untouched, shows it online.
      await nav(page, 'Sources').click();
      const row = page.getByTestId('source-row').filter({ hasText: 'web-source' });
      await row.getByTestId('source-status').getByText('Offline').waitFor();
      const readsBefore = sourceReads;
      agent = startAgentDaemon(state, [image]);
      await row.getByTestId('source-status').getByText('Online').waitFor({ timeout: 60_000 });
      assert.equal(sourceReads, readsBefore, 'online came by the source.updated event, not by reading the sources again');
    } finally {
      page.off('request', countReads);
    }
    await b.screenshot('sources');
  });

  test('create a job, watch the progress bar move and a point appear, pause and resume it', async () => {
    const { page } = b;
    await nav(page, 'Jobs').click();
    await page.getByTestId('new-job').click();
    await page.getByTestId('job-source').selectOption({ label: 'web-source' });
    await page.getByLabel('Sync every').fill('6');
    await page.getByLabel('Keep at most (points)').fill('3');
    // 16 Mbit/s: two megabytes a second, so sending the 48 MiB of files takes long enough to watch and pause
    // (the agent reads ahead of what it has sent only as far as its buffers reach).
    await page.getByLabel('Network limit (Mbit/s)').fill('16');
    await b.screenshot('job-create');
    // Every value the job page's bar shows is recorded in the page (routes change the hash, not the document), so
    // a short-lived one is not missed between polls.
    await page.evaluate(`(() => {
      window.__bar = [];
      const record = () => {
        const el = document.querySelector('[data-testid="job-progress"]');
        if (el) window.__bar.push(Number(el.getAttribute('data-value')));
      };
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-value'] });
    })()`);
    const shown = (): Promise<number[]> => page.evaluate<number[]>('window.__bar');
    await page.getByTestId('create-job').click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    const jobId = Number(/#\/jobs\/(\d+)$/.exec(page.url())![1]);
    const diag = async (err: unknown): Promise<never> => {
      throw new Error(`${String(err)}\nbar: ${JSON.stringify(await shown())}\njob: ${JSON.stringify(await t.job(jobId))}\nagent: ${agent?.output() ?? ''}\n${t.server.appliance.jobs.logText(jobId)}`);
    };
    const [first, later] = await waitUntil<[number, number]>('the bar to move', async () => {
      const values = await shown();
      const at = values.findIndex((v) => v > 0 && v < 100);
      const next = at >= 0 ? values.slice(at + 1).find((v) => v > values[at]!) : undefined;
      return next !== undefined ? [values[at]!, next] : null;
    }).catch(diag);
    assert.ok(later > first, `the bar went from ${first} % to ${later} %`);
    await page.getByTestId('job-rate').waitFor();
    await b.screenshot('job-running');

    // Pause: the dialog says what happens before anything does.
    assert.equal((await t.job(jobId)).state, 'Syncing', 'the cycle is still running when it is paused');
    await page.getByTestId('action-pause').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('The running cycle stops and no cycle runs until you resume.').waitFor();
    await b.screenshot('job-confirm-pause');
    await dialog.getByRole('button', { name: 'Pause' }).click();
    await page.locator('[data-testid="job-state"][data-state="Paused"]').waitFor();
    assert.equal((await t.job(jobId)).state, 'Paused');
    await page.getByTestId('action-resume').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Resume' }).click();
    await waitUntil('the job to run again', async () => ['Syncing', 'Waiting'].includes((await t.job(jobId)).state));

    // The full cycle finishes: a point appears in the history without a reload.
    const waiting: JobView = await t.waitFor('the first point', jobId, (j) => j.state === 'Waiting' && j.pointCount === 1, 180_000);
    assert.equal(waiting.pointCount, 1);
    await page.getByTestId('point-row').first().getByText('CYCLE_1').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="job-state"][data-state="Waiting"]').waitFor();
    await b.screenshot('job-detail');

    // The source page draws the disk from that point: partitions and the used/unused bar.
    await nav(page, 'Sources').click();
    await page.getByRole('link', { name: 'web-source' }).click();
    await page.getByText('Partition table: GPT').waitFor();
    await b.screenshot('source-detail');
  });

  test('create a restore for the point and see its code', async () => {
    const { page } = b;
    await nav(page, 'Jobs').click();
    await page.getByRole('link', { name: 'web-source' }).click();
    await page.getByTestId('restore-point').first().click();
    await page.getByTestId('create-restore').click();
    const code = (await page.getByTestId('restore-code').innerText()).trim();
    assert.match(code, RESTORE_CODE_PATTERN);
    assert.equal((await page.getByTestId('restore-address').innerText()).trim(), new URL(t.server.url).origin);
    // The restore ISO to boot the target from: a link with its size, or, where `make iso` has not run, the reason.
    const iso = await stat(DEFAULT_RESTORE_ISO).catch(() => null);
    if (iso) {
      const link = page.getByTestId('iso-download');
      await link.waitFor();
      assert.match(await link.innerText(), new RegExp(`Download the restore ISO \\(${(iso.size / 2 ** 20).toFixed(1)} MiB\\)`));
      // The link works with the browser's session, and resumes: the first bytes of the very file.
      const href = (await link.getAttribute('href'))!;
      const head = await page.request.get(new URL(href, t.server.url).toString(), { headers: { range: 'bytes=0-4095' } });
      assert.equal(head.status(), 206);
      const fh = await open(DEFAULT_RESTORE_ISO, 'r');
      try {
        const first = Buffer.alloc(4096);
        await fh.read(first, 0, 4096, 0);
        assert.ok((await head.body()).equals(first), 'the download starts with the ISO’s bytes');
      } finally {
        await fh.close();
      }
    } else {
      const missing = page.getByTestId('iso-missing');
      await missing.getByText('The restore ISO has not been built on this appliance').waitFor();
      assert.match(await missing.innerText(), /make iso[\s\S]*ISO_NOT_BUILT/);
    }
    await b.screenshot('restore-code');
    await page.getByRole('link', { name: 'Watch the restore' }).click();
    await page.getByTestId('restore').first().getByText('Waiting for the ISO').waitFor();
    await b.screenshot('restores');
  });

  test('the appliance page: fingerprint, users, storage verify (clean, then a damaged chunk named by point)', async () => {
    const { page } = b;
    await nav(page, 'Appliance').click();
    assert.equal((await page.getByTestId('appliance-fingerprint').innerText()).trim(), t.server.fingerprint);
    await page.getByTestId('verify').click();
    await page.getByTestId('verify-result').getByText('All good').waitFor({ timeout: 120_000 });
    await b.screenshot('appliance');

    // One byte of a stored chunk of the first point inverted: verify names that point and the block's chunk.
    const point = (await t.admin.json<Point[]>(`${API_PREFIX}/points`))[0]!;
    const index = BlockIndex.parse(await t.admin.bytes(`${API_PREFIX}/points/${point.id}/disks/${point.disks[0]!.diskId}/index`));
    let n = 0;
    while (index.kind(n) !== BlockKind.Data) n++;
    const { chunks } = await openStores(t.dataDir, TEST_PASSPHRASE);
    const file = chunks.pathOf(index.chunkIdHex(n));
    const invert = (): Promise<void> => flipBits(file, 80, 0xff);
    await invert();
    try {
      await page.getByTestId('verify').click();
      await page.getByTestId('verify-result').getByText('1 damaged chunk(s) found.').waitFor({ timeout: 120_000 });
      const section = page.locator('section[aria-labelledby="verify-h"]');
      await section.getByText(`${point.name} (#${point.id})`).waitFor();
      await section.getByText('Run a new cycle of their jobs (sync now) so fresh points are made, then delete the damaged ones.', { exact: false }).waitFor();
      await b.screenshot('verify-damaged');
    } finally {
      await invert();
    }
    await page.getByTestId('verify').click();
    await page.getByTestId('verify-result').getByText('All good').waitFor({ timeout: 120_000 });
    await nav(page, 'Dashboard').click();
    await page.getByTestId('dedupe').waitFor();
    await b.screenshot('dashboard');
  });

  test('each language renders every page without a missing translation', async () => {
    const { page } = b;
    const jobId = (await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`))[0]!.id;
    const sourceId = (await t.admin.json<{ id: number }[]>(`${API_PREFIX}/sources`))[0]!.id;
    const pages = ['/', '/sources', `/sources/${sourceId}`, '/sources/add-active', '/sources/add-passive', '/jobs', `/jobs/${jobId}`, '/jobs/new', '/restores', '/restores/new', '/appliance'];
    for (const lang of LANGS) {
      await page.getByTestId('lang').first().selectOption(lang);
      for (const p of pages) {
        await page.goto(`${t.server.url}/#${p}`);
        await page.locator('main h1').first().waitFor();
        await page.getByText('Loading…').waitFor({ state: 'detached' }).catch(() => undefined);
        const text = await b.assertTranslated(`${lang} ${p}`);
        assert.ok(text.length > 50, `${lang} ${p} shows almost nothing`);
      }
      if (lang !== 'en') {
        await page.goto(`${t.server.url}/#/jobs/${jobId}`);
        await page.getByTestId('point-row').first().waitFor();
        await b.screenshot(`job-detail-${lang}`);
      }
    }
    // The login page too, in each language.
    await page.getByTestId('logout').click();
    for (const lang of LANGS) {
      await page.getByTestId('lang').selectOption(lang);
      await page.locator('form button[type="submit"]').waitFor();
      await b.assertTranslated(`${lang} login`);
    }
    await page.getByTestId('lang').selectOption('en');
  });

  test('a source named with a script tag and an RTL override shows as inert text; an admin revokes its agent', async () => {
    const { page } = b;
    const hostile = '<img src=x onerror="window.__ferryXss=1">\u202Egnp.exe';
    const a = t.server.appliance;
    const { sourceId } = a.auth.enroll({ token: a.auth.createEnrollToken().token, hostname: hostile });
    await page.goto(t.server.url);
    await page.getByLabel('User name').fill(ADMIN);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    for (const p of ['/sources', `/sources/${sourceId}`]) {
      await page.goto(`${t.server.url}/#${p}`);
      await page.getByText('<img src=x onerror=', { exact: false }).first().waitFor();
    }
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no element was made from the name');
    assert.equal(await page.evaluate('window.__ferryXss'), undefined, 'no script ran');

    // The RTL override cannot reach past the name: where the name stands alone (list, heading) it is a <bdi>,
    // isolated by its computed style; inside a sentence it sits between FSI and PDI. (Page code is sent as text:
    // the test project has no DOM types.)
    const isolation = (find: string): Promise<unknown> =>
      page.evaluate(`(() => {
        const e = ${find};
        return { tag: e.tagName, unicodeBidi: getComputedStyle(e).unicodeBidi, text: e.textContent };
      })()`);
    const standalone = { tag: 'BDI', unicodeBidi: 'isolate', text: hostile };
    assert.deepEqual(await isolation(`document.querySelector('h1 [data-testid="source-name"]')`), standalone, 'the heading');
    await page.goto(`${t.server.url}/#/sources`);
    await page.getByTestId('source-row').filter({ hasText: 'gnp.exe' }).waitFor();
    assert.deepEqual(
      await isolation(`[...document.querySelectorAll('[data-testid="source-row"]')].find((r) => r.textContent.includes('gnp.exe')).querySelector('[data-testid="source-name"]')`),
      standalone,
      'the list',
    );
    await page.goto(`${t.server.url}/#/sources/${sourceId}`);
    await page.getByTestId('revoke-agent').click();
    const sentence = page.getByRole('dialog').locator('p').first();
    await sentence.getByText('is cut off at once', { exact: false }).waitFor();
    assert.ok((await sentence.textContent())!.includes(`The agent of \u2068${hostile}\u2069 is cut off at once`), 'the name is isolated in the sentence');
    /*
     * Where the words after the name are drawn: each character's box from a Range, left to right on a line in
     * reading order. Measured in the dialog's sentence itself, and in a control copy of it without the isolation
     * marks, which must come out reversed: the measurement is shown to see what an override does.
     */
    const order = (withoutIsolation: boolean): Promise<{ ordered: number; reversed: number }> =>
      page.evaluate(`(() => {
        const after = ' is cut off at once and cannot connect';
        const el = document.querySelector('dialog[open] p');
        let target = el;
        if (${withoutIsolation}) {
          target = document.createElement('p');
          target.textContent = el.textContent.replace('\u2068', '').replace('\u2069', '');
          el.after(target);
        }
        try {
          const node = [...target.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.data.includes(after));
          const from = node.data.indexOf(after);
          let ordered = 0;
          let reversed = 0;
          let prev = null;
          for (let i = from; i < from + after.length; i++) {
            if (node.data[i] === ' ') continue;
            const r = document.createRange();
            r.setStart(node, i);
            r.setEnd(node, i + 1);
            const box = r.getBoundingClientRect();
            if (prev && Math.abs(prev.top - box.top) < 2) {
              if (box.left > prev.left) ordered++;
              else reversed++;
            }
            prev = box;
          }
          return { ordered, reversed };
        } finally {
          if (target !== el) target.remove();
        }
      })()`);
    const inDialog = await order(false);
    assert.ok(inDialog.ordered >= 15 && inDialog.reversed === 0, `the words after the isolated name read left to right: ${JSON.stringify(inDialog)}`);
    const control = await order(true);
    assert.ok(control.reversed >= 15 && control.ordered === 0, `without isolation the override reverses them (so the check can see it): ${JSON.stringify(control)}`);
    await page.keyboard.press('Escape');

    // A state change from the page itself: the app sends the session's CSRF header.
    await page.getByTestId('revoke-agent').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke agent…' }).click();
    await page.getByText('Revoked: 1 credential(s).').waitFor();
    assert.equal(a.auth.agentCredentials(sourceId).live, 0);
  });

  test('a tablet (768×1024) gets the same screens, with nothing cut off', async () => {
    const tablet = await startBrowser({ width: 768, height: 1024 });
    try {
      const { page } = tablet;
      await page.goto(t.server.url);
      await page.getByLabel('User name').fill(ADMIN);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Log in' }).click();
      const jobId = (await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`))[0]!.id;
      await page.goto(`${t.server.url}/#/jobs/${jobId}`);
      await page.getByTestId('point-row').first().waitFor();
      const overflow = Number(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'));
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than the tablet screen`);
      await tablet.screenshot('job-detail-tablet');
    } finally {
      await tablet.close();
    }
  });

  // Last: preparing pauses every job and refuses cycles until the arrival check passed.
  test('the appliance page prepares for transport (ready to power off), then the arrival check passes', async () => {
    const { page } = b;
    await page.goto(`${t.server.url}/#/appliance`);
    const panel = page.getByTestId('transport');
    await panel.getByText('Not prepared for transport.').waitFor();
    await page.getByTestId('transport-prepare').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('it is safe to switch the appliance off', { exact: false }).waitFor();
    await dialog.getByRole('button', { name: 'Prepare for transport', exact: true }).click();
    await panel.getByText('Ready to power off.').waitFor({ timeout: 180_000 });
    assert.match((await panel.getByTestId('transport-root-hash').innerText()).trim(), /^[0-9a-f]{64}$/);
    for (const j of await t.admin.json<JobView[]>(`${API_PREFIX}/jobs`)) assert.equal(j.state, 'Paused', `job ${j.id} is paused for the trip`);
    await page.getByTestId('transport-arrival').click();
    await dialog.getByRole('button', { name: 'Run the arrival check', exact: true }).click();
    await panel.getByText('Arrival check passed: jobs may resume.').waitFor({ timeout: 180_000 });
    await panel.getByRole('link', { name: /^Job #\d+$/ }).first().waitFor();
  });
});
