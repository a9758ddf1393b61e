import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './cli.js';

/** Debian's Chromium (scripts/install-system-deps.sh installs it); playwright-core drives it over CDP. */
export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, 'docs/screenshots');
/** What the web UI shows for a translation key a dictionary lacks (web/src/lib/i18n/i18n.svelte.ts). */
export const MISSING_MARK = '⟦missing:';

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Saves docs/screenshots/NAME.png of the whole page. */
  screenshot(name: string): Promise<void>;
  /** Fails when the page shows a missing-translation marker; returns the page text. */
  assertTranslated(where: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A headless Chromium at 1366×768 (the field engineer's laptop) that trusts nothing but ignores the appliance's
 * self-signed certificate, as an engineer clicking through the browser's warning once does. Runs as root here,
 * so Chromium's sandbox is off.
 */
export async function startBrowser(opts: { width?: number; height?: number; locale?: string } = {}): Promise<TestBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  try {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: opts.width ?? 1366, height: opts.height ?? 768 },
      locale: opts.locale ?? 'en-US',
      timezoneId: 'UTC',
    });
    const page = await context.newPage();
    await mkdir(SCREENSHOTS, { recursive: true });
    return {
      browser,
      context,
      page,
      screenshot: async (name) => {
        await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
      },
      assertTranslated: async (where) => {
        const text = await page.locator('body').innerText();
        const at = text.indexOf(MISSING_MARK);
        if (at >= 0) throw new Error(`${where}: a translation is missing: ${text.slice(at, at + 80)}`);
        return text;
      },
      close: () => browser.close(),
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}
