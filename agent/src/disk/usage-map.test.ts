import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageMap } from './usage-map.js';

function mapOf(...extents: [number, number][]): UsageMap {
  const m = new UsageMap();
  for (const [s, e] of extents) m.add(s, e);
  return m;
}

void test('UsageMap.add() merges overlapping and touching extents in any order', () => {
  const m = mapOf([100, 200], [300, 400], [200, 250], [50, 60], [390, 500], [60, 70]);
  assert.deepEqual(m.extents(), [
    { start: 50, end: 70 },
    { start: 100, end: 250 },
    { start: 300, end: 500 },
  ]);
  assert.equal(m.usedBytes(), 20 + 150 + 200);
  m.add(0, 1000);
  assert.deepEqual(m.extents(), [{ start: 0, end: 1000 }]);
  assert.equal(m.usedBytes(), 1000);
});

void test('UsageMap.add() ignores empty extents and ones already covered', () => {
  const m = mapOf([0, 100]);
  m.add(10, 10);
  m.add(20, 30);
  assert.deepEqual(m.extents(), [{ start: 0, end: 100 }]);
  assert.equal(m.usedBytes(), 100);
  assert.throws(() => m.add(-1, 5), /invalid extent/);
});

void test('UsageMap.extentsIn() returns the extents clipped to the window', () => {
  const m = mapOf([0, 10], [20, 30], [40, 50]);
  assert.deepEqual(m.extentsIn(5, 45), [
    { start: 5, end: 10 },
    { start: 20, end: 30 },
    { start: 40, end: 45 },
  ]);
  assert.deepEqual(m.extentsIn(10, 20), []);
  assert.deepEqual(m.extentsIn(30, 40), []);
  assert.deepEqual(m.extentsIn(25, 26), [{ start: 25, end: 26 }]);
  assert.deepEqual(m.extentsIn(60, 70), []);
  assert.equal(m.overlaps(10, 20), false);
  assert.equal(m.overlaps(9, 20), true);
  assert.equal(m.overlaps(49, 50), true);
});

void test('UsageMap agrees with a byte-per-byte model on random extents', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const size = 2000;
  for (let round = 0; round < 50; round++) {
    const model = new Uint8Array(size);
    const m = new UsageMap();
    for (let i = 0; i < 30; i++) {
      const s = rand(size);
      const e = Math.min(size, s + rand(80));
      m.add(s, e);
      model.fill(1, s, e);
    }
    assert.equal(m.usedBytes(), model.reduce((a, b) => a + b, 0));
    const exts = m.extents();
    for (let i = 1; i < exts.length; i++) assert.ok((exts[i - 1]?.end ?? 0) < (exts[i]?.start ?? 0), 'disjoint and not touching');
    const ws = rand(size);
    const we = ws + rand(300);
    const fromMap = new Uint8Array(size);
    for (const e of m.extentsIn(ws, we)) fromMap.fill(1, e.start, e.end);
    const expected = new Uint8Array(size);
    for (let b = ws; b < Math.min(we, size); b++) expected[b] = model[b] ?? 0;
    assert.deepEqual(fromMap, expected);
  }
});

void test('UsageMap.extentsIn() stays fast on a map of a million extents', () => {
  const m = new UsageMap();
  const block = 1024 * 1024;
  for (let i = 0; i < 1_000_000; i++) m.add(i * 8192, i * 8192 + 4096);
  const started = performance.now();
  let found = 0;
  // Every 1 MiB block of the 8 GB span the extents cover.
  for (let off = 0; off < 1_000_000 * 8192; off += block) found += m.extentsIn(off, off + block).length;
  assert.equal(found, 1_000_000);
  assert.ok(performance.now() - started < 2000, 'extentsIn must not scan from the start');
});
