import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync, mkdirSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlockKind, chunkIdOf, Codec, encodeIndexEntry, initHashing, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES } from '@ferry/protocol';
import { CatalogSecrets, DataKeys } from '../keys/data-keys.js';
import { createKeyring, keyringParameters, keyringPath, passphraseProblem, unlockKeyring } from '../keys/keyring.js';
import { ChunkStore } from './chunk-store.js';
import { IndexFiles } from './index-file.js';
import { encodePagedHeader, PAGE_BYTES, PAGED_HEADER_BYTES, STORED_PAGE_BYTES } from './paged-file.js';

const BLOCK = 65536;
const PASSPHRASE = 'correct horse battery staple';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  await initHashing();
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-sealed-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('a keyring made with a passphrase opens with it, records its scrypt parameters, and refuses another passphrase', async () => {
  await withDir(async (dir) => {
    const made = await createKeyring(dir, PASSPHRASE, { testN: 1024 });
    const k = keyringParameters(dir);
    assert.equal(k.N, 1024);
    assert.equal(k.r, 8);
    assert.equal(k.p, 1);
    assert.equal(k.test, true);
    assert.equal(Buffer.from(k.salt, 'base64').length, 32);
    assert.equal(statSync(keyringPath(dir)).mode & 0o777, 0o600);
    assert.ok(!readFileSync(keyringPath(dir), 'utf8').includes(PASSPHRASE));
    const opened = await unlockKeyring(dir, PASSPHRASE);
    const id = chunkIdOf(Buffer.from('x'));
    assert.ok(opened.chunkKey(id).equals(made.chunkKey(id)), 'the same master secret comes back');
    await assert.rejects(unlockKeyring(dir, `${PASSPHRASE}!`), { code: 'PASSPHRASE_WRONG' });
    await assert.rejects(createKeyring(dir, PASSPHRASE, { testN: 1024 }), { code: 'APPLIANCE_INITIALISED' });
  });
});

void test('a keyring whose scrypt parameters were edited does not open, even with the right passphrase', async () => {
  await withDir(async (dir) => {
    await createKeyring(dir, PASSPHRASE, { testN: 1024 });
    const ring = JSON.parse(readFileSync(keyringPath(dir), 'utf8')) as { kdf: { N: number } };
    ring.kdf.N = 2048;
    writeFileSync(keyringPath(dir), JSON.stringify(ring));
    await assert.rejects(unlockKeyring(dir, PASSPHRASE), { code: 'PASSPHRASE_WRONG' });
    writeFileSync(keyringPath(dir), '{"format":"something else"}');
    await assert.rejects(unlockKeyring(dir, PASSPHRASE), { code: 'KEYRING_INVALID' });
  });
});

void test('weak passphrases are refused with the reason', async () => {
  for (const weak of ['', '            ', 'short', 'aaaaaaaaaaaaaaaa', 'Password1234', '123456789012']) assert.ok(passphraseProblem(weak), `"${weak}" refused`);
  assert.equal(passphraseProblem(PASSPHRASE), null);
  await withDir(async (dir) => {
    await assert.rejects(createKeyring(dir, 'short', { testN: 1024 }), { code: 'PASSPHRASE_WEAK' });
  });
});

void test('a sealed chunk is named by its keyed id, holds no plaintext, and reads back whole', async () => {
  await withDir(async (dir) => {
    const keys = DataKeys.fromMaster(randomBytes(64));
    const store = new ChunkStore(path.join(dir, 'chunks'), keys);
    const plain = Buffer.from('MARKER-STRING '.repeat(100));
    const id = chunkIdOf(plain);
    const s = await store.stage(id, Codec.None, plain.length, plain);
    await store.commitStaged([s]);
    const hex = id.toString('hex');
    assert.notEqual(s.key, hex);
    assert.equal(s.key, keys.chunkKey(id).toString('hex'));
    const file = readFileSync(store.pathOf(hex));
    assert.equal(path.basename(store.pathOf(hex)), s.key);
    // Prefix: magic FRYE, version 1, three reserved zero bytes (pinned).
    assert.deepEqual([...file.subarray(0, 8)], [0x46, 0x52, 0x59, 0x45, 1, 0, 0, 0]);
    assert.equal(file.length, 8 + 12 + 64 + plain.length + 16);
    assert.equal(file.indexOf('MARKER'), -1);
    assert.equal(file.indexOf(id), -1, 'the chunk id is not in the file either');
    const { header, payload } = await store.readRaw(hex);
    assert.ok(payload.equals(plain));
    assert.equal(header.rawLength, plain.length);
    assert.equal(await store.verify(hex), 64 + plain.length);
    assert.deepEqual(await collect(store.keys()), [s.key]);
    assert.equal(await store.has(hex), true);
  });
});

void test('a sealed chunk with one byte flipped, or moved under another name, is damaged', async () => {
  await withDir(async (dir) => {
    const store = new ChunkStore(path.join(dir, 'chunks'), DataKeys.fromMaster(randomBytes(64)));
    const ids = [];
    for (const text of ['first block', 'second block']) {
      const plain = Buffer.from(text);
      const s = await store.stage(chunkIdOf(plain), Codec.None, plain.length, plain);
      await store.commitStaged([s]);
      ids.push(s.id);
    }
    const [a, b] = ids as [string, string];
    const fd = openSync(store.pathOf(a), 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 40);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, 40); // inverted: a constant would match 1 byte in 256
    closeSync(fd);
    await assert.rejects(store.verify(a), (err: Error & { code?: string }) => err.code === 'CHUNK_DAMAGED' && /does not authenticate/.test(err.message));
    await assert.rejects(store.readRaw(a), { code: 'CHUNK_DAMAGED' });
    // b's file put in place of a's: a whole, valid sealed file, but bound to another name.
    renameSync(store.pathOf(b), store.pathOf(a));
    await assert.rejects(store.readRaw(a), { code: 'CHUNK_DAMAGED' });
  });
});

void test('a sealed chunk cannot be read with a keyring that is not unlocked', async () => {
  await withDir(async (dir) => {
    const store = new ChunkStore(path.join(dir, 'chunks'), DataKeys.locked());
    await assert.rejects(store.has('a'.repeat(64)), { code: 'APPLIANCE_LOCKED' });
  });
});

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function dataEntry(seed: number): Buffer {
  return encodeIndexEntry({ kind: BlockKind.Data, xxh64: BigInt(seed), chunkId: chunkIdOf(Buffer.from(`block ${seed}`)) });
}

void test('a sealed index is written in pages, reads back by range and whole, and shows no plaintext', async () => {
  await withDir(async (dir) => {
    const indexes = new IndexFiles(path.join(dir, 'indexes'), DataKeys.fromMaster(randomBytes(64)));
    const blockCount = 300; // 64 + 300 × 48 = 14 464 logical bytes: 4 pages, the last partly used
    await indexes.create(5, 2, { blockSize: BLOCK, diskSize: blockCount * BLOCK, blockCount });
    const file = indexes.pathOf(5, 2);
    const logical = INDEX_HEADER_BYTES + blockCount * INDEX_ENTRY_BYTES;
    assert.equal(statSync(file).size, PAGED_HEADER_BYTES + Math.ceil(logical / PAGE_BYTES) * STORED_PAGE_BYTES);
    assert.ok(readFileSync(file).subarray(0, PAGED_HEADER_BYTES).equals(encodePagedHeader(logical)));
    // Entries 80..89 cross the boundary of pages 0 and 1.
    const run = Buffer.concat(Array.from({ length: 10 }, (_, i) => dataEntry(80 + i)));
    await indexes.writeEntries(5, 2, 80, run);
    const { entries } = await indexes.readEntries(5, 2, 78, 14);
    assert.equal(entries[0], BlockKind.Pending);
    assert.ok(entries.subarray(2 * INDEX_ENTRY_BYTES, 12 * INDEX_ENTRY_BYTES).equals(run));
    const written = await indexes.loadWritten(5, 2);
    assert.equal(written?.kind(85), BlockKind.Data);
    assert.equal(written?.kind(299), BlockKind.Pending);
    const raw = readFileSync(file);
    assert.equal(raw.indexOf('FRYI'), -1, 'the v1 header is inside the sealed pages');
    assert.equal(raw.indexOf(run.subarray(16, 48)), -1, 'no chunk id is visible');
    // Whole: sealed, then loaded and checked like any point's index.
    const index = await indexes.loadForCommit(5, 2);
    await indexes.seal(5, 2, index);
    const { file: served } = await indexes.loadWithFile(5, 2);
    assert.equal(served.subarray(0, 4).toString(), 'FRYI');
    assert.equal(served.length, logical);
  });
});

void test('a sealed index page with one byte flipped, or copied from another index, is INDEX_DAMAGED', async () => {
  await withDir(async (dir) => {
    const indexes = new IndexFiles(path.join(dir, 'indexes'), DataKeys.fromMaster(randomBytes(64)));
    for (const cycle of [1, 2]) {
      await indexes.create(cycle, 1, { blockSize: BLOCK, diskSize: 200 * BLOCK, blockCount: 200 });
      await indexes.writeEntries(cycle, 1, 0, Buffer.concat(Array.from({ length: 200 }, (_, i) => dataEntry(i))));
    }
    const one = indexes.pathOf(1, 1);
    const copy = readFileSync(indexes.pathOf(2, 1));
    const fd = openSync(one, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, PAGED_HEADER_BYTES + STORED_PAGE_BYTES + 100);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, PAGED_HEADER_BYTES + STORED_PAGE_BYTES + 100); // inverted: a constant would match 1 byte in 256
    closeSync(fd);
    await assert.rejects(indexes.loadWritten(1, 1), (err: Error & { code?: string }) => err.code === 'INDEX_DAMAGED' && /page 1 does not authenticate/.test(err.message));
    await assert.rejects(indexes.readEntries(1, 1, 90, 10), { code: 'INDEX_DAMAGED' });
    // Entries before page 1 still read.
    assert.equal((await indexes.readEntries(1, 1, 0, 10)).entries.length, 10 * INDEX_ENTRY_BYTES);
    mkdirSync(path.dirname(indexes.pathOf(3, 1)), { recursive: true });
    writeFileSync(indexes.pathOf(3, 1), copy);
    await assert.rejects(indexes.loadWritten(3, 1), { code: 'INDEX_DAMAGED' });
  });
});

void test('concurrent writes and reads of a sealed index never see a torn page', async () => {
  await withDir(async (dir) => {
    const indexes = new IndexFiles(path.join(dir, 'indexes'), DataKeys.fromMaster(randomBytes(64)));
    await indexes.create(1, 1, { blockSize: BLOCK, diskSize: 400 * BLOCK, blockCount: 400 });
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 400; i += 10) {
      work.push(indexes.writeEntries(1, 1, i, Buffer.concat(Array.from({ length: 10 }, (_, j) => dataEntry(i + j)))));
      work.push(indexes.readEntries(1, 1, Math.max(0, i - 5), 20));
    }
    await Promise.all(work);
    const index = await indexes.loadForCommit(1, 1);
    for (let n = 0; n < 400; n++) assert.equal(index.kind(n), BlockKind.Data);
  });
});

void test('catalog secrets are sealed under the data key and bound to their table, column and row', () => {
  const secrets = new CatalogSecrets(DataKeys.fromMaster(randomBytes(64)));
  const sealed = secrets.seal('hunter2-ssh-password', 'passive_sources', 'auth_secret', 7);
  assert.ok(!sealed.includes('hunter2'));
  assert.equal(secrets.open(sealed, 'passive_sources', 'auth_secret', 7), 'hunter2-ssh-password');
  assert.throws(() => secrets.open(sealed, 'passive_sources', 'auth_secret', 8), { code: 'KEYRING_INVALID' });
  assert.throws(() => secrets.open(sealed, 'passive_sources', 'agent_credential', 7), { code: 'KEYRING_INVALID' });
  const plain = new CatalogSecrets(null);
  assert.equal(plain.seal('x', 't', 'c', 1), 'x');
});
