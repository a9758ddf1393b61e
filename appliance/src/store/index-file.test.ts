import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlockKind, encodeIndexEntry, initHashing } from '@ferry/protocol';
import { IndexFiles } from './index-file.js';

const BLOCK = 65536;

async function withIndexes(fn: (indexes: IndexFiles, root: string) => Promise<void>): Promise<void> {
  await initHashing();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-index-'));
  try {
    await fn(new IndexFiles(path.join(dir, 'indexes')), path.join(dir, 'indexes'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('create() leaves a complete all-Pending index and no temporary file', async () => {
  await withIndexes(async (indexes) => {
    await indexes.create(7, 3, { blockSize: BLOCK, diskSize: 3 * BLOCK, blockCount: 3 });
    assert.deepEqual(readdirSync(path.dirname(indexes.pathOf(7, 3))), ['3.fidx']);
    const index = await indexes.loadForCommit(7, 3);
    assert.deepEqual([0, 1, 2].map((n) => index.kind(n)), [BlockKind.Pending, BlockKind.Pending, BlockKind.Pending]);
  });
});

void test('cycleIds() lists the cycles that have an index directory, and nothing else', async () => {
  await withIndexes(async (indexes, root) => {
    assert.deepEqual(await indexes.cycleIds(), []);
    await indexes.create(12, 1, { blockSize: BLOCK, diskSize: BLOCK, blockCount: 1 });
    await indexes.create(3, 1, { blockSize: BLOCK, diskSize: BLOCK, blockCount: 1 });
    mkdirSync(path.join(root, 'lost+found'));
    writeFileSync(path.join(root, '99'), 'a file, not a cycle directory');
    assert.deepEqual(await indexes.cycleIds(), [3, 12]);
  });
});

void test('removeCycle() deletes the whole directory and accepts one already gone', async () => {
  await withIndexes(async (indexes) => {
    await indexes.create(4, 1, { blockSize: BLOCK, diskSize: BLOCK, blockCount: 1 });
    await indexes.create(4, 2, { blockSize: BLOCK, diskSize: BLOCK, blockCount: 1 });
    await indexes.removeCycle(4);
    assert.equal(existsSync(path.dirname(indexes.pathOf(4, 1))), false);
    await indexes.removeCycle(4);
    assert.deepEqual(await indexes.cycleIds(), []);
  });
});

void test('loadWritten() reads the entries a running cycle wrote so far, and null when its index does not exist', async () => {
  await withIndexes(async (indexes) => {
    assert.equal(await indexes.loadWritten(5, 1), null);
    await indexes.create(5, 1, { blockSize: BLOCK, diskSize: 3 * BLOCK, blockCount: 3 });
    const id = Buffer.alloc(32, 0xab);
    await indexes.writeEntries(5, 1, 0, encodeIndexEntry({ kind: BlockKind.Data, xxh64: 9n, chunkId: id }));
    const index = await indexes.loadWritten(5, 1);
    assert.ok(index);
    assert.equal(index.kind(0), BlockKind.Data);
    assert.equal(index.chunkIdHex(0), id.toString('hex'));
    assert.equal(index.kind(1), BlockKind.Pending);
  });
});

void test('loadWritten() reports a truncated index as INDEX_DAMAGED', async () => {
  await withIndexes(async (indexes) => {
    await indexes.create(6, 1, { blockSize: BLOCK, diskSize: 3 * BLOCK, blockCount: 3 });
    writeFileSync(indexes.pathOf(6, 1), Buffer.alloc(10));
    await assert.rejects(indexes.loadWritten(6, 1), { code: 'INDEX_DAMAGED' });
  });
});
