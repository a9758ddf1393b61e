import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CycleReporter, type CycleProgress } from './cycle-progress.js';

function reporter(): { r: CycleReporter; sent: CycleProgress[]; advance: (ms: number) => void } {
  const sent: CycleProgress[] = [];
  let t = 0;
  const r = new CycleReporter(
    (p) => sent.push(p),
    { cycleId: 5, resumed: true },
    [
      { slot: 0, key: '/dev/sda', blocksDone: 10, blockCount: 100, bytesDone: 0, bytesTotal: 3000 },
      { slot: 1, key: '/dev/sdb', blocksDone: 0, blockCount: 50, bytesDone: 0, bytesTotal: 1000 },
    ],
    () => t,
  );
  return { r, sent, advance: (ms) => (t += ms) };
}

const counters = (bytesRead: number) => ({ bytesRead, bytesChanged: 0, bytesSent: 0 });

void test('CycleReporter reports at most once a second, but at once on a phase change or when forced', () => {
  const { r, sent, advance } = reporter();
  r.update(counters(0), true);
  r.block(0, 10, 100);
  r.update(counters(100));
  advance(999);
  r.update(counters(100));
  assert.equal(sent.length, 1);
  r.phase = 'Transferring';
  r.update(counters(100));
  assert.equal(sent.length, 2);
  advance(1000);
  r.update(counters(200));
  r.update(counters(200), true);
  assert.deepEqual(sent.map((p) => p.phase), ['Comparing', 'Transferring', 'Transferring', 'Transferring']);
});

void test('CycleReporter counts blocks from block 0 and bytes of this run, per disk and in total', () => {
  const { r, sent } = reporter();
  r.block(0, 10, 1000);
  r.block(0, 11, 500);
  r.block(1, 0, 200);
  r.update(counters(1700), true);
  assert.deepEqual(sent[0], {
    cycleId: 5,
    resumed: true,
    bytesTotal: 4000,
    phase: 'Comparing',
    bytesDone: 1700,
    bytesChanged: 0,
    bytesSent: 0,
    disks: [
      { slot: 0, key: '/dev/sda', blocksDone: 12, blockCount: 100, bytesDone: 1500, bytesTotal: 3000 },
      { slot: 1, key: '/dev/sdb', blocksDone: 1, blockCount: 50, bytesDone: 200, bytesTotal: 1000 },
    ],
  });
});
