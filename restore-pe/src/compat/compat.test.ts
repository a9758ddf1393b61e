import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCompatibility, runCommand, type CompatStep } from './index.js';
import { presentNics, restoredNicNames } from './network.js';
import { mountRoot, unmountRoot } from './root.js';
import { buildDeb, inChroot, withFixtureCopy, withFixtureRoot } from './test-fixture.js';

// The real thing: a Debian bookworm disk image (test/fixtures/debian-source.sh) on a loop device, its own
// update-initramfs, grub-install and dpkg run in a chroot. Needs root and loop devices.
const asRoot = process.getuid?.() === 0;
const skip = asRoot ? false : 'needs root and loop devices';

const byName = (steps: CompatStep[]) => new Map(steps.map((s) => [s.name, s]));
const notMounted = (dir: string) => !readFileSync('/proc/mounts', 'utf8').includes(dir);

test('runCompatibility makes the Debian source fixture bootable on virtio: drivers, UUIDs, GRUB, DHCP', { skip, timeout: 15 * 60_000 }, async () => {
  const packages = await mkdtemp(path.join(os.tmpdir(), 'ferry-packages-'));
  try {
    await withFixtureCopy(async (dev) => {
      const reported: CompatStep[] = [];
      const steps = await runCompatibility({ targets: [dev], firmware: 'bios', packagesDir: packages, nics: ['enp1s0'], report: (s) => reported.push(s) });
      assert.deepEqual(reported, steps, 'every step is reported as it ends');
      const s = byName(steps);
      const failures = steps.filter((st) => st.status === 'failed');
      assert.deepEqual(failures, [], 'no step failed');
      assert.deepEqual(
        steps.map((st) => st.name),
        ['root', 'distribution', 'fstab', 'crypttab', 'boot-config', 'guest-tools', 'guest-agent', 'initramfs', 'network', 'bootloader', 'unmount'],
      );
      assert.match(s.get('distribution')!.detail, /Debian GNU\/Linux 12.*initramfs: initramfs-tools/);
      assert.equal(s.get('crypttab')!.status, 'skipped');
      assert.equal(s.get('guest-tools')!.status, 'skipped');
      assert.equal(s.get('guest-agent')!.status, 'skipped', 'no debian-12 folder in packagesDir');
      assert.ok(notMounted('ferry-root-'), 'everything is unmounted');

      const uuid = (await runCommand('blkid', ['-p', '-s', 'UUID', '-o', 'value', `${dev}p1`])).stdout.trim();
      const swapUuid = (await runCommand('blkid', ['-p', '-s', 'UUID', '-o', 'value', `${dev}p2`])).stdout.trim();
      await withFixtureRoot(dev, async (root) => {
        const fstab = await readFile(`${root}/etc/fstab`, 'utf8');
        assert.match(fstab, new RegExp(`^UUID=${uuid}\\s+/\\s+ext4`, 'm'));
        assert.match(fstab, new RegExp(`^UUID=${swapUuid}\\s+none\\s+swap`, 'm'));
        assert.doesNotMatch(fstab, /\/dev\/sd/);
        assert.match(await readFile(`${root}/etc/fstab.ferry-backup`, 'utf8'), /^\/dev\/sda1\s/m, 'the original fstab is kept');

        const grubDefaults = await readFile(`${root}/etc/default/grub`, 'utf8');
        assert.match(grubDefaults, new RegExp(`resume=UUID=${swapUuid}`));
        assert.match(grubDefaults, /^GRUB_DISABLE_LINUX_UUID=false$/m);
        assert.match(await readFile(`${root}/etc/initramfs-tools/conf.d/resume`, 'utf8'), new RegExp(`^RESUME=UUID=${swapUuid}$`, 'm'));

        const grubCfg = await readFile(`${root}/boot/grub/grub.cfg`, 'utf8');
        const roots = [...grubCfg.matchAll(/^\s*linux\s.*\sroot=(\S+)/gm)].map((m) => m[1]);
        assert.ok(roots.length > 0);
        for (const r of roots) assert.equal(r, `UUID=${uuid}`);
        assert.doesNotMatch(grubCfg, /\/dev\/loop/);

        const kernels = (await inChroot(root, 'ls', ['/lib/modules'])).trim().split('\n');
        for (const k of kernels) {
          assert.ok(existsSync(`${root}/boot/initrd.img-${k}.ferry-backup`), 'the previous initramfs is kept');
          const files = await inChroot(root, 'lsinitramfs', [`/boot/initrd.img-${k}`]);
          for (const m of ['virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_pci']) assert.match(files, new RegExp(`/${m}\\.ko`), `${m} in the initramfs`);
          const before = await inChroot(root, 'lsinitramfs', [`/boot/initrd.img-${k}.ferry-backup`]);
          assert.doesNotMatch(before, /virtio_blk/);
        }

        const interfaces = await readFile(`${root}/etc/network/interfaces`, 'utf8');
        assert.match(interfaces, /^allow-hotplug enp1s0\niface enp1s0 inet dhcp$/m);
        assert.doesNotMatch(interfaces, /^\s*(auto|allow-hotplug|iface)\s+ens3/m);
        assert.match(interfaces, /iface lo inet loopback/);
        assert.match(await readFile(`${root}/etc/network/interfaces.ferry-backup`, 'utf8'), /iface ens3 inet static/);
      });

      // A second run on the same disk: the old hypervisor's tools go, our agent comes from the ISO's folder,
      // and what is already right stays as it is (the backups keep the originals).
      await withFixtureRoot(dev, async (root) => {
        const deb = path.join(root, 'tmp/open-vm-tools.deb');
        await buildDeb(deb, { Package: 'open-vm-tools', Version: '2:12.2.0-1' });
        await inChroot(root, 'dpkg', ['-i', '/tmp/open-vm-tools.deb']);
        await rm(deb);
      });
      await mkdir(path.join(packages, 'debian-12'));
      const unit = '[Unit]\nDescription=Ferry test guest agent\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n';
      await buildDeb(path.join(packages, 'debian-12', 'ferry-test-agent_1.0_all.deb'), { Package: 'ferry-test-agent' }, { 'lib/systemd/system/ferry-test-agent.service': unit });
      const again = byName(await runCompatibility({ targets: [dev], firmware: 'bios', packagesDir: packages, nics: ['enp1s0'], report: () => undefined }));
      assert.equal(again.get('guest-tools')!.status, 'ok');
      assert.match(again.get('guest-tools')!.detail, /removed open-vm-tools/);
      assert.equal(again.get('guest-agent')!.status, 'ok', again.get('guest-agent')!.detail);
      assert.match(again.get('guest-agent')!.detail, /ferry-test-agent\.service \(multi-user\.target\)/);
      assert.equal(again.get('fstab')!.status, 'skipped');
      assert.equal(again.get('network')!.status, 'skipped');
      assert.equal(again.get('bootloader')!.status, 'ok');
      await withFixtureRoot(dev, async (root) => {
        assert.equal(await inChroot(root, 'readlink', ['/etc/systemd/system/multi-user.target.wants/ferry-test-agent.service']), '/lib/systemd/system/ferry-test-agent.service\n');
        assert.equal(existsSync(`${root}/var/lib/dpkg/info/open-vm-tools.list`), false, 'open-vm-tools purged');
        assert.match(await readFile(`${root}/etc/fstab.ferry-backup`, 'utf8'), /^\/dev\/sda1\s/m, 'the backup still holds the original');
        assert.equal(existsSync(`${root}/usr/sbin/policy-rc.d`), false, 'no policy-rc.d left behind');
      });
    });
  } finally {
    await rm(packages, { recursive: true, force: true });
  }
});

test("restoredNicNames names this machine's eth NICs as the restored system's udev will", { skip, timeout: 10 * 60_000 }, async (t) => {
  const kernelNames = (await presentNics()).filter((n) => /^eth\d+$/.test(n));
  if (kernelNames.length === 0) return t.skip('this machine has no ethN NIC with a device behind it');
  await withFixtureCopy(async (dev) => {
    const m = await mountRoot([dev], runCommand);
    try {
      const ctx = { root: m.root, run: runCommand, devices: m.devices, options: { targets: [dev], firmware: 'bios' as const, packagesDir: '/x', report: () => undefined } };
      const r = await restoredNicNames(ctx, kernelNames);
      assert.equal(r.names.length, kernelNames.length);
      for (const n of r.names) assert.match(n, /^en[ops]/, `${n} is a predictable name (the fixture's udev computed it from sysfs)`);
    } finally {
      await unmountRoot(m, runCommand);
    }
  });
});

test('on UEFI firmware a source without an EFI system partition fails the bootloader step and says why', { skip, timeout: 10 * 60_000 }, async () => {
  await withFixtureCopy(async (dev) => {
    const steps = byName(await runCompatibility({ targets: [dev], firmware: 'uefi', packagesDir: '/nonexistent', nics: [], report: () => undefined }));
    assert.equal(steps.get('bootloader')!.status, 'failed');
    assert.match(steps.get('bootloader')!.detail, /no EFI system partition is mounted at \/boot\/efi/);
    assert.equal(steps.get('initramfs')!.status, 'ok', 'the other steps still ran');
    assert.equal(steps.get('unmount')!.status, 'ok');
    assert.ok(notMounted('ferry-root-'));
  });
});
