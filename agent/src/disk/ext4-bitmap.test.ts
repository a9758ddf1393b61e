import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { openDisk } from './block-reader.js';
import { ext4UsedExtents, parseExtSuperblock } from './ext4-bitmap.js';
import { complement, dumpe2fs, makeTempDir, mergeTouching, MiB, removeTempDir, run, withLoop } from './test-images.js';
import type { UsageMap } from './usage-map.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

const OFFSET = 3 * MiB;
let imageCount = 0;

/** Makes an image holding one ext filesystem of `bytes` at OFFSET, built by `mkfs` with `args`. */
function makeExt(mkfs: string, bytes: number, args: string[], srcDir?: string): string {
  const img = `${dir}/fs${imageCount++}.img`;
  run('truncate', ['-s', String(OFFSET + bytes + MiB), img]);
  const src = srcDir === undefined ? [] : ['-d', srcDir];
  run(mkfs, ['-q', '-F', ...args, ...src, '-E', `offset=${OFFSET}`, img, `${bytes / 1024}k`]);
  return img;
}

async function usedMap(img: string, bytes: number): Promise<UsageMap | null> {
  const disk = await openDisk(img);
  try {
    return await ext4UsedExtents(disk, OFFSET, bytes);
  } finally {
    await disk.close();
  }
}

function sourceTree(name: string): string {
  const src = `${dir}/${name}`;
  mkdirSync(`${src}/sub`, { recursive: true });
  writeFileSync(`${src}/big.bin`, Buffer.alloc(5 * MiB, 'big file '));
  writeFileSync(`${src}/sub/small.txt`, 'hello\n');
  for (let i = 0; i < 40; i++) writeFileSync(`${src}/sub/f${i}`, Buffer.alloc(9000 + i * 1000, i));
  return src;
}

/** Asserts the map marks exactly the blocks dumpe2fs reports as in use. */
async function assertMatchesDumpe2fs(img: string, bytes: number, expectFlag?: string): Promise<void> {
  const map = await usedMap(img, bytes);
  assert.ok(map, 'the filesystem should be mappable');
  const view = await withLoop(img, OFFSET, bytes, dumpe2fs);
  if (expectFlag) assert.match(view.raw, new RegExp(expectFlag), `the image should exercise ${expectFlag}`);
  const bs = view.blockSize;
  assert.equal(map.usedBytes(), (view.blockCount - view.freeBlockCount) * bs);
  const usedBlocks = map.extents().map((e) => {
    assert.equal(e.start % bs, 0, 'extents start on block boundaries');
    assert.equal(e.end % bs, 0, 'extents end on block boundaries');
    return { start: e.start / bs, end: e.end / bs };
  });
  assert.deepEqual(complement(usedBlocks, view.blockCount), mergeTouching(view.free));
}

void test('ext4UsedExtents() matches dumpe2fs on a flex_bg ext4 whose uninitialised groups have no bitmap', async () => {
  const img = makeExt('mkfs.ext4', 64 * MiB, ['-b', '4096', '-g', '1024', '-G', '4'], sourceTree('flex'));
  await assertMatchesDumpe2fs(img, 64 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() matches dumpe2fs on an ext4 with 32-byte group descriptors (no 64bit)', async () => {
  const img = makeExt('mkfs.ext4', 48 * MiB, ['-b', '4096', '-g', '2048', '-O', '^64bit'], sourceTree('no64'));
  const disk = await openDisk(img);
  const geo = parseExtSuperblock(await disk.read(OFFSET + 1024, 1024), 48 * MiB);
  await disk.close();
  assert.equal(typeof geo === 'object' && geo.descSize, 32);
  await assertMatchesDumpe2fs(img, 48 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() matches dumpe2fs on a 64bit ext4 with 64-byte group descriptors', async () => {
  const img = makeExt('mkfs.ext4', 48 * MiB, ['-b', '4096', '-g', '2048', '-O', '64bit']);
  const view = await withLoop(img, OFFSET, 48 * MiB, dumpe2fs);
  assert.match(view.raw, /Group descriptor size:\s+64/);
  await assertMatchesDumpe2fs(img, 48 * MiB);
});

void test('ext4UsedExtents() matches dumpe2fs on an ext4 without flex_bg, bitmaps inside their own groups', async () => {
  const img = makeExt('mkfs.ext4', 40 * MiB, ['-b', '4096', '-g', '1024', '-O', '^flex_bg'], sourceTree('noflex'));
  await assertMatchesDumpe2fs(img, 40 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() matches dumpe2fs on an ext2 with 1 KiB blocks (first data block 1)', async () => {
  const img = makeExt('mkfs.ext2', 30 * MiB, ['-b', '1024'], sourceTree('ext2'));
  await assertMatchesDumpe2fs(img, 30 * MiB);
});

void test('ext4UsedExtents() matches dumpe2fs on an ext3 with its journal', async () => {
  const img = makeExt('mkfs.ext3', 40 * MiB, [], sourceTree('ext3'));
  await assertMatchesDumpe2fs(img, 40 * MiB);
});

void test('ext4UsedExtents() matches dumpe2fs on an ext4 whose groups carry uninit_bg (gdt_csum) flags', async () => {
  const img = makeExt('mkfs.ext4', 40 * MiB, ['-b', '4096', '-g', '1024', '-O', '^metadata_csum,uninit_bg']);
  await assertMatchesDumpe2fs(img, 40 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() keeps the superblock backups of uninitialised groups chosen by sparse_super2', async () => {
  const img = makeExt('mkfs.ext4', 40 * MiB, ['-b', '4096', '-g', '1024', '-O', 'sparse_super2']);
  await assertMatchesDumpe2fs(img, 40 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() keeps a superblock backup in every group without sparse_super', async () => {
  const img = makeExt('mkfs.ext4', 40 * MiB, ['-b', '4096', '-g', '1024', '-O', '^sparse_super,^resize_inode']);
  await assertMatchesDumpe2fs(img, 40 * MiB, 'BLOCK_UNINIT');
});

void test('ext4UsedExtents() gives up (null) on meta_bg, bigalloc and a journal needing recovery', async () => {
  const metaBg = makeExt('mkfs.ext4', 32 * MiB, ['-b', '4096', '-O', 'meta_bg,^resize_inode']);
  assert.equal(await usedMap(metaBg, 32 * MiB), null);
  const bigalloc = makeExt('mkfs.ext4', 32 * MiB, ['-b', '4096', '-O', 'bigalloc', '-C', '16384']);
  assert.equal(await usedMap(bigalloc, 32 * MiB), null);
  const recovering = makeExt('mkfs.ext4', 32 * MiB, ['-b', '4096']);
  assert.ok(await usedMap(recovering, 32 * MiB));
  await withLoop(recovering, OFFSET, 32 * MiB, (dev) => run('debugfs', ['-w', '-R', 'feature needs_recovery', dev]));
  assert.equal(await usedMap(recovering, 32 * MiB), null);
});

void test('ext4UsedExtents() gives up (null) when the filesystem claims more space than its partition', async () => {
  const img = makeExt('mkfs.ext4', 32 * MiB, ['-b', '4096']);
  assert.equal(await usedMap(img, 16 * MiB), null);
});

void test('ext4UsedExtents() leaves out the blocks of a deleted file, whose data is still on disk', async () => {
  const src = `${dir}/deleted-src`;
  mkdirSync(src);
  const marker = Buffer.from('FERRY-DELETED-FILE-MARKER-0123456789abcdef-'.repeat(100).slice(0, 4096));
  writeFileSync(`${src}/victim.bin`, Buffer.concat(Array.from({ length: 512 }, () => marker)));
  writeFileSync(`${src}/kept.bin`, Buffer.alloc(MiB, 'kept '));
  const bytes = 32 * MiB;
  const img = makeExt('mkfs.ext4', bytes, ['-b', '4096'], src);

  const blocksOf = (dev: string, file: string): number[] =>
    run('debugfs', ['-R', `blocks ${file}`, dev]).trim().split(/\s+/).map(Number);
  const [victim, kept] = await withLoop(img, OFFSET, bytes, (dev) => [blocksOf(dev, '/victim.bin'), blocksOf(dev, '/kept.bin')]);
  assert.equal(victim?.length, 512);
  const before = await usedMap(img, bytes);
  assert.ok(before);
  for (const b of victim ?? []) assert.ok(before.overlaps(b * 4096, (b + 1) * 4096), `block ${b} used before the delete`);

  await withLoop(img, OFFSET, bytes, (dev) => run('debugfs', ['-w', '-R', 'rm /victim.bin', dev]));
  const afterDelete = await usedMap(img, bytes);
  assert.ok(afterDelete);
  const disk = await openDisk(img);
  try {
    for (const b of victim ?? []) {
      assert.ok(!afterDelete.overlaps(b * 4096, (b + 1) * 4096), `block ${b} of the deleted file must be unused`);
      assert.deepEqual(await disk.read(OFFSET + b * 4096, 4096), marker, 'the deleted data is still on disk');
    }
  } finally {
    await disk.close();
  }
  for (const b of kept ?? []) assert.ok(afterDelete.overlaps(b * 4096, (b + 1) * 4096), `block ${b} of the kept file stays used`);
  assert.ok(before.usedBytes() - afterDelete.usedBytes() >= 512 * 4096);
});
