import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { openDisk } from './block-reader.js';
import { readDiskLayout } from './disk-layout.js';
import { applyExclusions, parseFilefrag, subtractExtents } from './exclusions.js';
import { parseMountinfo } from './placement.js';
import { attachLoop, detachLoop, makeTempDir, MiB, removeTempDir, run, SMALL_XFS_ENV } from './test-images.js';
import { UsageMap } from './usage-map.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

void test('parseFilefrag() reads extents in filesystem blocks, flags, and skips a file that vanished', () => {
  const out = [
    'Filesystem type is: ef53',
    'File size of /m/a is 300000 (293 blocks of 1024 bytes)',
    ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
    '   0:        0..     100:       8450..      8550:    101:            ',
    '   1:      101..     292:       9000..      9191:    192:       8551: last,eof',
    '/m/a: 2 extents found',
    'File size of /m/c d is 4096 (1 block of 4096 bytes)',
    ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
    '   0:        0..       0:          0..         0:      1:             last,unknown_loc,delalloc,eof',
    '/m/c d: 1 extent found',
  ].join('\n');
  const parsed = parseFilefrag(out, ['/m/a', '/m/gone', '/m/c d']);
  assert.deepEqual(parsed.get('/m/a'), [
    { physical: 8450 * 1024, length: 101 * 1024, flags: [] },
    { physical: 9000 * 1024, length: 192 * 1024, flags: ['last', 'eof'] },
  ]);
  assert.equal(parsed.has('/m/gone'), false);
  assert.deepEqual(parsed.get('/m/c d')?.[0]?.flags, ['last', 'unknown_loc', 'delalloc', 'eof']);
});

void test('subtractExtents() cuts holes out of a usage map, across and inside extents', () => {
  const m = new UsageMap();
  m.add(0, 100);
  m.add(200, 300);
  m.add(400, 500);
  const out = subtractExtents(m, [
    { start: 50, end: 250 },
    { start: 420, end: 430 },
    { start: 600, end: 700 },
  ]);
  assert.deepEqual(out.extents(), [
    { start: 0, end: 50 },
    { start: 250, end: 300 },
    { start: 400, end: 420 },
    { start: 430, end: 500 },
  ]);
});

void test('parseMountinfo() reads device numbers, type, writability and escaped mount points', () => {
  const mounts = parseMountinfo(
    '29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n' +
      '40 29 253:1 / /srv/my\\040data ro,relatime - xfs /dev/mapper/vg-data ro,attr2\n' +
      '41 29 0:45 / /run rw - tmpfs tmpfs rw\n',
  );
  assert.deepEqual(mounts[0], { major: 259, minor: 2, mountPoint: '/', fsType: 'ext4', readWrite: true });
  assert.deepEqual(mounts[1], { major: 253, minor: 1, mountPoint: '/srv/my data', fsType: 'xfs', readWrite: false });
  assert.equal(mounts[2]?.fsType, 'tmpfs');
});

/** Runs `fn` with an image holding one filesystem (no partition table) mounted from a loop device. */
async function withMountedImage(mkfs: (img: string) => void, fn: (img: string, dev: string, mnt: string) => Promise<void>): Promise<void> {
  const img = `${dir}/fs-${Math.random().toString(36).slice(2)}.img`;
  run('truncate', ['-s', String(64 * MiB), img]);
  mkfs(img);
  const dev = attachLoop(img);
  const mnt = `${img}.mnt`;
  mkdirSync(mnt);
  try {
    run('mount', [dev, mnt]);
    try {
      await fn(img, dev, mnt);
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    detachLoop(dev);
  }
}

for (const kind of ['ext4', 'xfs'] as const) {
  void test(`applyExclusions() takes the data blocks of every file under a ${kind} directory out of the usage map`, async () => {
    const mkfs = (img: string): void => {
      if (kind === 'ext4') run('mkfs.ext4', ['-q', '-F', '-b', '4096', img]);
      else run('mkfs.xfs', ['-q', '-f', img], undefined, SMALL_XFS_ENV);
    };
    await withMountedImage(mkfs, async (img, dev, mnt) => {
      mkdirSync(`${mnt}/cache/deep`, { recursive: true });
      mkdirSync(`${mnt}/keep`);
      const big = [randomBytes(6 * MiB), randomBytes(3 * MiB), randomBytes(MiB + 123)];
      writeFileSync(`${mnt}/cache/a.bin`, big[0]!);
      writeFileSync(`${mnt}/cache/deep/b.bin`, big[1]!);
      writeFileSync(`${mnt}/cache/deep/c.bin`, big[2]!);
      writeFileSync(`${mnt}/cache/tiny`, 'x');
      writeFileSync(`${mnt}/keep/kept.bin`, randomBytes(2 * MiB));
      symlinkSync(`${mnt}/keep/kept.bin`, `${mnt}/cache/link-to-kept`);
      run('sync', []);
      const frag = (f: string): { start: number; end: number }[] =>
        (parseFilefrag(run('filefrag', ['-e', '-v', f]), [f]).get(f) ?? []).map((e) => ({ start: e.physical, end: e.physical + e.length }));
      const kept = frag(`${mnt}/keep/kept.bin`);
      const excludedData = [...frag(`${mnt}/cache/a.bin`), ...frag(`${mnt}/cache/deep/b.bin`), ...frag(`${mnt}/cache/deep/c.bin`)];

      const disk = await openDisk(img);
      try {
        // The filesystem is mounted, so its on-disk maps lag (ext4 says so, XFS does not): start from all of it.
        const usage = new UsageMap();
        usage.add(0, disk.size);
        const sources = [{ key: img, layout: await readDiskLayout(disk), usage }];
        const reports = await applyExclusions([`${mnt}/cache`, `${mnt}/not-there`, '/proc/self'], sources);
        assert.equal(reports[0]?.disk, img, 'the image behind the loop device is the disk being backed up');
        assert.equal(reports[0]?.files, 4, 'the symlink is not followed; the tiny file counts');
        assert.match(reports[1]?.skipped ?? '', /does not exist/);
        assert.match(reports[2]?.skipped ?? '', /proc filesystem/);
        const after = sources[0]!.usage;
        for (const e of excludedData) assert.ok(!after.overlaps(e.start, e.end), `excluded data [${e.start}, ${e.end}) is not read`);
        for (const e of kept) assert.deepEqual(after.extentsIn(e.start, e.end), [e], 'other files stay');
        const excludedBytes = excludedData.reduce((n, e) => n + e.end - e.start, 0);
        assert.ok(excludedBytes >= 10 * MiB);
        // The tiny file's block may be inline (ext4) or shared with nothing else: at most one block more.
        assert.ok(disk.size - after.usedBytes() - excludedBytes <= 4096);
        assert.equal(reports[0]?.bytes, disk.size - after.usedBytes());

        // By its loop device name the same disk is found too.
        const byDevice = [{ key: dev, layout: null, usage: new UsageMap() }];
        byDevice[0]!.usage.add(0, disk.size);
        const r = await applyExclusions([`${mnt}/cache/deep`], byDevice);
        assert.equal(r[0]?.files, 2);
        assert.equal(r[0]?.bytes, big[1]!.length + Math.ceil(big[2]!.length / 4096) * 4096);
      } finally {
        await disk.close();
      }
      await assert.rejects(applyExclusions(['relative/path'], []), /not an absolute path/);
    });
  });
}
