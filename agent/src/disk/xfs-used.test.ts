import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { openDisk } from './block-reader.js';
import { complement, makeTempDir, mergeTouching, MiB, removeTempDir, run, SMALL_XFS_ENV, withLoop, writeAt } from './test-images.js';
import type { Extent, UsageMap } from './usage-map.js';
import { parseXfsSuperblock, xfsUsage } from './xfs-used.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

const OFFSET = 2 * MiB;
let imageCount = 0;

/** An image with an XFS of `bytes` at OFFSET; the filesystem is made on a loop device over that window. */
function makeXfs(bytes: number, args: string[]): string {
  const img = `${dir}/xfs${imageCount++}.img`;
  run('truncate', ['-s', String(OFFSET + bytes + MiB), img]);
  // Deliberately bypass withLoop's async signature: mkfs is synchronous.
  const dev = run('losetup', ['-f', '--show', '-o', String(OFFSET), '--sizelimit', String(bytes), img]).trim();
  try {
    run('mkfs.xfs', ['-q', '-f', ...args, dev], undefined, SMALL_XFS_ENV);
  } finally {
    run('losetup', ['-d', dev]);
  }
  return img;
}

/** Mounts the XFS of `img`, lets `fill` write into it, unmounts; returns what `inspect` saw while mounted. */
async function withMounted<T>(img: string, bytes: number, fn: (mnt: string) => T): Promise<T> {
  const mnt = `${dir}/mnt${imageCount++}`;
  mkdirSync(mnt);
  return withLoop(img, OFFSET, bytes, (dev) => {
    run('mount', ['-t', 'xfs', dev, mnt]);
    try {
      return fn(mnt);
    } finally {
      run('umount', [mnt]);
    }
  });
}

async function usage(img: string, bytes: number): Promise<UsageMap | string> {
  const disk = await openDisk(img);
  try {
    return await xfsUsage(disk, OFFSET, bytes);
  } finally {
    await disk.close();
  }
}

const reason = (r: UsageMap | string): string => (typeof r === 'string' ? r : 'mapped');

interface XfsView {
  blockSize: number;
  agBlocks: number;
  dataBlocks: number;
  /** Free extents in filesystem-wide block numbers (ag × agblocks + agbno), the AG free lists left out. */
  free: Extent[];
}

/** xfs_db's view: `freesp -d` lists every free extent, and the AG free lists, which we count as used. */
function xfsDbView(dev: string): XfsView {
  const sb = run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p blocksize agblocks agcount dblocks', dev]);
  const field = (name: string): number => Number(new RegExp(`^${name} = (\\d+)`, 'm').exec(sb)?.[1]);
  const agBlocks = field('agblocks');
  const agCount = field('agcount');
  const agfl = new Set<string>();
  for (let ag = 0; ag < agCount; ag++) {
    const out = run('xfs_db', ['-r', '-c', `agfl ${ag}`, '-c', 'p bno', dev]);
    for (const m of out.matchAll(/\d+:(\d+)/g)) agfl.add(`${ag}/${m[1]}`);
  }
  const free: Extent[] = [];
  for (const m of run('xfs_db', ['-r', '-c', 'freesp -d', dev]).matchAll(/^\s+(\d+)\s+(\d+)\s+(\d+)$/gm)) {
    const [ag, agbno, len] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (len === 1 && agfl.has(`${ag}/${agbno}`)) continue;
    free.push({ start: ag * agBlocks + agbno, end: ag * agBlocks + agbno + len });
  }
  return { blockSize: field('blocksize'), agBlocks, dataBlocks: field('dblocks'), free };
}

/** Asserts the used set is exactly the complement of xfs_db's free extents. */
async function assertMatchesXfsDb(img: string, bytes: number): Promise<{ map: UsageMap; view: XfsView }> {
  const map = await usage(img, bytes);
  assert.ok(typeof map !== 'string', `the filesystem should be mappable: ${typeof map === 'string' ? map : ''}`);
  const view = await withLoop(img, OFFSET, bytes, xfsDbView);
  const bs = view.blockSize;
  const usedBlocks = map.extents().map((e) => {
    assert.equal(e.start % bs, 0, 'extents start on block boundaries');
    assert.equal(e.end % bs, 0, 'extents end on block boundaries');
    return { start: e.start / bs, end: e.end / bs };
  });
  assert.deepEqual(complement(usedBlocks, view.dataBlocks), mergeTouching(view.free));
  return { map, view };
}

/** Every file's data extents from xfs_bmap (512-byte units relative to the filesystem), as byte ranges. */
function fileExtents(mnt: string, files: string[]): Extent[] {
  const out: Extent[] = [];
  for (const m of run('xfs_bmap', files.map((f) => `${mnt}/${f}`)).matchAll(/\[\d+\.\.\d+\]: (\d+)\.\.(\d+)/g)) {
    out.push({ start: Number(m[1]) * 512, end: (Number(m[2]) + 1) * 512 });
  }
  return out;
}

void test('xfsUsage() matches xfs_db on a v5 (CRC) XFS and keeps the data of every file written through a mount', async () => {
  const bytes = 96 * MiB;
  const img = makeXfs(bytes, ['-d', 'agcount=4']);
  const files: string[] = [];
  const extents = await withMounted(img, bytes, (mnt) => {
    mkdirSync(`${mnt}/a/b`, { recursive: true });
    for (let i = 0; i < 30; i++) {
      const f = `a/${i % 2 ? 'b/' : ''}f${i}`;
      writeFileSync(`${mnt}/${f}`, randomBytes(20_000 + i * 37_000));
      files.push(f);
    }
    writeFileSync(`${mnt}/big`, randomBytes(9 * MiB));
    files.push('big');
    run('sync', []);
    return fileExtents(mnt, files);
  });
  const { map } = await assertMatchesXfsDb(img, bytes);
  assert.ok(extents.length >= files.length);
  for (const e of extents) assert.deepEqual(map.extentsIn(e.start, e.end), [e], `file data at [${e.start}, ${e.end}) lies in a used extent`);
  assert.ok(map.usedBytes() < bytes / 2, 'most of the filesystem is free and not read');
});

void test('xfsUsage() walks a multi-level free-space tree (1 KiB blocks, fragmented free space)', async () => {
  const bytes = 64 * MiB;
  const img = makeXfs(bytes, ['-b', 'size=1024', '-d', 'agcount=2']);
  const kept = await withMounted(img, bytes, (mnt) => {
    mkdirSync(`${mnt}/frag`);
    for (let i = 0; i < 1200; i++) writeFileSync(`${mnt}/frag/${i}`, Buffer.alloc(1024, i % 251));
    run('sync', []);
    for (let i = 0; i < 1200; i += 2) rmSync(`${mnt}/frag/${i}`);
    run('sync', []);
    const names = Array.from({ length: 600 }, (_, k) => `frag/${2 * k + 1}`);
    return fileExtents(mnt, names);
  });
  const levels = await withLoop(img, OFFSET, bytes, (dev) =>
    [0, 1].map((ag) => Number(/bnolevel = (\d+)/.exec(run('xfs_db', ['-r', '-c', `agf ${ag}`, '-c', 'p bnolevel', dev]))?.[1])),
  );
  assert.ok(Math.max(...levels) >= 2, `some AG's free-space tree should have two levels (got ${levels.join(', ')})`);
  const { map } = await assertMatchesXfsDb(img, bytes);
  for (const e of kept) assert.deepEqual(map.extentsIn(e.start, e.end), [e]);
});

void test('xfsUsage() matches xfs_db on a v4 (no CRC) XFS populated by a mkfs prototype file', async () => {
  // This kernel cannot mount v4 XFS (deprecated), so mkfs.xfs -p fills it.
  const src = `${dir}/v4src`;
  mkdirSync(src);
  const data = randomBytes(3 * MiB);
  writeFileSync(`${src}/blob`, data);
  writeFileSync(`${dir}/proto`, `/dummy\n0 0\nd--755 0 0\nblob ---644 0 0 ${src}/blob\n$\n`);
  const bytes = 48 * MiB;
  const img = makeXfs(bytes, ['-m', 'crc=0', '-p', `${dir}/proto`]);
  const { map, view } = await assertMatchesXfsDb(img, bytes);
  const bmap = await withLoop(img, OFFSET, bytes, (dev) => run('xfs_db', ['-r', '-c', 'path /blob', '-c', 'bmap', dev]));
  const m = /startblock \d+ \((\d+)\/(\d+)\) count (\d+)/.exec(bmap);
  assert.ok(m, bmap);
  const start = (Number(m[1]) * view.agBlocks + Number(m[2])) * view.blockSize;
  const end = start + Number(m[3]) * view.blockSize;
  assert.deepEqual(map.extentsIn(start, end), [{ start, end }]);
  const disk = await openDisk(img);
  try {
    assert.deepEqual(await disk.read(OFFSET + start, data.length), data, 'xfs_db and we agree where the file lies');
  } finally {
    await disk.close();
  }
});

void test('xfsUsage() refuses a damaged free-space tree and a filesystem larger than its partition', async () => {
  const bytes = 32 * MiB;
  const img = makeXfs(bytes, ['-d', 'agcount=2']);
  assert.match(reason(await usage(img, 16 * MiB)), /does not fit/);
  const disk = await openDisk(img);
  const sb = await disk.read(OFFSET, 512);
  const geo = parseXfsSuperblock(sb, bytes);
  assert.ok(typeof geo === 'object');
  const agf = await disk.read(OFFSET + geo.sectorSize, 512);
  await disk.close();
  const root = agf.readUInt32BE(16);
  // Break the leaf's magic: the tree can no longer be trusted.
  writeAt(img, OFFSET + root * geo.blockSize, Buffer.from('JUNK'));
  assert.match(reason(await usage(img, bytes)), /not a level-0 free-space tree block/);
});
