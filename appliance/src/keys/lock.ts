import { existsSync } from 'node:fs';
import path from 'node:path';
import { ERRORS, FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { DataKeys } from './data-keys.js';
import { createKeyring, isEncrypted, unlockKeyring } from './keyring.js';

/**
 * `uninitialised`: no keyring and no data yet (a passphrase must be set); `locked`: encrypted, passphrase not
 * given since start; `unlocked`: serving (also an unencrypted data directory, which needs no passphrase).
 */
export type LockState = 'uninitialised' | 'locked' | 'unlocked';

/** Wrong passphrases allowed before each try must wait; the wait doubles from 1 s up to MAX_DELAY_S. */
const FREE_TRIES = 5;
const MAX_DELAY_S = 300;

/** Attempts kept while locked (the catalog, where the audit log is, cannot be written yet); older ones are counted. */
const KEEP_ATTEMPTS = 1000;

/** An unlock or initialise attempt made while locked, for the audit log once the catalog is open. */
export interface LockAttempt {
  at: string;
  address: string;
  action: 'unlock' | 'initialize';
  outcome: 'ok' | 'refused' | 'failed';
  /** The HTTP status the attempt was answered with (200 for the one that opened the lock). */
  status: number;
  code: string | null;
}

export interface LockOptions {
  /** Tests only: scrypt N for a new keyring (recorded in it), instead of calibrating to ~0.5 s. */
  testScryptN?: number | undefined;
  /**
   * Runs once the keys are known (null: unencrypted); the appliance is built here. Failing leaves it locked.
   * `attempts`: every attempt since the appliance started locked, the one that opened it last (empty when
   * unencrypted), with `dropped` older ones that were not kept.
   */
  onUnlocked(keys: DataKeys | null, attempts: readonly LockAttempt[], dropped: number): Promise<void>;
}

/**
 * The appliance's lock: holds the state, turns a passphrase into keys (one derivation at a time, so a flood of
 * tries cannot eat the CPU), and slows down guessing.
 */
export class ApplianceLock {
  #state: LockState;
  #failures = 0;
  #notBefore = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #attempts: LockAttempt[] = [];
  #dropped = 0;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: LockOptions,
  ) {
    if (isEncrypted(dataDir)) this.#state = 'locked';
    else this.#state = existsSync(path.join(dataDir, 'catalog.sqlite')) ? 'unlocked' : 'uninitialised';
  }

  get state(): LockState {
    return this.#state;
  }

  /** Unencrypted data directory: nothing to unlock, build the appliance now. */
  async openUnencrypted(): Promise<void> {
    if (this.#state !== 'unlocked') throw new Error('openUnencrypted() on an encrypted or uninitialised appliance');
    await this.opts.onUnlocked(null, [], 0);
  }

  /** Unlocks with the passphrase; PASSPHRASE_WRONG (counted) or UNLOCK_THROTTLED. Resolves at once when unlocked. */
  unlock(passphrase: string, from = 'local'): Promise<void> {
    return this.#serial(async () => {
      if (this.#state === 'unlocked') return;
      await this.#attempt('unlock', from, async () => {
        if (this.#state === 'uninitialised') throw new FerryError('APPLIANCE_LOCKED', 'the appliance has no passphrase yet: set one first (POST /api/v1/initialize, or the page at /)');
        const wait = Math.ceil((this.#notBefore - Date.now()) / 1000);
        if (wait > 0) throw new FerryError('UNLOCK_THROTTLED', `too many wrong passphrases: wait ${wait} s before the next try`);
        try {
          return await unlockKeyring(this.dataDir, passphrase);
        } catch (err) {
          if (err instanceof FerryError && err.code === 'PASSPHRASE_WRONG') {
            this.#failures++;
            if (this.#failures >= FREE_TRIES) this.#notBefore = Date.now() + Math.min(MAX_DELAY_S, 2 ** (this.#failures - FREE_TRIES)) * 1000;
            this.log.warn({ from, failures: this.#failures }, 'unlock refused: wrong passphrase');
          }
          throw err;
        }
      });
      this.#failures = 0;
      this.#notBefore = 0;
      this.#state = 'unlocked';
      this.log.info({ from }, 'appliance unlocked');
    });
  }

  /** Sets the passphrase of a new appliance (creates the keyring) and unlocks it. */
  initialize(passphrase: string, from = 'local'): Promise<void> {
    return this.#serial(async () => {
      if (this.#state === 'unlocked') {
        throw new FerryError('APPLIANCE_INITIALISED', 'the appliance is initialised and unlocked');
      }
      await this.#attempt('initialize', from, async () => {
        if (this.#state !== 'uninitialised') throw new FerryError('APPLIANCE_INITIALISED', 'the appliance has a passphrase already: unlock it instead');
        const keys = await createKeyring(this.dataDir, passphrase, { testN: this.opts.testScryptN });
        this.#state = 'locked';
        return keys;
      });
      this.#state = 'unlocked';
      this.log.info({ from }, 'appliance initialised with a passphrase and unlocked');
    });
  }

  /**
   * Gets the keys with `keysFrom`, then builds the appliance with every attempt so far. A refused or failed
   * attempt is kept for the audit log (the catalog cannot be written before the lock opens).
   */
  async #attempt(action: LockAttempt['action'], address: string, keysFrom: () => Promise<DataKeys>): Promise<void> {
    const at = new Date().toISOString();
    const ended = (err: unknown): LockAttempt => {
      const known = err instanceof FerryError ? err : null;
      // Refused: the try was wrong (a user error, also APPLIANCE_LOCKED's 503); failed: the appliance could not come up.
      return { at, address, action, outcome: known && ERRORS[known.code].user ? 'refused' : 'failed', status: known?.status ?? 500, code: known?.code ?? null };
    };
    let keys: DataKeys;
    try {
      keys = await keysFrom();
    } catch (err) {
      this.#keep(ended(err));
      throw err;
    }
    try {
      await this.opts.onUnlocked(keys, [...this.#attempts, { at, address, action, outcome: 'ok', status: 200, code: null }], this.#dropped);
    } catch (err) {
      this.#keep(ended(err));
      throw err;
    }
    this.#attempts = [];
    this.#dropped = 0;
  }

  #keep(attempt: LockAttempt): void {
    this.#attempts.push(attempt);
    if (this.#attempts.length > KEEP_ATTEMPTS) {
      this.#attempts.shift();
      this.#dropped++;
    }
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
