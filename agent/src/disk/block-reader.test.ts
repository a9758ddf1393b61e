import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { DIRECT_IO_SLACK, deviceNumbers, openDisk } from './block-reader.js';
import { makeTempDir, MiB, removeTempDir, run, withLoop } from './test-images.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

function patternedImage(name: string, bytes: number): string {
  const img = `${dir}/${name}`;
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) data.writeUInt32LE(i, i);
  writeFileSync(img, data);
  return img;
}

void test('openDisk() reads an image file at any offset and knows its size', async () => {
  const img = patternedImage('a.img', 2 * MiB);
  const disk = await openDisk(img);
  try {
    assert.equal(disk.size, 2 * MiB);
    assert.equal(disk.sectorSize, 512);
    const buf = await disk.read(MiB + 4, 8);
    assert.equal(buf.readUInt32LE(0), MiB + 4);
    assert.equal(buf.readUInt32LE(4), MiB + 8);
    assert.equal((await disk.read(0, 2 * MiB)).length, 2 * MiB);
  } finally {
    await disk.close();
  }
});

/** Bytes of `file` in the page cache (fincore, util-linux). */
function cachedBytes(file: string): number {
  return Number(run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]).trim());
}

void test('openDisk() reads aligned spans into a buffer with slack directly, past the page cache; others through it', async () => {
  const img = patternedImage('direct.img', 8 * MiB);
  run('sync', [img]);
  // Drops the file's pages from the cache (coreutils: "iflag=nocache count=0" advises it for the whole file).
  run('dd', [`if=${img}`, 'iflag=nocache', 'count=0', 'status=none']);
  assert.equal(cachedBytes(img), 0, 'the image starts out of the page cache');
  const disk = await openDisk(img);
  try {
    const into = Buffer.alloc(4 * MiB + DIRECT_IO_SLACK);
    const got = await disk.read(2 * MiB, 4 * MiB, into);
    assert.equal(got.buffer, into.buffer, "read into the caller's buffer");
    assert.equal(got.length, 4 * MiB);
    assert.equal(got.readUInt32LE(0), 2 * MiB);
    assert.equal(got.readUInt32LE(4 * MiB - 4), 6 * MiB - 4);
    assert.equal(cachedBytes(img), 0, 'a direct read leaves nothing in the page cache');
    // Not on a sector boundary: the page cache serves it, and the bytes are the same.
    const odd = await disk.read(MiB + 4, 4096, into);
    assert.equal(odd.readUInt32LE(0), MiB + 4);
    assert.ok(cachedBytes(img) > 0, 'an unaligned read goes through the page cache');
  } finally {
    await disk.close();
  }
});

void test('openDisk() refuses reads past the end, naming the disk', async () => {
  const img = patternedImage('b.img', 4096);
  const disk = await openDisk(img);
  try {
    await assert.rejects(disk.read(4000, 200), (err: Error) => err.message.includes(img) && /outside/.test(err.message));
  } finally {
    await disk.close();
  }
});

void test('openDisk() takes a block device size from sysfs, where stat says 0', async () => {
  const img = patternedImage('c.img', 3 * MiB);
  await withLoop(img, undefined, undefined, async (dev) => {
    assert.equal(statSync(dev).size, 0);
    const disk = await openDisk(dev);
    try {
      assert.equal(disk.size, 3 * MiB);
      assert.equal(disk.sectorSize, 512);
      assert.equal((await disk.read(2 * MiB, 4)).readUInt32LE(0), 2 * MiB);
    } finally {
      await disk.close();
    }
  });
});

void test('openDisk() reports the logical sector size of a 4096-byte-sector device', async () => {
  const img = patternedImage('d.img', 4 * MiB);
  const dev = run('losetup', ['-f', '--show', '-b', '4096', img]).trim();
  try {
    const disk = await openDisk(dev);
    assert.equal(disk.sectorSize, 4096);
    assert.equal(disk.size, 4 * MiB);
    await disk.close();
  } finally {
    run('losetup', ['-d', dev]);
  }
});

void test('deviceNumbers() splits dev_t as stat(1) does', () => {
  const st = statSync('/dev/loop-control', { bigint: true });
  const [major, minor] = run('stat', ['-c', '%t %T', '/dev/loop-control']).trim().split(' ').map((h) => parseInt(h, 16));
  assert.deepEqual(deviceNumbers(st.rdev), { major, minor });
  // A large minor (as for nvme partitions) is spread over both halves of dev_t.
  assert.deepEqual(deviceNumbers(0x45n | (0x103n << 8n) | (0x12000n << 12n)), { major: 0x103, minor: 0x12045 });
});

void test('openDisk() rejects something that is neither a file nor a block device', async () => {
  await assert.rejects(openDisk(dir), new RegExp(`${dir} is neither`));
});
