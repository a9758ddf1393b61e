import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFstab, rewriteDeviceColumn, stableRenamer } from './fstab.js';
import type { DeviceTable } from './devices.js';

const table: DeviceTable = {
  targets: ['/dev/vda'],
  devices: [
    { path: '/dev/vda1', aliases: [], disk: 0, partition: 1, uuid: 'aaaa-1111', type: 'ext4' },
    { path: '/dev/vda2', aliases: [], disk: 0, partition: 2, uuid: 'bbbb-2222', type: 'swap' },
    { path: '/dev/vda3', aliases: [], disk: 0, partition: 3, type: 'crypto_LUKS', uuid: 'cccc-3333' },
  ],
};

test('rewriteDeviceColumn turns fstab device names into UUIDs and keeps everything else byte for byte', () => {
  const fstab = [
    '# /etc/fstab: static file system information.',
    '/dev/sda1\t/\text4\terrors=remount-ro\t0\t1',
    '  /dev/sda2   none   swap   sw   0   0',
    'UUID=dddd /data xfs defaults 0 2',
    'proc /proc proc defaults 0 0',
    '/dev/mapper/vg-home /home ext4 defaults 0 2',
    '',
  ].join('\n');
  const r = rewriteDeviceColumn(fstab, 0, stableRenamer(table));
  assert.equal(
    r.text,
    [
      '# /etc/fstab: static file system information.',
      'UUID=aaaa-1111\t/\text4\terrors=remount-ro\t0\t1',
      '  UUID=bbbb-2222   none   swap   sw   0   0',
      'UUID=dddd /data xfs defaults 0 2',
      'proc /proc proc defaults 0 0',
      '/dev/mapper/vg-home /home ext4 defaults 0 2',
      '',
    ].join('\n'),
  );
  assert.deepEqual(r.changes, ['/dev/sda1 -> UUID=aaaa-1111', '/dev/sda2 -> UUID=bbbb-2222']);
  assert.deepEqual(r.unresolved, []);
});

test('rewriteDeviceColumn reports device names it cannot place and leaves them', () => {
  const r = rewriteDeviceColumn('/dev/sdb1 /srv ext4 defaults 0 2\n', 0, stableRenamer(table));
  assert.equal(r.text, '/dev/sdb1 /srv ext4 defaults 0 2\n');
  assert.deepEqual(r.unresolved, ['/dev/sdb1']);
});

test('rewriteDeviceColumn lets noauto and nofail lines it cannot place pass as optional', () => {
  const r = rewriteDeviceColumn('/dev/sdb1 /media/usb vfat noauto,user 0 0\n/dev/sdc1 /backup ext4 defaults,nofail 0 2\n', 0, stableRenamer(table));
  assert.deepEqual(r.unresolved, []);
  assert.deepEqual(r.optional, ['/dev/sdb1', '/dev/sdc1']);
});

test('rewriteDeviceColumn rewrites the second column of crypttab', () => {
  const r = rewriteDeviceColumn('# <target> <source> <key> <options>\nsda3_crypt /dev/sda3 none luks,discard\n', 1, stableRenamer(table));
  assert.equal(r.text, '# <target> <source> <key> <options>\nsda3_crypt UUID=cccc-3333 none luks,discard\n');
});

test('parseFstab skips comments and blank lines', () => {
  assert.deepEqual(parseFstab('# c\n\n/dev/sda1 / ext4 defaults 0 1\nUUID=x /boot/efi vfat umask=0077 0 1\n'), [
    { spec: '/dev/sda1', file: '/', vfstype: 'ext4', options: 'defaults' },
    { spec: 'UUID=x', file: '/boot/efi', vfstype: 'vfat', options: 'umask=0077' },
  ]);
});
