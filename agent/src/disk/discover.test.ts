import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { listDisks } from './discover.js';
import { makeTempDir, MiB, removeTempDir, run, withLoop } from './test-images.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

void test('listDisks() lists an attached loop disk with its size and partition layout', async () => {
  const img = `${dir}/disk.img`;
  run('truncate', ['-s', String(16 * MiB), img]);
  run('sfdisk', ['-q', img], 'label: dos\nstart=2048, type=83\n');
  await withLoop(img, undefined, undefined, async (dev) => {
    const disks = await listDisks();
    const mine = disks.find((d) => d.path === dev);
    assert.ok(mine, `${dev} is listed`);
    assert.equal(mine.size, 16 * MiB);
    assert.equal(mine.error, undefined);
    assert.equal(mine.layout?.table.type, 'mbr');
    assert.deepEqual(mine.layout?.table.partitions.map((p) => [p.number, p.startByte]), [[1, MiB]]);
  });
});

void test('listDisks() skips RAM disks, zram, optical drives, device-mapper and unattached loop devices', async () => {
  // A sysfs-shaped tree, so the outcome does not depend on what this machine has attached.
  const sys = `${dir}/sys-block`;
  const dev = `${dir}/dev`;
  mkdirSync(dev);
  const add = (name: string, sectors: number, extra: Record<string, string> = {}): void => {
    mkdirSync(`${sys}/${name}/device`, { recursive: true });
    mkdirSync(`${sys}/${name}/queue`, { recursive: true });
    writeFileSync(`${sys}/${name}/size`, `${sectors}\n`);
    for (const [file, text] of Object.entries(extra)) {
      mkdirSync(`${sys}/${name}/${file}`.replace(/\/[^/]+$/, ''), { recursive: true });
      writeFileSync(`${sys}/${name}/${file}`, text);
    }
  };
  for (const name of ['ram0', 'zram0', 'sr0', 'dm-0', 'loop0']) add(name, 2048);
  add('loop1', 2048, { 'loop/backing_file': '/some/image\n' });
  add('nbd0', 0);
  add('sda', 4096, { 'device/model': 'Fast Disk      \n', 'device/vendor': 'ACME\n', 'device/serial': 'SN123\n', 'queue/rotational': '0\n', ro: '0\n', removable: '0\n' });
  run('truncate', ['-s', String(2 * MiB), `${dev}/sda`]);
  run('sfdisk', ['-q', `${dev}/sda`], 'label: gpt\nstart=2048, type=L\n');
  run('truncate', ['-s', String(MiB), `${dev}/loop1`]);

  const disks = await listDisks(sys, dev);
  assert.deepEqual(disks.map((d) => d.name), ['loop1', 'sda']);
  const sda = disks[1];
  assert.equal(sda?.path, `${dev}/sda`);
  assert.equal(sda?.size, 2 * MiB);
  assert.deepEqual([sda?.model, sda?.vendor, sda?.serial, sda?.rotational, sda?.readOnly, sda?.removable], ['Fast Disk', 'ACME', 'SN123', false, false, false]);
  assert.equal(sda?.layout?.table.type, 'gpt');
  assert.equal(sda?.layout?.table.partitions.length, 1);
});

void test('listDisks() on this machine leaves out zram and reports sizes from sysfs', async () => {
  const disks = await listDisks();
  for (const disk of disks) {
    assert.doesNotMatch(disk.name, /^(ram|zram|sr|dm-)/);
    if (disk.name.startsWith('loop')) continue; // other tests attach and detach these concurrently
    const sectors = Number(readFileSync(`/sys/block/${disk.name}/size`, 'utf8'));
    assert.equal(disk.size, sectors * 512, disk.name);
    assert.equal(disk.layout?.size ?? disk.size, disk.size);
  }
});
