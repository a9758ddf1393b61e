import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBareDeviceRoot, kernelRoots } from './bootloader.js';

test('kernelRoots reads root= of grub.cfg linux lines and BootLoaderSpec options', () => {
  const cfg = `menuentry 'Debian' {
	search --no-floppy --fs-uuid --set=root aaaa
	linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=aaaa ro console=ttyS0
	initrd	/boot/initrd.img-6.1.0-50-amd64
}
	linux16 /vmlinuz root=/dev/loop0p1 ro
options root=/dev/mapper/rhel-root ro crashkernel=auto
`;
  assert.deepEqual(kernelRoots(cfg), ['UUID=aaaa', '/dev/loop0p1', '/dev/mapper/rhel-root']);
});

test('isBareDeviceRoot rejects device names of this machine and accepts stable names', () => {
  for (const r of ['/dev/loop0p1', '/dev/vda1', '/dev/sda1', '/dev/nvme0n1p2', '/dev/disk/by-id/ata-x-part1']) assert.equal(isBareDeviceRoot(r), true, r);
  for (const r of ['UUID=aaaa', 'PARTUUID=0badf00d-01', 'LABEL=root', '/dev/mapper/vg-root', '/dev/vg/root', 'ZFS=rpool/ROOT']) assert.equal(isBareDeviceRoot(r), false, r);
});
