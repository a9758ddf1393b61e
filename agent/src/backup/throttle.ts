import { setTimeout as delay } from 'node:timers/promises';
import { DEFAULT_THROTTLE, type Throttle } from '@ferry/protocol';

/** Time as the throttles see it; tests pass a clock that only moves when a throttle sleeps. */
export interface ThrottleClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: ThrottleClock = {
  // Monotonic: a wall-clock step (NTP) must not grant or withhold a burst.
  now: () => performance.now(),
  sleep: (ms) => delay(ms),
};

/**
 * Waits are cut into slices of at most this length and re-evaluated after each, so a live throttle change
 * (or a stop) takes effect within a quarter second even when the current wait would be seconds long.
 */
export const MAX_WAIT_MS = 250;

/**
 * The bucket holds this much time's worth of bytes: short bursts pass at line speed, the average stays capped.
 * A second, so the pauses between upload batches (the appliance answering, the next missing-chunks query) are
 * made up by the next batch instead of lowering the average below the setting.
 */
export const BURST_MS = 1000;

/** At most this much disk busy time is banked while the agent does not read (e.g. while an upload drains). */
export const DISK_CREDIT_MS = 100;

const BYTES_PER_MS_PER_MBPS = 1_000_000 / 8 / 1000;

// Slack for floating-point rounding: after sleeping exactly the computed wait, the refill may land a hair short.
const BYTE_SLACK = 1e-3;
const MS_SLACK = 1e-3;

/**
 * Token bucket on bytes sent, in Mbit/s (0 = unlimited). A frame larger than the bucket passes once the bucket
 * is full and leaves a debt that the following bytes repay, so the long-run rate is exact for any frame size.
 */
export class NetworkThrottle {
  readonly #clock: ThrottleClock;
  #mbps = 0;
  #bytesPerMs = 0;
  #capacity = 0;
  #tokens = 0;
  #at: number;

  constructor(mbps: number, clock: ThrottleClock = systemClock) {
    this.#clock = clock;
    this.#at = clock.now();
    this.setRate(mbps);
  }

  get mbps(): number {
    return this.#mbps;
  }

  /** Applies to the bytes not yet let through; bytes already sent keep the debt they made. */
  setRate(mbps: number): void {
    if (!Number.isFinite(mbps) || mbps < 0) throw new RangeError(`network rate must be 0 (unlimited) or more Mbit/s, got ${mbps}`);
    const wasUnlimited = this.#bytesPerMs === 0;
    this.#refill();
    this.#mbps = mbps;
    this.#bytesPerMs = mbps * BYTES_PER_MS_PER_MBPS;
    this.#capacity = this.#bytesPerMs * BURST_MS;
    // Leaving "unlimited" starts with a full bucket, as at start-up; a lower rate keeps no more than its burst.
    this.#tokens = wasUnlimited ? this.#capacity : Math.min(this.#tokens, this.#capacity);
  }

  /** Resolves when `bytes` may be sent, or as soon as `signal` aborts (the caller then stops). */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.#bytesPerMs === 0 || signal?.aborted) return;
      this.#refill();
      const need = Math.min(bytes, this.#capacity);
      if (this.#tokens + BYTE_SLACK >= need) {
        this.#tokens -= bytes;
        return;
      }
      await this.#clock.sleep(Math.min(MAX_WAIT_MS, (need - this.#tokens) / this.#bytesPerMs));
    }
  }

  #refill(): void {
    const t = this.#clock.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (t - this.#at) * this.#bytesPerMs);
    this.#at = t;
  }
}

/**
 * Keeps our reads to a share of the source disk's time so its own workload keeps the rest: busy time (any
 * read of ours in flight) earns `diskPercent` % of wall time as credit and costs all of it; a read starts only
 * with non-negative credit, and at most `queueDepth` are in flight. After a lone read of d ms at p % the next
 * one waits d·(100−p)/p ms, so busy / wall = p %. Reads are admitted in the order they were asked for.
 */
export class StorageThrottle {
  readonly #clock: ThrottleClock;
  #share = 1;
  #depth = 1;
  #inFlight = 0;
  #credit = 0;
  #at: number;
  #admission: Promise<void> = Promise.resolve();
  #slotFreed: (() => void) | null = null;

  constructor(diskPercent: number, queueDepth: number, clock: ThrottleClock = systemClock) {
    this.#clock = clock;
    this.#at = clock.now();
    this.set(diskPercent, queueDepth);
  }

  get diskPercent(): number {
    return this.#share * 100;
  }

  get queueDepth(): number {
    return this.#depth;
  }

  set(diskPercent: number, queueDepth: number): void {
    if (!(diskPercent > 0 && diskPercent <= 100)) throw new RangeError(`disk share must be 1 to 100 %, got ${diskPercent}`);
    if (!(Number.isInteger(queueDepth) && queueDepth >= 1)) throw new RangeError(`queue depth must be a whole number of at least 1, got ${queueDepth}`);
    this.#account();
    this.#share = diskPercent / 100;
    this.#depth = queueDepth;
    this.#wake();
  }

  /**
   * Runs `read` when the share and the queue depth allow it. Once `signal` aborts, queued reads run without
   * waiting: the caller stops at its next check, and a stop must not wait out a low share.
   */
  async read<T>(read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const turn = this.#admission.then(() => this.#admit(signal));
    // The next caller queues behind this admission whatever its outcome; this caller sees the outcome.
    this.#admission = turn.catch(() => undefined);
    await turn;
    try {
      return await read();
    } finally {
      this.#account();
      this.#inFlight--;
      this.#wake();
    }
  }

  async #admit(signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      if (signal?.aborted) break;
      if (this.#inFlight >= this.#depth) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        continue;
      }
      this.#account();
      if (this.#credit + MS_SLACK >= 0) break;
      await this.#clock.sleep(Math.min(MAX_WAIT_MS, -this.#credit / this.#share));
    }
    this.#inFlight++;
  }

  #account(): void {
    const t = this.#clock.now();
    const dt = t - this.#at;
    this.#at = t;
    this.#credit = Math.min(DISK_CREDIT_MS, this.#credit + dt * this.#share - (this.#inFlight > 0 ? dt : 0));
  }

  #wake(): void {
    const resolve = this.#slotFreed;
    this.#slotFreed = null;
    resolve?.();
  }
}

/** Both throttles of one source, changed together while a cycle runs ('throttle.set'). */
export class LiveThrottle {
  readonly network: NetworkThrottle;
  readonly storage: StorageThrottle;
  #current: Throttle;

  constructor(throttle: Throttle = DEFAULT_THROTTLE, clock: ThrottleClock = systemClock) {
    this.network = new NetworkThrottle(throttle.networkMbps, clock);
    this.storage = new StorageThrottle(throttle.diskPercent, throttle.queueDepth, clock);
    this.#current = { ...throttle };
  }

  get current(): Throttle {
    return { ...this.#current };
  }

  set(throttle: Throttle): void {
    this.network.setRate(throttle.networkMbps);
    this.storage.set(throttle.diskPercent, throttle.queueDepth);
    this.#current = { ...throttle };
  }
}
