import { FerryError } from '@ferry/protocol';

/** Wrong passwords allowed before each further try has to wait: from one address, and for one user name (from anywhere). */
const FREE_TRIES = { address: 5, user: 10 } as const;
const FIRST_DELAY_MS = 1000;
/**
 * An address can be made to wait up to 15 minutes; a user name only up to one minute, so someone guessing the
 * admin's password from many addresses slows the admin down but can never lock them out.
 */
const MAX_DELAY_MS = { address: 15 * 60_000, user: 60_000 } as const;
/** A key with no failure for this long starts again from zero. */
const FORGET_MS = 60 * 60_000;
const MAX_KEYS = 10_000;

interface Entry {
  failures: number;
  until: number;
  last: number;
}

/**
 * Login rate limit by source address and by user name: after FREE_TRIES wrong passwords each further try waits
 * 1 s, doubling up to a cap (exponential delay, never a permanent lock). A try counts as a failure from the moment
 * it starts, so parallel guesses cannot all slip through before the first one is checked.
 */
export class LoginThrottle {
  readonly #entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Throws LOGIN_THROTTLED while either key must wait; otherwise counts the try. */
  begin(address: string, username: string): void {
    const keys = this.#keys(address, username);
    const t = this.now();
    for (const k of keys) {
      const e = this.#entry(k, t);
      if (e && e.until > t) {
        const what = k.startsWith('a:') ? `from ${address}` : `for user "${username}"`;
        throw new FerryError('LOGIN_THROTTLED', `${e.failures} wrong passwords ${what}; try again in ${Math.ceil((e.until - t) / 1000)} s`);
      }
    }
    for (const k of keys) this.#fail(k, t);
  }

  /** The password was right: both keys start again from zero. */
  succeeded(address: string, username: string): void {
    for (const k of this.#keys(address, username)) this.#entries.delete(k);
  }

  #keys(address: string, username: string): [string, string] {
    return [`a:${address}`, `u:${username.toLowerCase()}`];
  }

  #entry(key: string, t: number): Entry | undefined {
    const e = this.#entries.get(key);
    if (e && t - e.last > FORGET_MS) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  #fail(key: string, t: number): void {
    const e = this.#entry(key, t) ?? { failures: 0, until: 0, last: t };
    e.failures++;
    e.last = t;
    const kind = key.startsWith('a:') ? 'address' : 'user';
    if (e.failures >= FREE_TRIES[kind]) {
      e.until = t + Math.min(MAX_DELAY_MS[kind], FIRST_DELAY_MS * 2 ** Math.min(30, e.failures - FREE_TRIES[kind]));
    }
    this.#entries.delete(key);
    this.#entries.set(key, e);
    // Oldest first in a Map: an attacker cycling addresses cannot grow it without bound.
    while (this.#entries.size > MAX_KEYS) this.#entries.delete(this.#entries.keys().next().value!);
  }
}
