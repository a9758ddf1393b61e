import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { DataKeys } from './data-keys.js';
import { ApplianceLock, type LockAttempt } from './lock.js';

const PASSPHRASE = 'correct horse battery staple';

/** A lock whose onUnlocked records what it was given (or fails, while `failing` is set). */
function lockOn(dir: string): { lock: ApplianceLock; opened: { keys: DataKeys | null; attempts: readonly LockAttempt[]; dropped: number }[]; failing: { on: boolean } } {
  const opened: { keys: DataKeys | null; attempts: readonly LockAttempt[]; dropped: number }[] = [];
  const failing = { on: false };
  const lock = new ApplianceLock(dir, pino({ level: 'silent' }), {
    testScryptN: 1024,
    onUnlocked: (keys, attempts, dropped) => {
      if (failing.on) return Promise.reject(new Error('the catalog could not be opened'));
      opened.push({ keys, attempts, dropped });
      return Promise.resolve();
    },
  });
  return { lock, opened, failing };
}

const summary = (attempts: readonly LockAttempt[]): string[] => attempts.map((a) => `${a.action} ${a.address} ${a.outcome} ${a.status} ${a.code ?? '-'}`);

test('the tries made while locked are handed over with the keys, in order, the one that opened the lock last', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const first = lockOn(dir);
  assert.equal(first.lock.state, 'uninitialised');
  await assert.rejects(first.lock.unlock(PASSPHRASE, '198.18.0.5'), { code: 'APPLIANCE_LOCKED' });
  await assert.rejects(first.lock.initialize('short', '198.18.0.5'), { code: 'PASSPHRASE_WEAK' });
  await first.lock.initialize(PASSPHRASE, '198.18.0.6');
  assert.equal(first.lock.state, 'unlocked');
  assert.equal(first.opened.length, 1);
  assert.ok(first.opened[0]!.keys);
  assert.deepEqual(summary(first.opened[0]!.attempts), [
    'unlock 198.18.0.5 refused 503 APPLIANCE_LOCKED',
    'initialize 198.18.0.5 refused 400 PASSPHRASE_WEAK',
    'initialize 198.18.0.6 ok 200 -',
  ]);
  const times = first.opened[0]!.attempts.map((a) => a.at);
  assert.deepEqual(times, [...times].sort(), 'each try keeps its own time');

  // After a restart: a wrong passphrase, an appliance that fails to come up, then the right one.
  const second = lockOn(dir);
  assert.equal(second.lock.state, 'locked');
  await assert.rejects(second.lock.initialize(PASSPHRASE, '198.18.0.7'), { code: 'APPLIANCE_INITIALISED' });
  await assert.rejects(second.lock.unlock('not the passphrase at all', '198.18.0.7'), { code: 'PASSPHRASE_WRONG' });
  second.failing.on = true;
  await assert.rejects(second.lock.unlock(PASSPHRASE, 'local'), /the catalog could not be opened/);
  assert.equal(second.lock.state, 'locked');
  second.failing.on = false;
  await second.lock.unlock(PASSPHRASE, '198.18.0.8');
  assert.equal(second.lock.state, 'unlocked');
  assert.deepEqual(summary(second.opened[0]!.attempts), [
    'initialize 198.18.0.7 refused 409 APPLIANCE_INITIALISED',
    'unlock 198.18.0.7 refused 401 PASSPHRASE_WRONG',
    'unlock local failed 500 -',
    'unlock 198.18.0.8 ok 200 -',
  ]);
  assert.equal(second.opened[0]!.dropped, 0);
});

test('a flood of tries while locked keeps the newest 1,000 and counts the rest', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await lockOn(dir).lock.initialize(PASSPHRASE);

  const { lock, opened } = lockOn(dir);
  for (let i = 0; i < 5; i++) await assert.rejects(lock.unlock(`wrong passphrase ${i}`, '198.18.0.9'), { code: 'PASSPHRASE_WRONG' });
  // From the sixth, each try must wait (1 s here): these are refused at once, and still recorded.
  for (let i = 0; i < 1000; i++) await assert.rejects(lock.unlock(PASSPHRASE, '198.18.0.9'), { code: 'UNLOCK_THROTTLED' });
  await new Promise((r) => setTimeout(r, 1100));
  await lock.unlock(PASSPHRASE, '198.18.0.10');
  const { attempts, dropped } = opened[0]!;
  assert.equal(dropped, 5, 'the five oldest (the wrong passphrases) are counted');
  assert.equal(attempts.length, 1001);
  assert.equal(attempts.filter((a) => a.code === 'UNLOCK_THROTTLED' && a.status === 429).length, 1000);
  assert.deepEqual(summary([attempts.at(-1)!]), ['unlock 198.18.0.10 ok 200 -']);

  // Handed over once: the next restart starts with none.
  const again = lockOn(dir);
  await again.lock.unlock(PASSPHRASE, '198.18.0.11');
  assert.deepEqual(summary(again.opened[0]!.attempts), ['unlock 198.18.0.11 ok 200 -']);
  assert.equal(again.opened[0]!.dropped, 0);
});
