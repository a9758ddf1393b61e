import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, type RestoreView } from '@ferry/protocol';
import { ROOT, sh, TEST_SCRYPT_N, testPassphraseFile } from '../lib/cli.js';
import { ensureIso, isoKernelInitrd } from '../lib/iso.js';
import { startVm, type Vm } from '../lib/qemu.js';
import { ensureDebianSource, LVM_ROOT_MAPPER, LVM_VG, variantFirmware, withSourceRoot, type SourceVariant } from '../fixtures/debian-source.js';

/*
 * The migration proof. A Debian bookworm source whose initramfs has only IDE/SATA drivers (it boots on IDE
 * and not on virtio) is backed up in full, changed (a marker file), backed up again; then the restore ISO,
 * booted unattended in QEMU on a blank virtio disk, restores the second point over the network from an
 * appliance in a network namespace, and makes it bootable; finally the restored virtio disk boots and prints
 * the marker. Network: a tap device inside a namespace this test creates, addresses from 198.18.0.0/15.
 */

const NS = `ferry-mig-${process.pid}`;
/** Serial consoles of the VMs, kept after the run for whoever reads a failure. */
const LOGS = path.join(ROOT, 'test/out/migration');
const TAP = 'ftap0';
const APPLIANCE_IP = '198.18.0.1';
const VM_IP = '198.18.0.2';
/** The target VM's NIC, the same in the ISO's run and in the restored system's boot (it is one machine). */
const VM_MAC = '52:54:00:18:00:02';
/** What udhcpd in the namespace leases to the restored system. */
const DHCP_START = '198.18.0.100';
const DHCP_END = '198.18.0.199';
const MIN = 60_000;

function inNs(args: string[]): string[] {
  return ['netns', 'exec', NS, ...args];
}

/** Runs a Ferry program inside the namespace and returns its stdout; fails with its output otherwise. */
async function ferryNs(program: 'appliance' | 'agent', args: string[]): Promise<string> {
  const bin = path.join(ROOT, program === 'appliance' ? 'appliance/bin/ferry-appliance.js' : 'agent/bin/ferry-agent.js');
  return sh('ip', inNs([process.execPath, bin, ...args]));
}

/** The byte offset of partition `n` of an image (sfdisk's dump), for mtools' IMAGE@@OFFSET. */
async function partitionOffset(image: string, n: number): Promise<number> {
  const table = JSON.parse(await sh('sfdisk', ['-J', image])) as { partitiontable: { sectorsize?: number; partitions: { node: string; start: number }[] } };
  const p = table.partitiontable.partitions.find((x) => x.node.endsWith(String(n)));
  if (!p) throw new Error(`${image} has no partition ${n}`);
  return p.start * (table.partitiontable.sectorsize ?? 512);
}

/** Every file on the FAT filesystem at `offset` of the image, as paths (mtools; the host kernel has no vfat). */
async function fatFiles(image: string, offset: number): Promise<string[]> {
  const out = await sh('env', ['MTOOLS_SKIP_CHECK=1', 'mdir', '-/', '-b', '-i', `${image}@@${offset}`, '::/']);
  return out
    .split('\n')
    .map((l) => l.trim().replace(/^::/, ''))
    .filter((l) => l !== '' && !l.endsWith('/'));
}

/**
 * busybox udhcpd on the tap device in the namespace: the DHCP server of the network the restored VM boots on.
 * `leases()` has it write its lease file (SIGUSR1) and reads that with dumpleases; `stop()` ends it.
 */
async function startDhcpServer(dir: string): Promise<{ child: ChildProcess; leases(): Promise<string>; stop(): Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const leaseFile = path.join(dir, 'udhcpd.leases');
  const conf = path.join(dir, 'udhcpd.conf');
  await writeFile(
    conf,
    [`interface ${TAP}`, `start ${DHCP_START}`, `end ${DHCP_END}`, 'max_leases 100', `lease_file ${leaseFile}`, `pidfile ${path.join(dir, 'udhcpd.pid')}`, 'opt subnet 255.255.255.0', `opt router ${APPLIANCE_IP}`, 'opt lease 3600', ''].join('\n'),
  );
  // `ip netns exec` execs the program: the child is udhcpd itself, so signals reach it.
  const child = spawn('ip', inNs(['busybox', 'udhcpd', '-f', conf]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const gone = () => (child.exitCode !== null || child.signalCode !== null ? new Error(`udhcpd exited (${child.exitCode ?? child.signalCode}):\n${out}`) : undefined);
  for (let i = 0; i < 100 && !out.includes('started'); i++) {
    const e = gone();
    if (e) throw e;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!out.includes('started')) throw new Error(`udhcpd did not start in 10 s:\n${out}`);
  return {
    child,
    async leases() {
      const e = gone();
      if (e) throw e;
      // udhcpd writes the file when it gets to the signal (it may be busy for seconds, e.g. ARP-pinging an
      // address before offering it) and says so on stderr first.
      const signalled = () => out.split('received SIGUSR1').length;
      const before = signalled();
      child.kill('SIGUSR1');
      for (let i = 0; i < 150 && signalled() === before && !gone(); i++) await new Promise((r) => setTimeout(r, 100));
      if (signalled() === before) throw gone() ?? new Error(`udhcpd did not write its lease file in 15 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 300));
      return sh('busybox', ['dumpleases', '-f', leaseFile]);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The address in dumpleases output leased to `mac`, if any. */
function leasedAddress(dump: string, mac: string): string | undefined {
  return dump
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[0]?.toLowerCase() === mac.toLowerCase())?.[1];
}

function startApplianceInNs(dataDir: string): Promise<{ child: ChildProcess; fingerprint: string }> {
  // Encrypted like every test appliance: initialised (first start) or unlocked with the test passphrase.
  const serve = ['serve', '--data', dataDir, '--listen', `${APPLIANCE_IP}:8443`, '--log-level', 'warn', '--passphrase-file', testPassphraseFile()];
  const child = spawn('ip', inNs([process.execPath, path.join(ROOT, 'appliance/bin/ferry-appliance.js'), ...serve]), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FERRY_TEST_SCRYPT_N: String(TEST_SCRYPT_N) },
  });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`appliance did not start:\n${out}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const f = /Certificate fingerprint: (SHA256:\S+)/.exec(out);
      if (f && out.includes('listening on')) {
        clearTimeout(timer);
        resolve({ child, fingerprint: f[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`appliance exited ${code}:\n${out}`));
    });
  });
}

describe('migration proof: a source that cannot boot on virtio is restored by the ISO and boots on virtio', { timeout: 60 * MIN }, () => {
  let work: string;
  let appliance: ChildProcess | undefined;
  const vms: Vm[] = [];
  /** DHCP servers in the namespace, stopped in after() should a test fail before it stops its own. */
  const dhcpServers: { stop(): Promise<void> }[] = [];
  /** What the refusal test reuses from the migration: the appliance, its fingerprint, a point and the ISO. */
  let ctx: { fingerprint: string; dataDir: string; pointId: number; sourceSize: number; kernel: string; initrd: string; iso: string } | undefined;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-migration-'));
    await mkdir(LOGS, { recursive: true });
    await sh('ip', ['netns', 'add', NS]);
    await sh('ip', inNs(['ip', 'link', 'set', 'lo', 'up']));
    await sh('ip', inNs(['ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap']));
    await sh('ip', inNs(['ip', 'addr', 'add', `${APPLIANCE_IP}/24`, 'dev', TAP]));
    await sh('ip', inNs(['ip', 'link', 'set', TAP, 'up']));
  });

  after(async () => {
    for (const vm of vms) await vm.kill();
    for (const d of dhcpServers) await d.stop();
    if (appliance && appliance.exitCode === null) {
      const exited = new Promise((r) => appliance!.once('exit', r));
      appliance.kill('SIGTERM');
      await exited;
    }
    await sh('ip', ['netns', 'del', NS]).catch(() => '');
    await rm(work, { recursive: true, force: true });
  });

  /** The appliance in the namespace, started by the first test that needs it. */
  let shared: { dataDir: string; fingerprint: string } | undefined;
  let adminToken: string | undefined;

  /**
   * GET of an admin API path on the appliance in the namespace, which this process cannot reach: a small
   * program in the namespace does the request with the pinned certificate.
   */
  async function applianceGet<T>(apiPath: string): Promise<T> {
    const { dataDir, fingerprint } = await applianceInNs();
    adminToken ??= (await ferryNs('appliance', ['token', 'create', '--data', dataDir, '--name', 'migration-test'])).trim();
    const program = [
      "import { ApplianceClient } from '@ferry/protocol';",
      'const [url, fingerprint, token, p] = process.argv.slice(1);',
      'const client = new ApplianceClient(url, fingerprint, token);',
      'try { process.stdout.write(JSON.stringify(await client.json(p))); } finally { client.close(); }',
    ].join('\n');
    const out = await sh('ip', inNs([process.execPath, '--input-type=module', '-e', program, `https://${APPLIANCE_IP}:8443`, fingerprint, adminToken, apiPath]));
    return JSON.parse(out) as T;
  }
  async function applianceInNs(): Promise<{ dataDir: string; fingerprint: string }> {
    if (!shared) {
      const dataDir = path.join(work, 'appliance');
      const started = await startApplianceInNs(dataDir);
      appliance = started.child;
      shared = { dataDir, fingerprint: started.fingerprint };
    }
    return shared;
  }

  /**
   * The migration of one source variant. UEFI: the source is GPT with an EFI system partition and GRUB at the
   * removable path, every VM boots OVMF, and the ISO must reinstall GRUB for UEFI on the restored disk. LVM:
   * the root is a logical volume (Debian's guided LVM layout), which the ISO must activate and mount.
   */
  async function migrate(variant: SourceVariant): Promise<void> {
    const firmware = variantFirmware(variant);
    const [fixture, iso] = await Promise.all([ensureDebianSource(variant), ensureIso()]);
    const { kernel, initrd } = await isoKernelInitrd(iso);
    const source = path.join(work, `source-${variant}.img`);
    await sh('cp', ['--sparse=always', fixture, source]);

    // The fixture boots on IDE (and, its own test shows, not on virtio).
    const ide = await startVm({ firmware, disks: [{ file: source, interface: 'ide', snapshot: true }], serialLog: path.join(LOGS, `${variant}-source-ide.log`) });
    vms.push(ide);
    await ide.waitFor(/FERRY-BOOT-MARKER: none/, 5 * MIN);
    await ide.kill();

    const { dataDir, fingerprint } = await applianceInNs();
    const url = `https://${APPLIANCE_IP}:8443`;
    const state = path.join(work, `agent-${variant}`);
    const enroll = (await ferryNs('appliance', ['enroll-token', '--data', dataDir])).trim();
    await ferryNs('agent', ['enroll', '--appliance', url, '--fingerprint', fingerprint, '--token', enroll, '--state', state, '--name', `debian-${variant}`]);
    await ferryNs('agent', ['backup', '--state', state, '--disk', source, '--json']);
    const marker = `second-point-${variant}-${randomBytes(6).toString('hex')}`;
    await withSourceRoot(source, variant, async (dir) => {
      await writeFile(path.join(dir, 'etc/ferry-marker'), `${marker}\n`);
    });
    if (firmware === 'uefi') {
      // The fixture's ESP has GRUB at the fallback path already, so the restored disk would boot even if the
      // ISO put nothing there. Take it out of the second point (of this working copy, not the cached
      // fixture): the restored disk boots only if compatibility processing installs a loader there. No other
      // loader stays on the ESP, and a new VM's firmware has no boot entries to find one by.
      const esp = await partitionOffset(source, 1);
      await sh('env', ['MTOOLS_SKIP_CHECK=1', 'mdel', '-i', `${source}@@${esp}`, '::/EFI/BOOT/BOOTX64.EFI']);
      const left = await fatFiles(source, esp);
      assert.deepEqual(
        left.filter((f) => /\.efi$/i.test(f)),
        [],
        `no EFI program is left on the source's ESP: ${left.join(', ')}`,
      );
    }
    const second = JSON.parse(await ferryNs('agent', ['backup', '--state', state, '--disk', source, '--json'])) as { point: { id: number; name: string } };
    assert.equal(second.point.name, 'CYCLE_2');
    const code = (await ferryNs('appliance', ['restore-code', '--data', dataDir, '--point', String(second.point.id), '--target-disks', '1'])).trim();
    ctx ??= { fingerprint, dataDir, pointId: second.point.id, sourceSize: (await stat(source)).size, kernel, initrd, iso };

    const target = path.join(work, `target-${variant}.img`);
    await writeFile(target, '');
    await truncate(target, (await stat(source)).size);
    const log = path.join(LOGS, `${variant}-restore-iso.log`);
    const restoreVm = await startVm({
      firmware,
      netns: NS,
      kernel,
      initrd,
      cdrom: iso,
      append: `console=ttyS0,115200 ferry.ip=${VM_IP}/24 ferry.appliance=${APPLIANCE_IP} ferry.fingerprint=${fingerprint} ferry.code=${code} ferry.auto=1 ferry.reboot=0`,
      disks: [{ file: target, interface: 'virtio' }],
      nics: [{ tap: TAP, model: 'virtio-net-pci', mac: VM_MAC }],
      memoryMiB: 1536,
      serialLog: log,
      // OVMF on the default i440FX machine does not show the guest an IDE CD; on q35 the CD sits on AHCI.
      ...(firmware === 'uefi' ? { extraArgs: ['-machine', 'q35'] } : {}),
    });
    vms.push(restoreVm);
    await restoreVm.waitFor(/FERRY-RESTORE-DONE CYCLE_2|FERRY-RESTORE-FAILED/, 40 * MIN);
    const out = restoreVm.output();
    const steps = out.split('\n').filter((l) => /\[( ok |skip|FAIL)\]|!!|what to do/.test(l)).join('\n');
    assert.doesNotMatch(out, /FERRY-RESTORE-FAILED/, `${steps}\n(serial log: ${log})`);
    assert.doesNotMatch(out, /\[FAIL\]/, `every compatibility step succeeded or was skipped:\n${steps}`);
    for (const step of ['root', 'fstab', 'initramfs', 'guest-agent', 'bootloader']) assert.match(out, new RegExp(`\\[ ok \\] ${step}:`), `step ${step} reported ok:\n${steps}`);
    assert.match(out, /\[ ok \] guest-agent: installed .*qemu-guest-agent from \/ferry\/packages\/debian-12/, `the guest agent came from the ISO:\n${steps}`);
    if (firmware === 'uefi') {
      assert.match(out, /\[ ok \] bootloader: grub-install --target=x86_64-efi .*--removable/, `GRUB was reinstalled for UEFI at the fallback path:\n${steps}`);
    }
    // The fixture's /etc/network/interfaces configures ens3 statically. On the default (i440FX) machine the
    // NIC is in PCI slot 3, which udev names ens3: the old name is still there and the configuration stays.
    // UEFI runs on q35, where the NIC is enp0s2: ens3 no longer exists, so enp0s2 gets DHCP.
    const newNic = firmware === 'uefi' ? 'enp0s2' : 'ens3';
    if (firmware === 'uefi') {
      assert.match(out, /\[ ok \] network: ifupdown: dropped ens3, DHCP on enp0s2 \(original: \/etc\/network\/interfaces\.ferry-backup\)/, `the network step moved ens3's configuration to DHCP on enp0s2:\n${steps}`);
    } else {
      assert.match(out, /\[skip\] network: every NIC named in \/etc\/network\/interfaces.* is present \(ens3\)/, `the network step kept the configuration of ens3, a NIC this VM has:\n${steps}`);
    }
    if (variant === 'lvm') {
      assert.match(out, new RegExp(`\\[ ok \\] root: \\S*${LVM_VG}\\S*root \\(ext4\\).*/boot from /dev/vda1`), `the root was found on the logical volume, /boot on its partition:\n${steps}`);
      assert.match(out, new RegExp(`\\[ ok \\] bootloader: .*root=${LVM_ROOT_MAPPER}`), `GRUB boots the root by its LVM name:\n${steps}`);
      assert.match(out, new RegExp(`\\[ ok \\] unmount: .*deactivated ${LVM_VG}`), `the volume group was deactivated before the reboot:\n${steps}`);
    }
    // ferry.reboot=0: once everything is written and reported, the ISO powers the VM off by itself.
    assert.equal(await restoreVm.exited(3 * MIN), 0, 'the restore VM powered itself off');
    assert.match(restoreVm.output(), /Powering off \(ferry\.reboot=0\)\.[\s\S]*reboot: Power down/);
    await restoreVm.kill();

    // The appliance has the restore as the console showed it: done, with every compatibility step and its result.
    const restoreId = /restore (\d+): CYCLE_2 of /.exec(out)?.[1];
    assert.ok(restoreId, 'the console names the restore');
    const view = await applianceGet<RestoreView>(`${API_PREFIX}/restores/${restoreId}`);
    assert.equal(view.phase, 'done', JSON.stringify(view, null, 1));
    assert.equal(view.state, 'finished');
    assert.equal(view.pointName, 'CYCLE_2');
    const shown = [...out.matchAll(/\[( ok |skip|FAIL)\] ([\w-]+): /g)].map((m) => [m[2]!, m[1] === ' ok ' ? 'ok' : m[1] === 'skip' ? 'skipped' : 'failed']);
    assert.deepEqual(
      view.steps.map((st) => [st.name, st.status]),
      shown,
      'the appliance recorded the steps the console showed, in order',
    );
    assert.ok(
      view.steps.some((st) => st.name === 'guest-agent' && st.status === 'ok'),
      'guest-agent ok on the appliance',
    );
    if (firmware === 'uefi') {
      const files = await fatFiles(target, await partitionOffset(target, 1));
      assert.ok(files.includes('/EFI/BOOT/BOOTX64.EFI'), `compatibility processing put a loader at the fallback path: ${files.join(', ')}`);
    }

    // The restored disk boots on the machine the ISO ran on (the ISO's VM is gone, so its tap is free): the
    // same disk, the same NIC (model, PCI slot, MAC) on the same tap, and a DHCP server on that network.
    const dhcp = await startDhcpServer(path.join(work, `dhcp-${variant}`));
    dhcpServers.push(dhcp);
    let restored: Vm | undefined;
    try {
      const restoredLog = path.join(LOGS, `${variant}-restored-virtio.log`);
      restored = await startVm({
        firmware,
        netns: NS,
        disks: [{ file: target, interface: 'virtio' }],
        nics: [{ tap: TAP, model: 'virtio-net-pci', mac: VM_MAC }],
        serialLog: restoredLog,
        ...(firmware === 'uefi' ? { extraArgs: ['-machine', 'q35'] } : {}),
      });
      vms.push(restored);
      await restored.waitFor(new RegExp(`FERRY-BOOT-MARKER: ${marker}`), 5 * MIN);
      // ifupdown's allow-hotplug: udev starts ifup@NIC for the NIC under the name the restored system gave it.
      await restored.waitFor(new RegExp(`(Started|Finished) .*ifup@${newNic}\\.service`), 3 * MIN);
      if (firmware === 'uefi') {
        // The restored system asked for an address on enp0s2 and got one: a lease for this VM's MAC.
        let address: string | undefined;
        let dump = '';
        for (let i = 0; i < 120 && address === undefined; i++) {
          dump = await dhcp.leases();
          address = leasedAddress(dump, VM_MAC);
          if (address === undefined) await new Promise((r) => setTimeout(r, 1000));
        }
        assert.ok(address, `udhcpd leased an address to ${VM_MAC} (serial log: ${restoredLog}):\n${dump}`);
        // Both ways: the namespace reaches the restored system at the leased address.
        await sh('ip', inNs(['busybox', 'ping', '-c', '1', '-W', '5', address]));
      } else {
        assert.doesNotMatch(restored.output(), new RegExp(`ifup@${newNic}\\.service.*FAILED|Failed to start .*ifup@${newNic}`), `ifup ${newNic} succeeded (serial log: ${restoredLog})`);
        assert.equal(leasedAddress(await dhcp.leases(), VM_MAC), undefined, 'the static configuration of ens3 was kept: no DHCP');
      }
    } finally {
      // The tap is the next VM's: this one goes before the next case starts.
      await restored?.kill();
      await dhcp.stop();
    }
  }

  test('BIOS: restore the incremental point with the ISO onto a virtio disk, then boot it', () => migrate('bios'));

  test('UEFI: restore the incremental point with the ISO onto a virtio disk, then boot it (GRUB at the fallback path)', () => migrate('uefi'));

  test('LVM: restore a root on a logical volume (Debian guided LVM: /boot partition, root and swap LVs) with the ISO onto a virtio disk, then boot it', () => migrate('lvm'));

  test('at the console, a wrong code, a wrong fingerprint, a different number of disks and a smaller disk are refused; nothing is written', async () => {
    assert.ok(ctx, 'the migration test ran first and left its appliance and point');
    const c = ctx;
    const code = (await ferryNs('appliance', ['restore-code', '--data', c.dataDir, '--point', String(c.pointId)])).trim();
    const blank = async (name: string, size: number): Promise<string> => {
      const file = path.join(work, name);
      await writeFile(file, '');
      await truncate(file, size);
      return file;
    };
    const cases: { name: string; options: string; disks: number[]; expect: RegExp }[] = [
      { name: 'wrong code', options: `ferry.fingerprint=${c.fingerprint} ferry.code=ZZZZ-ZZZZ-ZZZZ-ZZZZ`, disks: [c.sourceSize], expect: /is not one this appliance issued[\s\S]*what to do: Check the restore code[\s\S]*RESTORE_CODE_INVALID/ },
      { name: 'wrong fingerprint', options: `ferry.fingerprint=SHA256:${'00:'.repeat(31)}00 ferry.code=${code}`, disks: [c.sourceSize], expect: /presented SHA256:[0-9A-F:]+, but SHA256:00:00[\s\S]*FINGERPRINT_MISMATCH/ },
      { name: 'two disks', options: `ferry.fingerprint=${c.fingerprint} ferry.code=${code}`, disks: [c.sourceSize, c.sourceSize], expect: /has 1 disk\(s\) but this machine has 2; disks map one to one[\s\S]*TARGET_COUNT_MISMATCH/ },
      { name: 'smaller disk', options: `ferry.fingerprint=${c.fingerprint} ferry.code=${code}`, disks: [c.sourceSize - 512 * 1024 * 1024], expect: /target \/dev\/vda holds .* but source disk .* needs .*nothing was written[\s\S]*TARGET_TOO_SMALL/ },
    ];
    for (const k of cases) {
      const files = await Promise.all(k.disks.map((size, i) => blank(`refuse-${k.name.replace(/ /g, '-')}-${i}.img`, size)));
      const vm = await startVm({
        netns: NS,
        kernel: c.kernel,
        initrd: c.initrd,
        cdrom: c.iso,
        append: `console=ttyS0,115200 ferry.ip=${VM_IP}/24 ferry.appliance=${APPLIANCE_IP} ${k.options} ferry.auto=1 ferry.reboot=0`,
        disks: files.map((file) => ({ file, interface: 'virtio' as const })),
        nics: [{ tap: TAP, model: 'virtio-net-pci' }],
        memoryMiB: 1536,
        serialLog: path.join(LOGS, `refuse-${k.name.replace(/ /g, '-')}.log`),
      });
      vms.push(vm);
      try {
        await vm.waitFor(/FERRY-RESTORE-FAILED|FERRY-RESTORE-DONE/, 10 * MIN);
        const out = vm.output();
        assert.match(out, /FERRY-RESTORE-FAILED/, `${k.name}: refused`);
        assert.match(out, k.expect, `${k.name}: the console says what is wrong and what to do`);
      } finally {
        await vm.kill();
      }
      for (const f of files) assert.equal((await stat(f)).blocks, 0, `${k.name}: nothing was written to ${path.basename(f)}`);
    }
  });
});
