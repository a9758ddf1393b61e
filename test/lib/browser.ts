import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
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

/** Polls `fn` every 200 ms until it returns something truthy; fails naming `what` (and the last error) after `timeoutMs`. */
export async function waitUntil<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** A link of the web UI's main navigation (pages repeat some of them). */
export function navLink(page: Page, name: string): Locator {
  return page.getByRole('navigation').getByRole('link', { name, exact: true });
}

/** Logs in through the login page the browser shows. */
export async function logIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('user').getByText(username, { exact: true }).waitFor();
}

/**
 * Records, inside the page, every distinct value a JavaScript `expression` takes as the DOM changes (a
 * MutationObserver evaluates it after each change), so a state the page shows only briefly is not missed between
 * polls. Lives as long as the document (the web UI changes routes without reloading it).
 */
export async function recordInPage(page: Page, key: string, expression: string): Promise<{ values(): Promise<string[]>; stop(): Promise<void> }> {
  const k = JSON.stringify(key);
  await page.evaluate(`(() => {
    const store = (window.__ferryRecord ??= {});
    store[${k}]?.observer.disconnect();
    const read = () => { try { return String(${expression}); } catch (e) { return 'error: ' + e.message; } };
    const values = [];
    const record = () => { const v = read(); if (values[values.length - 1] !== v) values.push(v); };
    record();
    const observer = new MutationObserver(record);
    observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    store[${k}] = { values, observer };
  })()`);
  return {
    values: () => page.evaluate<string[]>(`window.__ferryRecord[${k}].values.slice()`),
    stop: () => page.evaluate<void>(`window.__ferryRecord[${k}].observer.disconnect()`),
  };
}

/** What has keyboard focus, and how it is drawn: the focus indicator must be visible (outline or box-shadow). */
export interface FocusedElement {
  tag: string;
  text: string;
  testid: string | null;
  href: string | null;
  name: string | null;
  inDialog: boolean;
  outline: string;
  boxShadow: string;
  /** An outline wider than 0 that is not `none`, or a box-shadow. */
  visible: boolean;
}

export async function focused(page: Page): Promise<FocusedElement> {
  return page.evaluate<FocusedElement>(`(() => {
    const el = document.activeElement ?? document.body;
    const s = getComputedStyle(el);
    const outline = s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor;
    return {
      tag: el.tagName.toLowerCase(),
      text: (el.innerText ?? el.textContent ?? '').trim().slice(0, 200),
      testid: el.getAttribute('data-testid'),
      href: el.getAttribute('href'),
      name: el.getAttribute('name'),
      inDialog: el.closest('dialog') !== null,
      outline,
      boxShadow: s.boxShadow,
      visible: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || (s.boxShadow !== 'none' && s.boxShadow !== ''),
    };
  })()`);
}

/** Presses Tab until the focused element satisfies `pred`, at most `max` times; fails naming `what` otherwise. */
export async function tabTo(page: Page, what: string, pred: (el: FocusedElement) => boolean, max = 60): Promise<FocusedElement> {
  const seen: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const el = await focused(page);
    if (pred(el)) return el;
    seen.push(`${el.tag}${el.testid ? `[${el.testid}]` : ''} "${el.text.slice(0, 30)}"`);
  }
  throw new Error(`Tab did not reach ${what} in ${max} presses; it went through: ${seen.join(', ')}`);
}

/** How many CSS pixels the document is wider than the window (> 0: the page scrolls sideways). */
export async function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
}
