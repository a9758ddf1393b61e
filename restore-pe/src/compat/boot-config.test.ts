import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteGrubDefaults, rewriteResumeConf } from './boot-config.js';
import { stableRenamer } from './fstab.js';
import type { DeviceTable } from './devices.js';

const rename = stableRenamer({
  targets: ['/dev/vda'],
  devices: [
    { path: '/dev/vda1', aliases: [], disk: 0, partition: 1, uuid: 'aaaa-1111', type: 'ext4' },
    { path: '/dev/vda2', aliases: [], disk: 0, partition: 2, uuid: 'bbbb-2222', type: 'swap' },
  ],
} satisfies DeviceTable);

test('rewriteGrubDefaults names root and resume by UUID and turns GRUB_DISABLE_LINUX_UUID off', () => {
  const text = [
    'GRUB_DEFAULT=0',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet resume=/dev/sda2"',
    'GRUB_CMDLINE_LINUX="root=/dev/sda1 console=ttyS0,115200n8 rootdelay=5"',
    'GRUB_DISABLE_LINUX_UUID=true',
    '#GRUB_CMDLINE_LINUX="root=/dev/sda1"',
    '',
  ].join('\n');
  const r = rewriteGrubDefaults(text, rename);
  assert.equal(
    r.text,
    [
      'GRUB_DEFAULT=0',
      'GRUB_CMDLINE_LINUX_DEFAULT="quiet resume=UUID=bbbb-2222"',
      'GRUB_CMDLINE_LINUX="root=UUID=aaaa-1111 console=ttyS0,115200n8 rootdelay=5"',
      '# GRUB_DISABLE_LINUX_UUID=true  (turned off by Ferry: the kernel finds its root by UUID on the new machine)',
      'GRUB_DISABLE_LINUX_UUID=false',
      '#GRUB_CMDLINE_LINUX="root=/dev/sda1"',
      '',
    ].join('\n'),
  );
  assert.equal(r.changes.length, 3);
});

test('rewriteGrubDefaults leaves a configuration without device names alone', () => {
  const text = 'GRUB_CMDLINE_LINUX=""\nGRUB_CMDLINE_LINUX_DEFAULT="quiet root=UUID=x"\n';
  assert.deepEqual(rewriteGrubDefaults(text, rename), { text, changes: [], unresolved: [], optional: [] });
});

test('rewriteGrubDefaults reports a root= it cannot place', () => {
  assert.deepEqual(rewriteGrubDefaults("GRUB_CMDLINE_LINUX='root=/dev/sdb1'\n", rename).unresolved, ['root=/dev/sdb1']);
});

test('rewriteResumeConf names the resume device by UUID', () => {
  assert.equal(rewriteResumeConf('RESUME=/dev/sda2\n', rename).text, 'RESUME=UUID=bbbb-2222\n');
  assert.equal(rewriteResumeConf('RESUME=none\n', rename).changes.length, 0);
});
