import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCompatibility, type CompatStep } from '../../restore-pe/src/compat/index.js';
import { ensureDebianSource, type SourceVariant } from '../fixtures/debian-source.js';
import { sh } from '../lib/cli.js';
import { attach, detach, withMounted } from '../lib/disk-image.js';
import { startVm } from '../lib/qemu.js';

// Real VMs (QEMU, software emulation): the source fixture is a Debian that boots from IDE only, like a
// server of the old hypervisor. On a shared 2-core machine a boot takes one to three minutes.
const BOOT_TIMEOUT_MS = 6 * 60_000;
const MARKER = /FERRY-BOOT-MARKER: (.*?)\r?\n/;
const GAVE_UP = /Gave up waiting for root file system device|ALERT! \S+ does not exist/;

// The fixture is built on first use (a few minutes), so the builds count in the tests' time.
const BUILD_TIMEOUT_MS = 15 * 60_000;

// The two properties the migration proof rests on, for the plain MBR layout and for Debian's guided LVM
// layout (root on a logical volume, activated by the initramfs's lvm2).
for (const [variant, label] of [
  ['bios', 'the source fixture'],
  ['lvm', 'the LVM source fixture'],
] as [SourceVariant, string][]) {
  test(`${label} boots from an IDE disk and prints its boot marker`, { timeout: BUILD_TIMEOUT_MS + BOOT_TIMEOUT_MS + 60_000 }, async () => {
    const image = await ensureDebianSource(variant);
    const vm = await startVm({ disks: [{ file: image, interface: 'ide', snapshot: true }] });
    try {
      const m = await vm.waitFor(MARKER, BOOT_TIMEOUT_MS);
      assert.equal(m[1], 'none');
    } finally {
      await vm.kill();
    }
  });

  test(`${label} does not boot from a virtio disk: its initramfs has no virtio driver`, { timeout: BUILD_TIMEOUT_MS + BOOT_TIMEOUT_MS + 60_000 }, async () => {
    const image = await ensureDebianSource(variant);
    const vm = await startVm({ disks: [{ file: image, interface: 'virtio', snapshot: true }] });
    try {
      await vm.waitFor(GAVE_UP, BOOT_TIMEOUT_MS);
      assert.doesNotMatch(vm.output(), /FERRY-BOOT-MARKER/);
    } finally {
      await vm.kill();
    }
  });
}

// On this machine's kernel there may be no device-mapper, so compatibility processing of the LVM variant
// (which activates its volume group) runs only on the restore ISO: test/e2e/migration.test.ts.
test('after compatibility processing a copy of the fixture boots from a virtio disk', { timeout: BUILD_TIMEOUT_MS + BOOT_TIMEOUT_MS + 5 * 60_000 }, async () => {
  const image = await ensureDebianSource();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-e2e-compat-'));
  try {
    const copy = path.join(dir, 'migrated.img');
    await sh('cp', ['--sparse=always', image, copy]);
    // The marker proves that the VM below boots this copy, not some other disk.
    await withMounted(copy, 1, (root) => writeFile(`${root}/etc/ferry-marker`, 'migrated\n'));
    const dev = await attach(copy, 2);
    let steps: CompatStep[];
    try {
      // The VM has no NIC: the old ens3 configuration goes and nothing replaces it.
      steps = await runCompatibility({ targets: [dev], firmware: 'bios', packagesDir: dir, nics: [], report: () => undefined });
    } finally {
      await detach(dev);
    }
    assert.deepEqual(steps.filter((s) => s.status === 'failed'), []);

    const vm = await startVm({ disks: [{ file: copy, interface: 'virtio' }], serialLog: path.join(dir, 'serial.log') });
    try {
      const m = await vm.waitFor(MARKER, BOOT_TIMEOUT_MS);
      assert.equal(m[1], 'migrated');
      assert.doesNotMatch(vm.output(), GAVE_UP);
    } finally {
      await vm.kill();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
