import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, formatBytes, type Point, type RestoreView } from '@ferry/protocol';
import { ROOT, sh } from '../lib/cli.js';
import { createPartitionedImage, treeChecksums, withMounted } from '../lib/disk-image.js';
import { ensureIso, isoKernelInitrd } from '../lib/iso.js';
import { enrollAndBackUp, startTestAppliance, type TestAppliance } from '../lib/jobs.js';
import { ip, linkedNamespace, type LinkedNamespace } from '../lib/netns.js';
import { startVm, type Vm } from '../lib/qemu.js';

/*
 * The restore ISO's wizard, driven as an engineer would: the test types every answer on the VM's serial
 * console (no ferry.auto). The appliance runs in this process and listens on the host end of a veth pair into
 * a network namespace the test creates; the VM's NIC is a tap device inside that namespace, on its own subnet,
 * and reaches the appliance through the namespace as its gateway (which the engineer types). Every address is
 * in 198.18.0.0/15, the range reserved for network tests.
 *
 * The backed-up disk is a small GPT image with an ext4 filesystem and no operating system: it is about the
 * wizard and the restore, not about making a system boot (migration.test.ts does that). Compatibility
 * processing would report its root step FAILED on it ("no Linux root filesystem ... found ...", unit-tested in
 * restore-pe/src/compat/runner-fake.test.ts) and then leave the VM at a shell, so these runs pass
 * ferry.compat=0, the documented switch for restoring without it; the wizard says it skipped the step.
 */

const MIN = 60_000;
const LOGS = path.join(ROOT, 'test/out/wizard');
/** The VM's subnet behind the namespace (its gateway is the tap's address); not used by any other test. */
const TAP = 'fwiz0';
const GATEWAY = '198.18.220.1';
const VM_IP = '198.18.220.2';
const SUBNET = '198.18.220.0/24';
const SOURCE_MIB = 32;
const BOOT_MS = 6 * MIN;
const STEP_MS = 2 * MIN;

/**
 * A conversation with the wizard on the serial console: each expectation is searched for after the previous
 * one, so a question asked twice is answered twice, and what the terminal echoes is never taken for output.
 */
class Dialogue {
  #cursor = 0;
  constructor(readonly vm: Vm) {}

  async expect(pattern: RegExp, timeoutMs = STEP_MS): Promise<RegExpExecArray> {
    const m = await this.vm.waitFor(pattern, timeoutMs, this.#cursor);
    this.#cursor = m.index + m[0].length;
    return m;
  }

  /** Waits for the question, then types the answer and Enter (a terminal sends CR). */
  async answer(question: RegExp, text: string, timeoutMs = STEP_MS): Promise<void> {
    await this.expect(question, timeoutMs);
    this.vm.type(`${text}\r`);
  }

  /** What the console showed since the last expectation. */
  since(): string {
    return this.vm.output().slice(this.#cursor);
  }
}

/** Regular-expression source matching `s` literally. */
const lit = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('the restore wizard at the console: every answer typed, a refused fingerprint, zero target disks', { timeout: 40 * MIN }, () => {
  let work: string;
  let ns: LinkedNamespace | undefined;
  let t: TestAppliance | undefined;
  const vms: Vm[] = [];
  let iso = '';
  let kernel = '';
  let initrd = '';
  let source = '';
  let point: Point;
  /** The address the engineer types: the appliance's, with its port. */
  let applianceAddress = '';

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-wizard-'));
    await sh('mkdir', ['-p', LOGS]);
    iso = await ensureIso();
    ({ kernel, initrd } = await isoKernelInitrd(iso));

    ns = await linkedNamespace('wiz', 4);
    const inNs = (...args: string[]) => sh('ip', ['netns', 'exec', ns!.name, ...args]);
    await inNs('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap');
    await inNs('ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', TAP);
    await inNs('ip', 'link', 'set', TAP, 'up');
    // The namespace routes between the VM's subnet and the veth link to the host; the host route goes when
    // the veth pair does (ns.close()).
    await inNs('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
    await ip('route', 'add', SUBNET, 'via', ns.nsAddress, 'dev', ns.hostInterface);

    t = await startTestAppliance({ listen: `${ns.hostAddress}:0` });
    applianceAddress = new URL(t.server.url).host;

    // The backed-up disk: GPT, ext4 with a few files of random data, swap; no operating system.
    source = path.join(work, 'source.img');
    await createPartitionedImage(source, 'gpt', SOURCE_MIB, 20, 8);
    await withMounted(source, 1, async (dir) => {
      await writeFile(path.join(dir, 'marker.txt'), `wizard ${randomBytes(8).toString('hex')}\n`);
      await writeFile(path.join(dir, 'random-1.bin'), randomBytes(3 * 1024 * 1024));
      await writeFile(path.join(dir, 'random-2.bin'), randomBytes(777_777));
    });
    const pointId = await enrollAndBackUp(t, path.join(work, 'agent'), 'wizard-source', source);
    point = await t.admin.json<Point>(`${API_PREFIX}/points/${pointId}`);
    assert.equal(point.name, 'CYCLE_1');
  });

  after(async () => {
    for (const vm of vms) await vm.kill();
    await t?.close();
    await ns?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function restoreCode(targetDisks?: number): Promise<{ code: string; restore: RestoreView }> {
    return t!.admin.json(`${API_PREFIX}/restores/codes`, { method: 'POST', body: { pointId: point.id, ...(targetDisks ? { targetDisks } : {}) } });
  }
  const restoreView = (id: number): Promise<RestoreView> => t!.admin.json<RestoreView>(`${API_PREFIX}/restores/${id}`);

  async function blank(name: string, bytes: number): Promise<string> {
    const file = path.join(work, name);
    await writeFile(file, '');
    await truncate(file, bytes);
    return file;
  }

  test('a VM with no target disk at all is refused with a clear message; nothing is written', async () => {
    const { code, restore } = await restoreCode();
    const vm = await startVm({
      netns: ns!.name,
      kernel,
      initrd,
      cdrom: iso,
      append: `console=ttyS0,115200 quiet ferry.ip=${VM_IP}/24 ferry.gw=${GATEWAY} ferry.appliance=${applianceAddress} ferry.fingerprint=${t!.server.fingerprint} ferry.code=${code} ferry.auto=1 ferry.reboot=0`,
      nics: [{ tap: TAP }],
      memoryMiB: 1536,
      serialLog: path.join(LOGS, 'no-target-disk.log'),
    });
    vms.push(vm);
    try {
      await vm.waitFor(/FERRY-RESTORE-FAILED|FERRY-RESTORE-DONE/, BOOT_MS + STEP_MS);
      const out = vm.output();
      assert.match(out, /FERRY-RESTORE-FAILED/);
      assert.match(
        out,
        new RegExp(`!! this machine has no disk to restore onto \\(CD drives and the restore medium do not count\\); CYCLE_1 needs 1 disk\\(s\\) of at least ${lit(formatBytes(point.disks[0]!.size))}: add them to the VM; nothing was written\\r?\\n\\s+what to do: Give the VM exactly one disk per source disk, [^\\n]*\\(in the hypervisor\\)[^\\n]*\\r?\\n\\s+\\(error TARGET_COUNT_MISMATCH\\)`),
      );
      assert.equal(out.match(/\(error TARGET_COUNT_MISMATCH\)/g)?.length, 1, 'said once');
      assert.doesNotMatch(out, /== 5\. Restore ==/, 'the restore never started');
    } finally {
      await vm.kill();
    }
    // The appliance shows why, and that nothing was written.
    const view = await restoreView(restore.id);
    assert.equal(view.phase, 'failed');
    assert.equal(view.error?.code, 'TARGET_COUNT_MISMATCH');
    assert.equal(view.progress, null, 'no write progress was ever reported');
    assert.deepEqual(view.verified, []);
  });

  test('every answer typed: NIC, static address, gateway, DNS, appliance, fingerprint refused then confirmed, code, WRITE; the VM reboots and the disk equals the point', async () => {
    const { code, restore } = await restoreCode(1);
    const target = await blank('target.img', SOURCE_MIB * 1024 * 1024);
    const vm = await startVm({
      netns: ns!.name,
      kernel,
      initrd,
      cdrom: iso,
      // Only ferry.compat comes from the kernel command line; the wizard asks for everything else, and the run
      // ends as a field engineer's does: it reboots (the migration proof checks ferry.reboot=0's power-off).
      append: 'console=ttyS0,115200 quiet ferry.compat=0',
      disks: [{ file: target, interface: 'virtio' }],
      nics: [{ tap: TAP, mac: '52:54:00:f3:44:02' }],
      memoryMiB: 1536,
      serialInput: true,
      serialLog: path.join(LOGS, 'wizard.log'),
    });
    vms.push(vm);
    const d = new Dialogue(vm);

    // 1. Network: the NIC list with driver and link state; the one whose link is up is offered.
    await d.expect(/ferry-init: starting ferry-restore boot/, BOOT_MS);
    const nic = await d.expect(/== 1\. Network ==\r?\n\s+\[1\] (\S+)\s+driver virtio_net\s+link up\s+52:54:00:f3:44:02\r?\n/);
    // A wrong answer is said to be wrong, and the question comes again.
    await d.answer(/Network interface \(number\) \[1\]: /, '7');
    await d.expect(/!! choose a number from 1 to 1\r?\n/);
    await d.answer(/Network interface \(number\) \[1\]: /, '1');
    await d.answer(/Address by DHCP or static\? \(d\/s\) \[d\]: /, 's');
    await d.answer(/IP address\/prefix, e\.g\. 10\.20\.0\.15\/24: /, `${VM_IP}/24`);
    await d.answer(/Gateway \(empty for none\) \[\]: /, GATEWAY);
    await d.answer(/DNS servers, comma-separated \(empty for none\) \[\]: /, GATEWAY);
    await d.expect(new RegExp(`configuring ${lit(nic[1]!)} \\(${lit(VM_IP)}/24 via ${lit(GATEWAY)}\\) \\.\\.\\.\\r?\\n.*inet ${lit(VM_IP)}/24`));

    // 2. Appliance: its certificate is shown to compare; the first time the engineer says no.
    await d.answer(/== 2\. Appliance ==\r?\n[\s\S]*?Appliance address \(IP or host, optionally :port\): /, applianceAddress);
    const shown = await d.expect(/presents the certificate\r?\n\s+(SHA256:[0-9A-F:]+)\r?\n/);
    assert.equal(shown[1], t!.server.fingerprint, 'the wizard shows the fingerprint of the certificate the appliance presents');
    await d.answer(/Is it the same\? \(y\/n\) \[n\]: /, 'n');
    await d.expect(
      /Not trusted: nothing was sent to it\. Check the address and compare again; if the address is right and the\r?\n\s+fingerprints differ, someone may be intercepting the connection: do not go on until that is explained\.\r?\n/,
    );
    // Asked again from the address: nothing went to the appliance (the code was not even asked for) and
    // nothing was written.
    await d.answer(/Appliance address \(IP or host, optionally :port\): /, applianceAddress);
    assert.equal((await restoreView(restore.id)).phase, 'waiting', 'the restore code was not used');
    assert.equal((await stat(target)).blocks, 0, 'nothing was written to the target disk');
    await d.expect(new RegExp(`presents the certificate\\r?\\n\\s+${lit(t!.server.fingerprint)}\\r?\\n`));
    await d.answer(/Is it the same\? \(y\/n\) \[n\]: /, 'y');

    // 3. The restore code.
    await d.answer(/== 3\. Restore code ==\r?\n[\s\S]*?Restore code from the appliance UI \(XXXX-XXXX-XXXX-XXXX\): /, code);
    await d.expect(new RegExp(`restore ${restore.id}: CYCLE_1 of wizard-source, taken `));

    // 4. Source and target disks side by side, with sizes; nothing is written before WRITE.
    const size = formatBytes(point.disks[0]!.size);
    await d.expect(new RegExp(`== 4\\. Disks ==\\r?\\n\\s+source disk\\s+->\\s+target disk\\r?\\n\\s+${lit(point.disks[0]!.key)} ${lit(size)}\\s+->\\s+/dev/vda ${lit(size)}\\r?\\n`));
    await d.answer(/Type WRITE to erase and write the target disk\(s\) above: /, 'WRITE');

    // 5. The restore, then no compatibility processing (ferry.compat=0), then the reboot.
    await d.expect(/== 5\. Restore ==/);
    await d.expect(new RegExp(`${lit(point.disks[0]!.key)} -> /dev/vda: \\S+ \\S+ written, verified`), 10 * MIN);
    await d.expect(/\[skip\] compatibility: ferry\.compat=0: the restored disks are as the source left them/);
    await d.expect(/FERRY-RESTORE-DONE CYCLE_1\r?\n/);
    await d.expect(/Rebooting into the restored system\.\.\./);
    // The VM restarts: with -no-reboot QEMU exits then (a power-off exits it too; the kernel's last words tell
    // them apart).
    assert.equal(await vm.exited(3 * MIN), 0);
    assert.match(d.since(), /reboot: Restarting system/);
    assert.doesNotMatch(vm.output(), /FERRY-RESTORE-FAILED|\(error [A-Z_]+\)|could not report/, 'no refusal or failure on the way');

    // The target disk is the backed-up point, byte for byte (and file for file, for whoever reads a failure).
    const [want, got] = await Promise.all([readFile(source), readFile(target)]);
    if (!got.equals(want)) {
      const [a, b] = [await withMounted(source, 1, treeChecksums, true), await withMounted(target, 1, treeChecksums, true)];
      assert.deepEqual(Object.fromEntries(b), Object.fromEntries(a), 'files of the restored disk');
      assert.fail('the restored disk differs from the backed-up one outside its files');
    }

    // The appliance saw the whole restore.
    const view = await restoreView(restore.id);
    assert.equal(view.state, 'finished');
    assert.equal(view.phase, 'done');
    assert.deepEqual(
      view.steps.map((s) => [s.name, s.status]),
      [['compatibility', 'skipped']],
    );
  });
});
