import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../lib/cli.js';
import { ensureIso, isoKernelInitrd } from '../lib/iso.js';
import { startVm, type VmOptions } from '../lib/qemu.js';

// The restore ISO on real firmware under QEMU (software emulation): firmware → GRUB → kernel → initrd →
// squashfs root → ferry-init → `ferry-restore boot`. No ferry.* options: the wizard starts and asks. Each VM
// has one virtio NIC alone on a QEMU hub (its link is up; nothing it sends leaves QEMU), which the wizard
// must find, load the driver for, bring up and list with its link state before asking which NIC to use.
// A boot takes 20–40 s alone, minutes on a busy 2-core machine.
const BOOT_TIMEOUT_MS = 5 * 60_000;

/** ferry-init's first line on every console; then build, kernel, firmware and RAM. */
const BANNER = /Ferry restore environment (\S+)\r?\n[^\n]*kernel \S+, (BIOS|UEFI),/;
/** ferry-init's last line before it runs `ferry-restore boot`. */
const WIZARD_STARTED = /ferry-init: starting ferry-restore boot/;
/**
 * The wizard's first step (restore-pe/src/boot/boot.ts): the NIC list, each with driver and link state, then
 * the question which to use, offering the one whose link is up.
 */
const WIZARD_PROMPT = /== 1\. Network ==\r?\n\s+\[1\] (\S+)\s+driver virtio_net\s+link up\s+52:54:00:f3:44:01\r?\n[\s\S]*?Network interface \(number\) \[1\]: /;

const LOGS = path.join(ROOT, 'test/out/iso-boot');
let iso = '';
before(async () => {
  iso = await ensureIso();
  await mkdir(LOGS, { recursive: true });
});

/** Boots, waits for the banner and the wizard's first prompt, returns the firmware the banner names. */
async function bootToWizard(name: string, opts: VmOptions): Promise<string> {
  const vm = await startVm({ memoryMiB: 1024, nics: [{ model: 'virtio-net-pci', mac: '52:54:00:f3:44:01' }], ...opts, serialLog: path.join(LOGS, `${name}.serial.log`) });
  try {
    const banner = await vm.waitFor(BANNER, BOOT_TIMEOUT_MS);
    const started = await vm.waitFor(WIZARD_STARTED, 60_000);
    // The prompt must come from the wizard, after ferry-init started it.
    const prompt = await vm.waitFor(WIZARD_PROMPT, 2 * 60_000, started.index);
    assert.ok(started.index > banner.index);
    assert.doesNotMatch(vm.output().slice(started.index), /NETWORK_UNAVAILABLE|link unknown/, 'the NIC was found and its link read');
    assert.match(prompt[1]!, /^(ens|enp)\w+$/, 'the NIC has the name udev gives it (the one a restored system sees too)');
    return banner[2]!;
  } finally {
    await vm.kill();
  }
}

test('the ISO boots to the wizard under SeaBIOS (CD on IDE, BIOS El Torito, GRUB)', { timeout: BOOT_TIMEOUT_MS + 4 * 60_000 }, async () => {
  assert.equal(await bootToWizard('seabios', { cdrom: iso, firmware: 'bios', bootOrder: 'd' }), 'BIOS');
});

test('the ISO boots to the wizard under OVMF (UEFI; CD on AHCI, q35)', { timeout: BOOT_TIMEOUT_MS + 4 * 60_000 }, async () => {
  assert.equal(await bootToWizard('ovmf', { cdrom: iso, firmware: 'uefi', extraArgs: ['-machine', 'q35'] }), 'UEFI');
});

test("the ISO's kernel and initrd boot with -kernel/-initrd, the ISO attached as a CD", { timeout: BOOT_TIMEOUT_MS + 4 * 60_000 }, async () => {
  const { kernel, initrd } = await isoKernelInitrd(iso);
  assert.equal(await bootToWizard('direct-kernel', { cdrom: iso, kernel, initrd, append: 'console=ttyS0' }), 'BIOS');
});
