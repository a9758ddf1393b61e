import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkGuard } from './guard.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

function clock(): { now: () => number; set(t: number): void } {
  let t = 0;
  return { now: () => t, set: (v) => (t = v) };
}

void test('a snapshot protects what a cycle running at its start touched since that cycle started, and what is touched after it', () => {
  const c = clock();
  const guard = new ChunkGuard(c.now);
  c.set(10);
  guard.cycleStarted(1);
  c.set(20);
  guard.touch(A);
  c.set(30);
  const snap = guard.snapshot();
  assert.equal(snap.protectFrom, 10);
  c.set(40);
  guard.touch(B);
  assert.equal(snap.isProtected(A), true);
  assert.equal(snap.isProtected(B), true);
  assert.equal(snap.isProtected(C), false);
  snap.release();
});

void test('a snapshot does not protect what was touched before every running cycle started', () => {
  const c = clock();
  const guard = new ChunkGuard(c.now);
  c.set(5);
  guard.cycleStarted(1);
  guard.touch(A);
  c.set(10);
  guard.cycleEnded(1);
  guard.cycleStarted(2);
  c.set(20);
  const snap = guard.snapshot();
  assert.equal(snap.protectFrom, 10);
  assert.equal(snap.isProtected(A), false);
  snap.release();
});

void test('a cycle that ends during a collection keeps the protection of what it touched before the collection started', () => {
  const c = clock();
  const guard = new ChunkGuard(c.now);
  c.set(10);
  guard.cycleStarted(1);
  c.set(20);
  guard.touch(A);
  c.set(30);
  const snap = guard.snapshot();
  c.set(40);
  guard.cycleEnded(1);
  assert.equal(snap.isProtected(A), true);
  snap.release();
  assert.equal(guard.remembered, 0);
});

void test('touch() remembers nothing while no cycle runs and no collection is under way', () => {
  const guard = new ChunkGuard();
  guard.touch(A);
  assert.equal(guard.remembered, 0);
  const snap = guard.snapshot();
  guard.touch(A);
  assert.equal(snap.isProtected(A), true);
  snap.release();
  assert.equal(guard.remembered, 0);
});

void test('the guard forgets touches older than the oldest running cycle once others end', () => {
  const c = clock();
  const guard = new ChunkGuard(c.now);
  c.set(10);
  guard.cycleStarted(1);
  c.set(20);
  guard.touch(A);
  c.set(30);
  guard.cycleStarted(2);
  c.set(40);
  guard.touch(B);
  guard.cycleEnded(1);
  assert.equal(guard.remembered, 1);
  const snap = guard.snapshot();
  assert.equal(snap.isProtected(A), false);
  assert.equal(snap.isProtected(B), true);
  snap.release();
});

void test('a resumed cycle keeps its first start time', () => {
  const c = clock();
  const guard = new ChunkGuard(c.now);
  c.set(10);
  guard.cycleStarted(1);
  guard.touch(A);
  c.set(50);
  guard.cycleStarted(1);
  assert.equal(guard.snapshot().protectFrom, 10);
  assert.equal(guard.isRunning(1), true);
});
