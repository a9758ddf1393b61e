import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUnstableDeviceName, parseBlkidExport, parseOldDeviceName, resolveDevice, type BlockDevice, type DeviceTable } from './devices.js';

const dev = (path: string, disk: number, partition: number, more: Partial<BlockDevice> = {}): BlockDevice => ({ path, aliases: [], disk, partition, ...more });
const table: DeviceTable = {
  targets: ['/dev/vda', '/dev/vdb'],
  devices: [
    dev('/dev/vda1', 0, 1, { uuid: 'aaaa-1111', type: 'ext4', label: 'root', partuuid: '0badf00d-01' }),
    dev('/dev/vda2', 0, 2, { uuid: 'bbbb-2222', type: 'swap' }),
    dev('/dev/vdb1', 1, 1, { uuid: 'ABCD-EF01', type: 'vfat' }),
    dev('/dev/vg0/home', -1, 0, { uuid: 'cccc-3333', type: 'xfs', aliases: ['/dev/mapper/vg0-home'] }),
  ],
};

test('parseOldDeviceName maps the source names of every controller to disk index and partition', () => {
  assert.deepEqual(parseOldDeviceName('/dev/sda1'), { disk: 0, partition: 1 });
  assert.deepEqual(parseOldDeviceName('/dev/hdb3'), { disk: 1, partition: 3 });
  assert.deepEqual(parseOldDeviceName('/dev/vdc'), { disk: 2, partition: 0 });
  assert.deepEqual(parseOldDeviceName('/dev/xvda2'), { disk: 0, partition: 2 });
  assert.deepEqual(parseOldDeviceName('/dev/sdaa1'), { disk: 26, partition: 1 });
  assert.deepEqual(parseOldDeviceName('/dev/nvme1n1p2'), { disk: 1, partition: 2 });
  assert.equal(parseOldDeviceName('/dev/mapper/vg-root'), undefined);
  assert.equal(parseOldDeviceName('UUID=aaaa'), undefined);
  assert.equal(parseOldDeviceName('/dev/sda1x'), undefined);
});

test('isUnstableDeviceName is true for controller names and by-id/by-path links only', () => {
  for (const s of ['/dev/sda1', '/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part1', '/dev/disk/by-path/pci-0000:00:01.1-ata-1-part1']) assert.equal(isUnstableDeviceName(s), true, s);
  for (const s of ['UUID=x', 'LABEL=root', '/dev/mapper/vg-root', '/dev/disk/by-uuid/x', 'tmpfs', 'proc']) assert.equal(isUnstableDeviceName(s), false, s);
});

test('resolveDevice finds old names by disk order and partition number, and tags among the restored disks', () => {
  assert.equal(resolveDevice('/dev/sda1', table)?.path, '/dev/vda1');
  assert.equal(resolveDevice('/dev/hda2', table)?.path, '/dev/vda2');
  assert.equal(resolveDevice('/dev/sdb1', table)?.path, '/dev/vdb1');
  assert.equal(resolveDevice('/dev/sdc1', table), undefined, 'a third disk was not restored');
  assert.equal(resolveDevice('UUID=aaaa-1111', table)?.path, '/dev/vda1');
  assert.equal(resolveDevice('UUID="abcd-ef01"', table)?.path, '/dev/vdb1', 'quoted, and FAT serials in either case');
  assert.equal(resolveDevice('LABEL=root', table)?.path, '/dev/vda1');
  assert.equal(resolveDevice('PARTUUID=0BADF00D-01', table)?.path, '/dev/vda1');
  assert.equal(resolveDevice('/dev/disk/by-uuid/bbbb-2222', table)?.path, '/dev/vda2');
  assert.equal(resolveDevice('/dev/mapper/vg0-home', table)?.path, '/dev/vg0/home');
  assert.equal(resolveDevice('UUID=not-here', table), undefined);
});

test('resolveDevice maps a by-id partition link only when there is a single restored disk', () => {
  const one: DeviceTable = { targets: ['/dev/vda'], devices: table.devices.filter((d) => d.disk === 0) };
  assert.equal(resolveDevice('/dev/disk/by-id/ata-VBOX_HARDDISK_VB1-part2', one)?.path, '/dev/vda2');
  assert.equal(resolveDevice('/dev/disk/by-id/ata-VBOX_HARDDISK_VB1-part2', table), undefined);
});

test('parseBlkidExport reads KEY=value lines', () => {
  assert.deepEqual(parseBlkidExport('DEVNAME=/dev/vda1\nUUID=aaaa\nTYPE=ext4\nPART_ENTRY_UUID=0badf00d-01\n'), { DEVNAME: '/dev/vda1', UUID: 'aaaa', TYPE: 'ext4', PART_ENTRY_UUID: '0badf00d-01' });
});
