import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_PREFIX, type Point } from '@ferry/protocol';
import { ferryOk, ROOT, sh } from '../lib/cli.js';
import { ensureAgentBinary } from '../lib/agent-binary.js';
import { startTestAppliance } from '../lib/jobs.js';
import { startVm } from '../lib/qemu.js';
import { ensureDebianSource, LVM_VG, withSourceRoot } from '../fixtures/debian-source.js';

/*
 * LVM snapshot consistency, where it can run: this machine's kernel has no device-mapper, so the agent (the
 * shipped executable) runs inside a VM booted from the LVM source fixture (Debian's kernel has it). The VM
 * reaches the appliance in this process through QEMU's user-mode network (the guest's 10.0.2.2 is this
 * machine's loopback). In the guest a boot script frees some extents (shrinks the swap volume), runs one backup
 * of its own disk, and lists the logical volumes before and after; the restored root volume holds the file the
 * script wrote before the backup.
 */

const BOOT_AND_BACKUP_MS = 25 * 60_000;

test('on LVM with free extents the agent reads from a temporary snapshot and removes it afterwards', { timeout: BOOT_AND_BACKUP_MS + 15 * 60_000 }, async () => {
  const [fixture, agentBinary] = await Promise.all([ensureDebianSource('lvm'), ensureAgentBinary()]);
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-e2e-snapshot-'));
  await mkdir(path.join(ROOT, 'test/out'), { recursive: true });
  const t = await startTestAppliance();
  try {
    const image = path.join(work, 'source.img');
    await sh('cp', ['--sparse=always', fixture, image]);

    // Enrolled from here, then pointed at the address the guest reaches this machine's loopback by.
    const state = path.join(work, 'agent-state');
    await t.enroll(state, 'lvm-guest');
    const enrollment = JSON.parse(await readFile(path.join(state, 'agent.json'), 'utf8')) as { appliance: string };
    enrollment.appliance = `https://10.0.2.2:${t.server.port}`;
    const marker = `snapshot-marker-${process.pid}`;

    await withSourceRoot(image, 'lvm', async (root) => {
      await copyFile(agentBinary, path.join(root, 'usr/local/sbin/ferry-agent'));
      await chmod(path.join(root, 'usr/local/sbin/ferry-agent'), 0o755);
      await mkdir(path.join(root, 'var/lib/ferry-agent'), { recursive: true, mode: 0o700 });
      await writeFile(path.join(root, 'var/lib/ferry-agent/agent.json'), JSON.stringify(enrollment), { mode: 0o600 });
      await writeFile(
        path.join(root, 'usr/local/sbin/ferry-snapshot-test'),
        [
          '#!/bin/sh',
          'exec >/dev/ttyS0 2>&1',
          'nic=$(ls /sys/class/net | grep -v "^lo$" | head -1)',
          'ip link set "$nic" up && ip addr add 10.0.2.15/24 dev "$nic" && ip route add default via 10.0.2.2',
          // Free extents for the snapshot: the swap volume takes all the rest of the volume group in the fixture.
          `swapoff -a; lvreduce -q -f -y -l 50%LV ${LVM_VG}/swap_1 && mkswap -q /dev/${LVM_VG}/swap_1`,
          `echo ${marker} > /root/written-before-backup; sync`,
          'echo "FERRY-LVS-BEFORE: $(lvs --noheadings -o lv_name | tr -s " \\n" " ")"',
          'NODE_OPTIONS=--max-semi-space-size=1 /usr/local/sbin/ferry-agent backup --disk /dev/sda --state /var/lib/ferry-agent --json',
          'echo "FERRY-BACKUP-EXIT: $?"',
          'echo "FERRY-LVS-AFTER: $(lvs --noheadings -o lv_name | tr -s " \\n" " ")"',
          'systemctl poweroff',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      await writeFile(
        path.join(root, 'etc/systemd/system/ferry-snapshot-test.service'),
        ['[Unit]', 'Description=Ferry snapshot test', 'After=local-fs.target', '', '[Service]', 'Type=oneshot', 'ExecStart=/usr/local/sbin/ferry-snapshot-test', '', '[Install]', 'WantedBy=multi-user.target', ''].join('\n'),
      );
      // The serial line is this script's: a getty there would hang it up mid-run.
      await symlink('/dev/null', path.join(root, 'etc/systemd/system/serial-getty@ttyS0.service'));
      await mkdir(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      await symlink('/etc/systemd/system/ferry-snapshot-test.service', path.join(root, 'etc/systemd/system/multi-user.target.wants/ferry-snapshot-test.service'));
    });

    const vm = await startVm({
      disks: [{ file: image, interface: 'ide' }],
      memoryMiB: 1024,
      // Kept after the run (test/out is not in git), for reading when the guest side fails.
      serialLog: path.join(ROOT, 'test/out/agent-snapshot-serial.log'),
      extraArgs: ['-netdev', 'user,id=u0', '-device', 'e1000,netdev=u0'],
    });
    let serial: string;
    let after: string;
    try {
      // Up to the line's end: the console delivers output in pieces, and the list must be read whole.
      after = (await vm.waitFor(/FERRY-LVS-AFTER:([^\r\n]*)\r?\n/, BOOT_AND_BACKUP_MS))[1]!;
      serial = vm.output();
    } finally {
      await vm.kill();
    }
    const exit = /FERRY-BACKUP-EXIT: (\d+)/.exec(serial);
    assert.equal(exit?.[1], '0', `the backup in the guest succeeded:\n${serial.slice(-4000)}`);
    assert.match(serial, new RegExp(`reading ${LVM_VG}/root from the snapshot ${LVM_VG}/ferry-snap-root`), 'the root volume was read from a snapshot');
    const before = /FERRY-LVS-BEFORE: (.*)/.exec(serial)![1]!;
    assert.doesNotMatch(before, /ferry-snap/);
    assert.doesNotMatch(after, /ferry-snap/, `the snapshots were removed after the cycle (volumes: ${after})`);
    assert.match(after, /root/);

    // The point holds the root volume as it was when the snapshot was taken: the file written before is there.
    const points = await t.admin.json<Point[]>(`${API_PREFIX}/points`);
    assert.equal(points.length, 1);
    const restored = path.join(work, 'restored.img');
    await ferryOk('restore', ['--appliance', t.server.url, '--fingerprint', t.server.fingerprint, '--token', t.admin.credential!, '--point', String(points[0]!.id), '--target', restored]);
    await withSourceRoot(restored, 'lvm', async (root) => {
      assert.equal((await readFile(path.join(root, 'root/written-before-backup'), 'utf8')).trim(), marker);
    });
  } finally {
    await t.close();
    await rm(work, { recursive: true, force: true });
  }
});
