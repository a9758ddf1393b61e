import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDisk } from './block-reader.js';
import { detectFilesystem } from './filesystem.js';
import type { FilesystemInfo } from './filesystem.js';
import { makeTempDir, MiB, removeTempDir, run, SMALL_XFS_ENV, writeAt } from './test-images.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));
let count = 0;

function blankImage(bytes: number): string {
  const img = `${dir}/fs${count++}.img`;
  run('truncate', ['-s', String(bytes), img]);
  return img;
}

async function detect(img: string, offset = 0, size?: number): Promise<FilesystemInfo> {
  const disk = await openDisk(img);
  try {
    return await detectFilesystem(disk, offset, size ?? disk.size - offset);
  } finally {
    await disk.close();
  }
}

/** What blkid says about the image, for comparison. */
function blkid(img: string): { TYPE?: string; LABEL?: string; UUID?: string } {
  const out = run('blkid', ['-p', '-o', 'export', img]);
  return Object.fromEntries(out.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
}

async function assertAgreesWithBlkid(img: string, type: FilesystemInfo['type']): Promise<void> {
  const fs = await detect(img);
  const expected = blkid(img);
  assert.equal(fs.type, type);
  assert.equal(expected.TYPE, type);
  assert.equal(fs.label, expected.LABEL);
  assert.equal(fs.uuid, expected.UUID);
}

void test('detectFilesystem() tells ext2, ext3 and ext4 apart by their features, with label and UUID', async () => {
  for (const [mkfs, type] of [
    ['mkfs.ext2', 'ext2'],
    ['mkfs.ext3', 'ext3'],
    ['mkfs.ext4', 'ext4'],
  ] as const) {
    const img = blankImage(8 * MiB);
    run(mkfs, ['-q', '-F', '-L', `lbl-${type}`, img]);
    await assertAgreesWithBlkid(img, type);
  }
});

void test('detectFilesystem() calls ext2 plus an ext4-only feature (flex_bg) ext4', async () => {
  const img = blankImage(8 * MiB);
  run('mkfs.ext2', ['-q', '-F', '-O', 'flex_bg', img]);
  assert.equal((await detect(img)).type, 'ext4');
});

void test('detectFilesystem() finds a filesystem at an offset inside the disk', async () => {
  const img = blankImage(16 * MiB);
  run('mkfs.ext4', ['-q', '-F', '-L', 'inner', '-E', `offset=${4 * MiB}`, img, '4096k']);
  const fs = await detect(img, 4 * MiB, 4 * MiB);
  assert.equal(fs.type, 'ext4');
  assert.equal(fs.label, 'inner');
  assert.deepEqual(await detect(img, 0, 4 * MiB), { type: 'unknown' });
});

void test('detectFilesystem() recognises swap with its label and UUID', async () => {
  const img = blankImage(8 * MiB);
  run('mkswap', ['-q', '-L', 'swappy', img]);
  await assertAgreesWithBlkid(img, 'swap');
});

void test('detectFilesystem() recognises xfs with its label and UUID', async () => {
  const img = blankImage(64 * MiB);
  run('mkfs.xfs', ['-q', '-L', 'xfsvol', img], undefined, SMALL_XFS_ENV);
  await assertAgreesWithBlkid(img, 'xfs');
});

void test('detectFilesystem() recognises an LVM2 physical volume label in sector 1', async () => {
  const img = blankImage(MiB);
  // The label as pvcreate writes it: LABELONE header in sector 1, pv_header 32 bytes in.
  const label = Buffer.alloc(512);
  label.write('LABELONE', 0, 'latin1');
  label.writeBigUInt64LE(1n, 8);
  label.writeUInt32LE(32, 20);
  label.write('LVM2 001', 24, 'latin1');
  label.write('AbCdEf0123456789GhIjKlMnOpQrStUv', 32, 'latin1');
  writeAt(img, 512, label);
  assert.deepEqual(await detect(img), { type: 'lvm2', uuid: 'AbCdEf-0123-4567-89Gh-IjKl-MnOp-QrStUv' });
});

void test('detectFilesystem() reports the type only for vfat and ntfs boot sectors', async () => {
  const fat = blankImage(MiB);
  const boot = Buffer.alloc(512);
  boot.set([0xeb, 0x58, 0x90], 0);
  boot.write('FAT32   ', 82, 'latin1');
  boot.set([0x55, 0xaa], 510);
  writeAt(fat, 0, boot);
  assert.deepEqual(await detect(fat), { type: 'vfat' });

  const ntfs = blankImage(MiB);
  const nboot = Buffer.alloc(512);
  nboot.set([0xeb, 0x52, 0x90], 0);
  nboot.write('NTFS    ', 3, 'latin1');
  nboot.set([0x55, 0xaa], 510);
  writeAt(ntfs, 0, nboot);
  assert.deepEqual(await detect(ntfs), { type: 'ntfs' });
});

void test('detectFilesystem() answers unknown for empty space and for conflicting signatures', async () => {
  assert.deepEqual(await detect(blankImage(MiB)), { type: 'unknown' });
  // An xfs magic over an ext4 means one of them is stale: neither may be trusted to skip blocks.
  const img = blankImage(8 * MiB);
  run('mkfs.ext4', ['-q', '-F', img]);
  writeAt(img, 0, Buffer.from('XFSB', 'latin1'));
  assert.deepEqual(await detect(img), { type: 'unknown' });
});

void test('detectFilesystem() copes with a region smaller than the probe window', async () => {
  const img = blankImage(8 * MiB);
  run('mkswap', ['-q', img]);
  assert.equal((await detect(img, 0, 4096)).type, 'swap');
  assert.deepEqual(await detect(img, 0, 100), { type: 'unknown' });
});
