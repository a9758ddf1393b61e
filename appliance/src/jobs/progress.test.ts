import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_THROTTLE, type CycleProgressReport } from '@ferry/protocol';
import { ProgressTracker } from './progress.js';

const MIB = 1024 * 1024;

function report(bytesDone: number, phase: CycleProgressReport['phase'], cycleId = 1): CycleProgressReport {
  return { jobId: 7, cycleId, phase, bytesDone, bytesTotal: 100 * MIB, bytesChanged: 0, bytesSent: 0, resumed: false, disks: [] };
}

test('rate over real elapsed time, ETA from what is left to read', () => {
  let now = 0;
  const p = new ProgressTracker(() => now);
  assert.equal(p.update(report(0, 'Comparing'), DEFAULT_THROTTLE, 'a').rate, null, 'no rate before a second has passed');
  now = 2000;
  const second = p.update(report(20 * MIB, 'Comparing'), DEFAULT_THROTTLE, 'b');
  assert.equal(second.rate, 10 * MIB);
  assert.equal(second.etaSeconds, 8);
});

test('everything read while the last changes still upload: no ETA instead of 0 s; 0 s once only comparing is left', () => {
  let now = 0;
  const p = new ProgressTracker(() => now);
  p.update(report(0, 'Transferring'), DEFAULT_THROTTLE, 'a');
  now = 5000;
  assert.equal(p.update(report(100 * MIB, 'Transferring'), DEFAULT_THROTTLE, 'b').etaSeconds, null);
  assert.equal(p.update(report(100 * MIB, 'Comparing'), DEFAULT_THROTTLE, 'c').etaSeconds, 0);
});

test('a new cycle or a resumed one counting from zero starts a new rate window', () => {
  let now = 0;
  const p = new ProgressTracker(() => now);
  p.update(report(0, 'Comparing'), DEFAULT_THROTTLE, 'a');
  now = 2000;
  p.update(report(50 * MIB, 'Comparing'), DEFAULT_THROTTLE, 'b');
  now = 2500;
  assert.equal(p.update(report(1 * MIB, 'Comparing', 2), DEFAULT_THROTTLE, 'c').rate, null, 'the other cycle’s samples are not used');
});
