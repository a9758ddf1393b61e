import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { openDisk } from './block-reader.js';
import type { Disk } from './block-reader.js';
import { readDiskLayout, usedExtents } from './disk-layout.js';
import type { DiskLayout } from './disk-layout.js';
import { ext4UsedExtents } from './ext4-bitmap.js';
import { xfsUsedExtents } from './xfs-used.js';
import { makeTempDir, MiB, removeTempDir, run, SMALL_XFS_ENV, withLoop, writeAt } from './test-images.js';
import { UsageMap } from './usage-map.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));
let count = 0;

function copyImage(src: string): string {
  const img = `${dir}/copy${count++}.img`;
  run('cp', ['--sparse=always', src, img]);
  return img;
}

async function withDisk<T>(path: string, fn: (disk: Disk) => Promise<T>): Promise<T> {
  const disk = await openDisk(path);
  try {
    return await fn(disk);
  } finally {
    await disk.close();
  }
}

function sourceTree(): string {
  const src = `${dir}/src${count++}`;
  mkdirSync(src);
  writeFileSync(`${src}/data.bin`, Buffer.alloc(3 * MiB, 'some data '));
  return src;
}

interface SfdiskTable {
  id: string;
  partitions: { node: string; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean }[];
}

function sfdiskJson(img: string): SfdiskTable {
  return (JSON.parse(run('sfdisk', ['--json', img])) as { partitiontable: SfdiskTable }).partitiontable;
}

const GPT_SIZE = 200 * MiB;
const GPT = {
  bios: { start: MiB, size: MiB },
  root: { start: 2 * MiB, size: 96 * MiB },
  swap: { start: 98 * MiB, size: 16 * MiB },
  data: { start: 114 * MiB, size: 64 * MiB },
};
let gptTemplate: string | undefined;

/**
 * 200 MiB GPT disk: BIOS boot, ext4 with a file, swap, xfs, then 22 MiB unpartitioned.
 * Built once: sgdisk pauses a second after each write.
 */
function gptDisk(): string {
  if (gptTemplate) return copyImage(gptTemplate);
  const img = `${dir}/gpt.img`;
  run('truncate', ['-s', String(GPT_SIZE), img]);
  run('sgdisk', [
    '-n1:2048:+1M', '-t1:ef02', '-c1:bios',
    '-n2:0:+96M', '-t2:8300', '-c2:root',
    '-n3:0:+16M', '-t3:8200', '-c3:swap',
    '-n4:0:+64M', '-t4:8300', '-c4:data',
    img,
  ]);
  writeAt(img, GPT.bios.start, Buffer.alloc(4096, 0xab));
  run('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', sourceTree(), '-E', `offset=${GPT.root.start}`, img, `${GPT.root.size / 1024}k`]);
  withLoopSync(img, GPT.swap, (dev) => run('mkswap', ['-q', '-L', 'swap', dev]));
  withLoopSync(img, GPT.data, (dev) => run('mkfs.xfs', ['-q', '-L', 'data', dev], undefined, SMALL_XFS_ENV));
  gptTemplate = img;
  return copyImage(img);
}

function withLoopSync(img: string, region: { start: number; size: number }, fn: (dev: string) => void): void {
  const dev = run('losetup', ['-f', '--show', '-o', String(region.start), '--sizelimit', String(region.size), img]).trim();
  try {
    fn(dev);
  } finally {
    run('losetup', ['-d', dev]);
  }
}

function expectPartitionsLike(layout: DiskLayout, sfdisk: SfdiskTable, sectorSize: number): void {
  assert.deepEqual(
    layout.table.partitions.map((p) => ({ number: p.number, start: p.startByte, size: p.sizeBytes, type: p.type, uuid: p.uuid, name: p.name })),
    sfdisk.partitions.map((p) => ({
      number: Number(/(\d+)$/.exec(p.node)?.[1]),
      start: p.start * sectorSize,
      size: p.size * sectorSize,
      type: p.type.toLowerCase(),
      uuid: p.uuid?.toLowerCase(),
      name: p.name,
    })),
  );
}

void test('readDiskLayout() lists the partitions of a GPT disk as sfdisk does, with their filesystems', async () => {
  const img = gptDisk();
  const layout = await withDisk(img, readDiskLayout);
  const expected = sfdiskJson(img);
  assert.equal(layout.size, GPT_SIZE);
  assert.equal(layout.table.type, 'gpt');
  assert.equal(layout.table.id, expected.id.toLowerCase());
  expectPartitionsLike(layout, expected, 512);
  assert.deepEqual(
    layout.table.partitions.map((p) => [p.filesystem.type, p.filesystem.label]),
    [['unknown', undefined], ['ext4', 'root'], ['swap', 'swap'], ['xfs', 'data']],
  );
  assert.equal(layout.table.gpt?.fromBackup, false);
  assert.deepEqual(JSON.parse(JSON.stringify(layout)), layout, 'the layout survives JSON');
});

void test('usedExtents() skips the free blocks of an ext4 filesystem on a GPT disk', async () => {
  const img = gptDisk();
  await withDisk(img, async (disk) => {
    const map = await usedExtents(disk, await readDiskLayout(disk));
    const ext4 = await ext4UsedExtents(disk, GPT.root.start, GPT.root.size);
    assert.ok(ext4);
    const expected = new UsageMap();
    expected.add(0, MiB); // protective MBR, GPT header and entries, alignment gap
    expected.add(GPT.bios.start, GPT.bios.start + GPT.bios.size);
    expected.addAll(ext4, GPT.root.start);
    expected.add(GPT.swap.start, GPT.swap.start + 4096); // swap header page only
    const xfs = await xfsUsedExtents(disk, GPT.data.start, GPT.data.size);
    assert.ok(xfs, 'the xfs partition is mapped through its free-space trees');
    expected.addAll(xfs, GPT.data.start);
    expected.add(GPT_SIZE - 33 * 512, GPT_SIZE); // backup entries and header
    assert.deepEqual(map.extents(), expected.extents());
    const rootUsed = map.extentsIn(GPT.root.start, GPT.root.start + GPT.root.size).reduce((n, e) => n + e.end - e.start, 0);
    assert.ok(rootUsed < GPT.root.size / 4, `only a fraction of the ext4 partition is read (${rootUsed} bytes)`);
    assert.ok(rootUsed > 3 * MiB, 'the file in it is');
    assert.deepEqual(map.extentsIn(GPT.data.start + GPT.data.size, GPT_SIZE - 33 * 512), [], 'unpartitioned space is skipped');
  });
});

void test('readDiskLayout() falls back to the backup GPT when the primary header or entries are damaged', async () => {
  const good = await withDisk(gptDisk(), readDiskLayout);
  const badHeader = gptDisk();
  writeAt(badHeader, 512 + 60, Buffer.from([0x42]));
  const badEntries = gptDisk();
  writeAt(badEntries, 1024 + 100, Buffer.from([0x42]));
  for (const img of [badHeader, badEntries]) {
    const layout = await withDisk(img, readDiskLayout);
    assert.equal(layout.table.gpt?.fromBackup, true);
    assert.deepEqual(layout.table.partitions, good.table.partitions);
    const map = await withDisk(img, (disk) => usedExtents(disk, layout));
    assert.deepEqual(map.extentsIn(0, MiB), [{ start: 0, end: MiB }], 'the damaged primary is still read');
  }
});

void test('readDiskLayout() rejects a GPT disk whose primary and backup tables are both damaged, naming the disk', async () => {
  const img = gptDisk();
  writeAt(img, 512 + 60, Buffer.from([0x42]));
  writeAt(img, GPT_SIZE - 512 + 60, Buffer.from([0x42]));
  await assert.rejects(
    withDisk(img, readDiskLayout),
    (err: Error) => err.message.includes(`no valid GPT on ${img}`) && /CRC mismatch/.test(err.message),
  );
});

void test('readDiskLayout() reads an MBR disk with an extended partition and two logical partitions', async () => {
  const img = `${dir}/mbr.img`;
  run('truncate', ['-s', String(64 * MiB), img]);
  run('sfdisk', ['-q', img], [
    'label: dos',
    'start=2048, size=16M, type=83, bootable',
    'start=34816, size=8M, type=82',
    'start=51200, type=5',
    'start=53248, size=4M, type=83',
    'start=63488, type=8e',
  ].join('\n'));
  run('mkfs.ext4', ['-q', '-F', '-E', `offset=${MiB}`, img, '16384k']);
  withLoopSync(img, { start: 34816 * 512, size: 8 * MiB }, (dev) => run('mkswap', ['-q', dev]));
  run('mkfs.ext2', ['-q', '-F', '-b', '1024', '-L', 'logical5', '-E', `offset=${53248 * 512}`, img, '4096k']);

  await withDisk(img, async (disk) => {
    const layout = await readDiskLayout(disk);
    const expected = sfdiskJson(img);
    assert.equal(layout.table.type, 'mbr');
    assert.equal(layout.table.id, expected.id);
    assert.deepEqual(
      layout.table.partitions.map((p) => ({ number: p.number, start: p.startByte / 512, size: p.sizeBytes / 512, type: p.type.replace(/^0/, ''), bootable: p.bootable })),
      expected.partitions.map((p) => ({ number: Number(/(\d+)$/.exec(p.node)?.[1]), start: p.start, size: p.size, type: p.type, bootable: p.bootable ?? false })),
    );
    assert.deepEqual(
      layout.table.partitions.map((p) => [p.kind, p.filesystem.type]),
      [['primary', 'ext4'], ['primary', 'swap'], ['extended', 'unknown'], ['logical', 'ext2'], ['logical', 'unknown']],
    );
    const ebrs = layout.table.ebrOffsets ?? [];
    assert.equal(ebrs[0], 51200 * 512);
    assert.equal(ebrs.length, 2);

    const map = await usedExtents(disk, layout);
    for (const ebr of ebrs) assert.deepEqual(map.extentsIn(ebr, ebr + 512), [{ start: ebr, end: ebr + 512 }], 'EBR sector is read');
    assert.deepEqual(map.extentsIn(51200 * 512 + 512, 53248 * 512), [], 'the gap after an EBR is not');
    const lvm = { start: 63488 * 512, end: 64 * MiB };
    assert.deepEqual(map.extentsIn(lvm.start, lvm.end), [lvm], 'the unknown logical partition is read whole');
    assert.deepEqual(map.extentsIn(34816 * 512, 51200 * 512), [{ start: 34816 * 512, end: 34816 * 512 + 4096 }]);
    const ext2 = await ext4UsedExtents(disk, 53248 * 512, 4 * MiB);
    assert.ok(ext2);
    assert.equal(map.extentsIn(53248 * 512, 53248 * 512 + 4 * MiB).reduce((n, e) => n + e.end - e.start, 0), ext2.usedBytes());
    assert.deepEqual(map.extentsIn(0, MiB), [{ start: 0, end: MiB }], 'MBR and boot loader gap');
  });
});

void test('readDiskLayout() treats a disk without a partition table as one filesystem', async () => {
  const img = `${dir}/whole.img`;
  run('truncate', ['-s', String(32 * MiB), img]);
  run('mkfs.ext4', ['-q', '-F', '-L', 'whole', '-d', sourceTree(), img]);
  await withDisk(img, async (disk) => {
    const layout = await readDiskLayout(disk);
    assert.deepEqual(layout.table, { type: 'none', partitions: [] });
    assert.equal(layout.filesystem?.type, 'ext4');
    const map = await usedExtents(disk, layout);
    assert.deepEqual(map.extents(), (await ext4UsedExtents(disk, 0, disk.size))?.extents());
    assert.ok(map.usedBytes() < disk.size / 2);
  });

  const raw = `${dir}/raw.img`;
  writeFileSync(raw, Buffer.alloc(MiB, 0x5a));
  await withDisk(raw, async (disk) => {
    const layout = await readDiskLayout(disk);
    assert.deepEqual(layout.filesystem, { type: 'unknown' });
    assert.deepEqual((await usedExtents(disk, layout)).extents(), [{ start: 0, end: MiB }]);
  });
});

void test('readDiskLayout() reads a GPT with 4096-byte sectors, from the device and from its image', async () => {
  const img = `${dir}/4kn.img`;
  run('truncate', ['-s', String(32 * MiB), img]);
  const dev = run('losetup', ['-f', '--show', '-b', '4096', img]).trim();
  try {
    run('sgdisk', ['-n1:0:+8M', '-t1:8300', dev]);
    const fromDevice = await withDisk(dev, readDiskLayout);
    assert.equal(fromDevice.sectorSize, 4096);
    assert.deepEqual(fromDevice.table.partitions.map((p) => [p.startByte, p.sizeBytes]), [[MiB, 8 * MiB]]);
    const fromImage = await withDisk(img, readDiskLayout);
    assert.deepEqual(fromImage, fromDevice);
    const map = await withDisk(img, (disk) => usedExtents(disk, fromImage));
    assert.deepEqual(map.extentsIn(24 * MiB, 32 * MiB), [{ start: 32 * MiB - 5 * 4096, end: 32 * MiB }], 'backup GPT: 4 entry sectors + header');
  } finally {
    run('losetup', ['-d', dev]);
  }
});

void test('readDiskLayout() sees through a loop device: same layout as from the image file', async () => {
  const img = gptDisk();
  const fromFile = await withDisk(img, readDiskLayout);
  await withLoop(img, undefined, undefined, async (dev) => {
    assert.deepEqual(await withDisk(dev, readDiskLayout), fromFile);
  });
});

void test('readDiskLayout() uses the GPT behind an MBR that has a signature but no partitions', async () => {
  const img = gptDisk();
  writeAt(img, 446, Buffer.alloc(64));
  const layout = await withDisk(img, readDiskLayout);
  assert.equal(layout.table.type, 'gpt');
  assert.equal(layout.table.partitions.length, 4);
});
