import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chunkIdOf, Codec, initHashing } from '@ferry/protocol';
import { ChunkStore } from './chunk-store.js';

async function withStore(fn: (store: ChunkStore) => Promise<void>): Promise<void> {
  await initHashing();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-store-'));
  try {
    await fn(new ChunkStore(path.join(dir, 'chunks')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function collect(ids: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of ids) out.push(id);
  return out;
}

async function put(store: ChunkStore, text: string): Promise<string> {
  const plain = Buffer.from(text);
  const s = await store.stage(chunkIdOf(plain), Codec.None, plain.length, plain);
  await store.commitStaged([s]);
  return s.id;
}

void test('remove() deletes a chunk and resolves to its size; removing it again frees nothing', async () => {
  await withStore(async (store) => {
    const id = await put(store, 'some block');
    assert.equal(await store.remove(id), 64 + 'some block'.length);
    await store.syncRemovals();
    assert.equal(await store.has(id), false);
    assert.equal(await store.remove(id), 0);
    assert.deepEqual(await collect(store.keys()), []);
  });
});

void test('has() called while a removal is pending waits for it and answers false', async () => {
  await withStore(async (store) => {
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => put(store, `block ${i}`)));
    const answers = await Promise.all(
      ids.map((id) => {
        const removal = store.remove(id);
        const present = store.has(id);
        return Promise.all([removal, present]).then(([, p]) => p);
      }),
    );
    assert.deepEqual(answers, ids.map(() => false));
  });
});

void test('removeStaleTemps() deletes old temporary files only, never those of an upload in progress', async () => {
  await withStore(async (store) => {
    const id = await put(store, 'kept chunk');
    const dir = path.dirname(store.pathOf(id));
    const old = path.join(dir, `${id}.tmp-aaaaaaaaaaaa`);
    const fresh = path.join(dir, `${id}.tmp-bbbbbbbbbbbb`);
    const other = path.join(dir, 'notes.txt');
    for (const f of [old, fresh, other]) writeFileSync(f, 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(old, twoHoursAgo, twoHoursAgo);
    utimesSync(other, twoHoursAgo, twoHoursAgo);
    // An upload that staged a chunk two hours ago and has not reached its END frame yet.
    const plain = Buffer.from('slow upload');
    const staged = await store.stage(chunkIdOf(plain), Codec.None, plain.length, plain);
    utimesSync(staged.tmp, twoHoursAgo, twoHoursAgo);

    assert.equal(await store.removeStaleTemps(3600_000), 1);
    assert.equal(existsSync(old), false);
    assert.equal(existsSync(fresh), true);
    assert.equal(existsSync(other), true);
    assert.equal(existsSync(staged.tmp), true);
    assert.equal(existsSync(store.pathOf(id)), true);

    await store.commitStaged([staged]);
    assert.equal(await store.has(staged.id), true);
    assert.deepEqual(readdirSync(path.dirname(staged.final)).filter((n) => n.includes('.tmp-') && n.startsWith(staged.id)), []);
  });
});

void test('keys() lists chunk files and skips temporary files', async () => {
  await withStore(async (store) => {
    const a = await put(store, 'a');
    const b = await put(store, 'b');
    writeFileSync(`${store.pathOf(a)}.tmp-cccccccccccc`, 'x');
    assert.deepEqual((await collect(store.keys())).sort(), [a, b].sort());
  });
});
