import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from './crc32.js';

void test('crc32() gives the IEEE check value GPT expects, unsigned', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.alloc(0)), 0);
  assert.ok(crc32(Buffer.from([0xff, 0xff, 0xff, 0xff])) > 0x7fffffff, 'high bit set stays positive');
});
