import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ChunkIdSet } from './chunk-id-set.js';

const idOf = (n: number): string => createHash('sha256').update(String(n)).digest('hex');

void test('ChunkIdSet holds every id added, through growth, and no other', () => {
  const set = new ChunkIdSet(4);
  for (let n = 0; n < 20000; n++) set.add(idOf(n));
  for (let n = 0; n < 20000; n += 2) set.add(idOf(n));
  assert.equal(set.size, 20000);
  for (let n = 0; n < 20000; n++) assert.equal(set.has(idOf(n)), true);
  for (let n = 20000; n < 40000; n++) assert.equal(set.has(idOf(n)), false);
});

void test('ChunkIdSet.addAt() reads an id from a buffer, and an id whose first 64 bits are zero is held too', () => {
  const set = new ChunkIdSet();
  const zero = '0'.repeat(16) + 'f'.repeat(48);
  const buf = Buffer.concat([Buffer.alloc(5), Buffer.from(idOf(1), 'hex'), Buffer.from(zero, 'hex')]);
  set.addAt(buf, 5);
  assert.equal(set.has(zero), false);
  set.addAt(buf, 37);
  assert.equal(set.has(idOf(1)), true);
  assert.equal(set.has(zero), true);
  assert.equal(set.size, 2);
});
