import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { BURST_MS, LiveThrottle, MAX_WAIT_MS, NetworkThrottle, StorageThrottle, type ThrottleClock } from './throttle.js';

/** A clock that moves only when a throttle sleeps (or a fake read takes time), recording every sleep. */
class FakeClock implements ThrottleClock {
  t = 1000;
  readonly sleeps: number[] = [];
  /** Runs after each sleep, e.g. to change a rate in the middle of a wait. */
  afterSleep: (() => void) | null = null;

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
    this.afterSleep?.();
    return Promise.resolve();
  }

  slept(): number {
    return this.sleeps.reduce((a, b) => a + b, 0);
  }
}

function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-6 * Math.max(1, expected), `${what}: expected ${expected}, got ${actual}`);
}

// 8 Mbit/s = 1,000,000 bytes/s = 1,000 bytes per ms; the bucket holds BURST_MS of them.
const BUCKET_8 = 1000 * BURST_MS;
const BUCKET_1 = 125 * BURST_MS;

void test('NetworkThrottle lets a burst of bytes through at once, then paces at the rate', async () => {
  const clock = new FakeClock();
  const net = new NetworkThrottle(8, clock);
  await net.take(BUCKET_8);
  assert.deepEqual(clock.sleeps, []);
  await net.take(100_000);
  near(clock.slept(), 100, 'wait for 100,000 bytes at 8 Mbit/s');
});

void test('NetworkThrottle holds the long-run rate for a stream of frames', async () => {
  const clock = new FakeClock();
  const net = new NetworkThrottle(8, clock);
  for (let i = 0; i < 1000; i++) await net.take(10_000);
  // 10 MB at 1,000 bytes/ms, less the initial burst.
  near(clock.slept(), (10_000_000 - BUCKET_8) / 1000, 'total wait');
  assert.ok(Math.max(...clock.sleeps) <= MAX_WAIT_MS);
});

void test('NetworkThrottle lets a frame larger than the bucket through and makes the next bytes repay it', async () => {
  const clock = new FakeClock();
  const net = new NetworkThrottle(1, clock); // 125 bytes/ms
  await net.take(1_000_000);
  assert.deepEqual(clock.sleeps, []);
  await net.take(1);
  near(clock.slept(), (1_000_000 - BUCKET_1 + 1) / 125, 'debt repaid before the next byte');
  assert.ok(clock.sleeps.every((s) => s <= MAX_WAIT_MS), 'long waits are sliced');
});

void test('NetworkThrottle applies a rate change to the bytes still waiting', async () => {
  const clock = new FakeClock();
  const net = new NetworkThrottle(1, clock);
  await net.take(1_000_000); // debt 1,000,000 - BUCKET_1 bytes
  clock.afterSleep = () => {
    clock.afterSleep = null;
    net.setRate(80); // 10,000 bytes/ms from here on
  };
  await net.take(1000);
  assert.equal(clock.sleeps.length, 2);
  near(clock.sleeps[0]!, MAX_WAIT_MS, 'first slice at 1 Mbit/s');
  near(clock.sleeps[1]!, (1_000_000 - BUCKET_1 - MAX_WAIT_MS * 125 + 1000) / 10_000, 'rest at 80 Mbit/s');
});

void test('NetworkThrottle at 0 Mbit/s is unlimited, also when set while a wait is under way', async () => {
  const clock = new FakeClock();
  const net = new NetworkThrottle(0, clock);
  for (let i = 0; i < 100; i++) await net.take(16 * 1024 * 1024);
  assert.deepEqual(clock.sleeps, []);

  net.setRate(1);
  await net.take(BUCKET_1); // leaving "unlimited" starts with a full bucket
  assert.deepEqual(clock.sleeps, []);
  await net.take(1_000_000); // waits for a full bucket, leaves a debt of several seconds
  const filling = clock.sleeps.length;
  assert.equal(filling, Math.ceil(BURST_MS / MAX_WAIT_MS), 'the wait for a full bucket is sliced');
  clock.afterSleep = () => net.setRate(0);
  await net.take(1);
  assert.equal(clock.sleeps.length, filling + 1, 'the debt is dropped after the slice during which the rate became unlimited');
});

void test('NetworkThrottle refuses a negative rate', () => {
  assert.throws(() => new NetworkThrottle(-1, new FakeClock()), RangeError);
});

/** A read that keeps the fake disk busy for `ms`. */
function busyFor(clock: FakeClock, ms: number): () => Promise<number> {
  return () => {
    clock.t += ms;
    return Promise.resolve(ms);
  };
}

void test('StorageThrottle keeps reads to diskPercent of wall time', async () => {
  const clock = new FakeClock();
  const disk = new StorageThrottle(30, 4, clock);
  assert.equal(await disk.read(busyFor(clock, 30)), 30);
  assert.deepEqual(clock.sleeps, []);
  await disk.read(busyFor(clock, 30));
  near(clock.slept(), 70, 'after a 30 ms read at 30 %, the next read waits 70 ms');

  const start = clock.t;
  for (let i = 0; i < 50; i++) await disk.read(busyFor(clock, 10));
  // 50 reads of 10 ms: 500 ms busy in at least 500/0.3 ms of wall time (the last read's idle share is not yet due).
  near(clock.t - start, 70 + 500 / 0.3 - 10 * (0.7 / 0.3), 'wall time of 50 reads');
});

void test('StorageThrottle at 100 % never waits; a live change applies to the next read', async () => {
  const clock = new FakeClock();
  const disk = new StorageThrottle(100, 1, clock);
  for (let i = 0; i < 10; i++) await disk.read(busyFor(clock, 50));
  assert.deepEqual(clock.sleeps, []);
  disk.set(50, 1);
  await disk.read(busyFor(clock, 40));
  await disk.read(busyFor(clock, 1));
  near(clock.slept(), 40, 'at 50 % a 40 ms read is followed by 40 ms idle');
  assert.equal(disk.diskPercent, 50);
});

void test('StorageThrottle banks only a little idle time as credit', async () => {
  const clock = new FakeClock();
  const disk = new StorageThrottle(50, 1, clock);
  clock.t += 60_000; // a minute without reads earns no minute-long burst
  await disk.read(busyFor(clock, 300));
  await disk.read(busyFor(clock, 1));
  near(clock.slept(), (300 * 0.5 - 100) / 0.5, 'wait after a 300 ms read with 100 ms banked');
});

interface Pending {
  started: boolean;
  finish(): void;
}

function controlledRead(): Pending & { read: () => Promise<void> } {
  let finish: () => void = () => undefined;
  const p: Pending & { read: () => Promise<void> } = {
    started: false,
    finish: () => finish(),
    read: () => {
      p.started = true;
      return new Promise<void>((resolve) => (finish = resolve));
    },
  };
  return p;
}

void test('StorageThrottle keeps at most queueDepth reads in flight, in order, and follows a depth change', async () => {
  const clock = new FakeClock();
  const disk = new StorageThrottle(100, 2, clock);
  const reads = [controlledRead(), controlledRead(), controlledRead(), controlledRead()];
  const done = reads.map((r) => disk.read(r.read));
  await turn();
  assert.deepEqual(reads.map((r) => r.started), [true, true, false, false]);
  reads[1]!.finish();
  await turn();
  assert.deepEqual(reads.map((r) => r.started), [true, true, true, false]);
  disk.set(100, 3);
  await turn();
  assert.deepEqual(reads.map((r) => r.started), [true, true, true, true]);
  for (const r of reads) r.finish();
  await Promise.all(done);
});

void test('StorageThrottle passes a failed read on and keeps admitting the next ones', async () => {
  const clock = new FakeClock();
  const disk = new StorageThrottle(100, 1, clock);
  await assert.rejects(disk.read(() => Promise.reject(new Error('EIO'))), /EIO/);
  assert.equal(await disk.read(() => Promise.resolve(7)), 7);
});

void test('LiveThrottle.set() changes both throttles at once', async () => {
  const clock = new FakeClock();
  const live = new LiveThrottle({ networkMbps: 8, diskPercent: 30, queueDepth: 4 }, clock);
  live.set({ networkMbps: 0, diskPercent: 100, queueDepth: 8 });
  assert.deepEqual(live.current, { networkMbps: 0, diskPercent: 100, queueDepth: 8 });
  assert.equal(live.network.mbps, 0);
  assert.equal(live.storage.queueDepth, 8);
  await live.network.take(1e9);
  await live.storage.read(busyFor(clock, 100));
  await live.storage.read(busyFor(clock, 100));
  assert.deepEqual(clock.sleeps, []);
});

void test('a stopped cycle does not wait out either throttle', async () => {
  const clock = new FakeClock();
  const live = new LiveThrottle({ networkMbps: 1, diskPercent: 1, queueDepth: 1 }, clock);
  const stop = new AbortController();
  await live.network.take(1_000_000);
  await live.storage.read(busyFor(clock, 100));
  stop.abort('pause');
  await live.network.take(1, stop.signal);
  assert.equal(await live.storage.read(busyFor(clock, 1), stop.signal), 1);
  assert.deepEqual(clock.sleeps, []);
});
