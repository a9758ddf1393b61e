import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX } from '@ferry/protocol';
import { ROOT, startAppliance, TEST_PASSPHRASE, type RunningAppliance } from '../lib/cli.js';
import { startBrowser, type TestBrowser } from '../lib/browser.js';

/*
 * The appliance's own unlock page in a real browser: a new appliance asks for the passphrase that encrypts it, a
 * restarted one is locked until someone types it. The page's script runs under a Content-Security-Policy that
 * allows only that script (by hash) and no form posts, so this also proves the policy lets the page work and
 * nothing else run. While locked, the web UI and the API give nothing away.
 */

describe('the unlock page in a browser', { timeout: 5 * 60_000 }, () => {
  let work: string;
  let dataDir: string;
  let appliance: RunningAppliance | undefined;
  let b: TestBrowser;
  const cspViolations: string[] = [];

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-unlock-page-'));
    dataDir = path.join(work, 'appliance');
    b = await startBrowser();
    b.page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });

  after(async () => {
    await b?.close().catch(() => undefined);
    await appliance?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** The built web UI's script (web/dist/assets/index-HASH.js). */
  async function webScript(): Promise<string> {
    const name = (await readdir(path.join(ROOT, 'web/dist/assets'))).find((f) => /^index-.*\.js$/.test(f));
    assert.ok(name, 'web/dist is built');
    return name;
  }

  /** While not unlocked: the API answers APPLIANCE_LOCKED, the web UI's files are not served. */
  async function givesNothingAway(a: RunningAppliance): Promise<void> {
    const jobs = await b.page.request.get(`${a.url}${API_PREFIX}/jobs`);
    assert.equal(jobs.status(), 503);
    assert.equal(((await jobs.json()) as { code: string }).code, 'APPLIANCE_LOCKED');
    const asset = await b.page.request.get(`${a.url}/assets/${await webScript()}`);
    assert.equal(asset.status(), 503, 'no web UI file while locked');
    const health = await b.page.request.get(`${a.url}${API_PREFIX}/health`);
    assert.equal(health.status(), 200);
  }

  test('a new appliance asks for its passphrase twice, refuses a weak one, then starts the web UI', async () => {
    appliance = await startAppliance(dataDir, { unlock: false });
    const { page } = b;
    await page.goto(appliance.url);
    await page.getByText('This appliance is new').waitFor();
    await givesNothingAway(appliance);

    await page.getByLabel('Passphrase', { exact: true }).fill(TEST_PASSPHRASE);
    await page.getByLabel('Passphrase again').fill(`${TEST_PASSPHRASE}!`);
    await page.getByRole('button', { name: 'Set passphrase and start' }).click();
    await page.getByText('The two passphrases differ.').waitFor();

    await page.getByLabel('Passphrase', { exact: true }).fill('aaaaaaaaaaaaaa');
    await page.getByLabel('Passphrase again').fill('aaaaaaaaaaaaaa');
    await page.getByRole('button', { name: 'Set passphrase and start' }).click();
    // The appliance's message, its hint and its code.
    await page.getByText(/at least 5 different.*\(PASSPHRASE_WEAK\)/).waitFor();
    await b.screenshot('unlock-new');

    await page.getByLabel('Passphrase', { exact: true }).fill(TEST_PASSPHRASE);
    await page.getByLabel('Passphrase again').fill(TEST_PASSPHRASE);
    await page.getByRole('button', { name: 'Set passphrase and start' }).click();
    // The page reloads into the web UI's own first start.
    await page.getByRole('heading', { name: 'Set the admin password' }).waitFor();
    assert.deepEqual(cspViolations, [], 'the page needed nothing its policy forbids');
  });

  test('after a restart the appliance is locked: a wrong passphrase is refused with what to do, the right one opens the web UI', async () => {
    await appliance!.stop();
    appliance = await startAppliance(dataDir, { unlock: false });
    const { page } = b;
    await page.goto(appliance.url);
    await page.getByText('The appliance is locked').waitFor();
    await givesNothingAway(appliance);

    await page.getByLabel('Passphrase', { exact: true }).fill('not the passphrase at all');
    await page.getByRole('button', { name: 'Unlock' }).click();
    await page.getByText(/cannot be recovered or reset.*\(PASSPHRASE_WRONG\)/).waitFor();
    await b.screenshot('unlock-locked');
    assert.equal((await page.request.get(`${appliance.url}${API_PREFIX}/jobs`)).status(), 503, 'still locked');

    // The unlock throttle may ask to wait after a wrong try; the page says so, and the next try goes through.
    await page.getByLabel('Passphrase', { exact: true }).fill(TEST_PASSPHRASE);
    for (let i = 0; i < 30; i++) {
      await page.getByRole('button', { name: 'Unlock' }).click();
      const outcome = await Promise.race([
        page.getByRole('heading', { name: 'Set the admin password' }).waitFor().then(() => 'unlocked'),
        page.getByText(/UNLOCK_THROTTLED/).waitFor().then(() => 'throttled'),
      ]);
      if (outcome === 'unlocked') break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    await page.getByRole('heading', { name: 'Set the admin password' }).waitFor({ timeout: 1000 });
    const jobs = await page.request.get(`${appliance.url}${API_PREFIX}/jobs`);
    assert.equal(jobs.status(), 401, 'unlocked: the API now asks for a credential');
    assert.equal((await page.request.get(`${appliance.url}/assets/${await webScript()}`)).status(), 200, 'and the web UI is served');
    assert.deepEqual(cspViolations, []);
  });
});
