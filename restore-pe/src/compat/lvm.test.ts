import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DeviceTable } from './devices.js';
import { activateLvm, deactivateLvm } from './lvm.js';
import { CommandError, NOT_FOUND, type CommandRunner } from './runner.js';

// A fake runner: activation needs device-mapper, which the machine running the unit tests may lack. The real
// commands run on the restore ISO in test/e2e/migration.test.ts (the LVM case). The "devices" are plain
// files, so that realpath() sees them.
async function withDevices(fn: (dir: string, table: DeviceTable) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-lvm-'));
  try {
    for (const f of ['vda1', 'vda5', 'sdb1']) await writeFile(path.join(dir, f), '');
    const table: DeviceTable = {
      targets: [path.join(dir, 'vda')],
      devices: [
        { path: path.join(dir, 'vda1'), aliases: [], disk: 0, partition: 1, type: 'ext4' },
        { path: path.join(dir, 'vda5'), aliases: [], disk: 0, partition: 5, type: 'LVM2_member' },
      ],
    };
    await fn(dir, table);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function recorder(answer: (cmd: string, args: readonly string[]) => string | Error): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  const run: CommandRunner = (cmd, args) => {
    calls.push(`${cmd} ${args.join(' ')}`);
    const a = answer(cmd, args);
    return a instanceof Error ? Promise.reject(a) : Promise.resolve({ code: 0, stdout: a, stderr: '' });
  };
  return { run, calls };
}

void test('activateLvm activates only the volume groups on the restored disks and adds their logical volumes', async () => {
  await withDevices(async (dir, table) => {
    const { run, calls } = recorder((cmd, args) => {
      // The machine's own disk holds another group, and an orphan PV belongs to none.
      if (cmd === 'pvs') return `  ${dir}/vda5|ferry-source-vg\n  ${dir}/sdb1|hostvg\n  ${dir}/orphan|\n`;
      if (cmd === 'lvs') return `  /dev/ferry-source-vg/root|/dev/mapper/ferry--source--vg-root|ferry-source-vg\n  /dev/ferry-source-vg/swap_1|/dev/mapper/ferry--source--vg-swap_1|ferry-source-vg\n`;
      if (cmd === 'blkid') return args.at(-1)!.endsWith('root') ? 'UUID=1111-root\nTYPE=ext4\n' : 'UUID=2222-swap\nTYPE=swap\n';
      // modprobe is absent (a kernel with device-mapper built in, or no module tools): not fatal.
      if (cmd === 'modprobe') return new CommandError('modprobe dm_mod', NOT_FOUND, 'modprobe: command not found', '');
      return '';
    });
    const groups = await activateLvm(table, run);
    assert.deepEqual(groups, ['ferry-source-vg']);
    assert.ok(calls.includes('vgchange -ay ferry-source-vg'), calls.join('\n'));
    assert.ok(!calls.some((c) => c.includes('hostvg') && c.startsWith('vgchange')), 'the machine’s own group is left alone');
    assert.ok(calls.indexOf('modprobe dm_mod') < calls.indexOf('vgchange -ay ferry-source-vg'), 'device-mapper is loaded first');
    const root = table.devices.find((d) => d.path === '/dev/ferry-source-vg/root');
    assert.deepEqual(root, { path: '/dev/ferry-source-vg/root', aliases: ['/dev/mapper/ferry--source--vg-root'], disk: -1, partition: 0, uuid: '1111-root', type: 'ext4' });
    assert.equal(table.devices.find((d) => d.aliases.includes('/dev/mapper/ferry--source--vg-swap_1'))?.type, 'swap');

    const off = recorder(() => '');
    await deactivateLvm(groups, off.run);
    assert.deepEqual(off.calls, ['vgchange -an ferry-source-vg']);
  });
});

void test('activateLvm does nothing without LVM members, and says lvm2 is missing when its tools are', async () => {
  await withDevices(async (_dir, table) => {
    const none = recorder(() => '');
    assert.deepEqual(await activateLvm({ targets: table.targets, devices: [table.devices[0]!] }, none.run), []);
    assert.deepEqual(none.calls, []);

    const missing = recorder((cmd) => (cmd === 'vgscan' ? new CommandError('vgscan --mknodes', NOT_FOUND, 'vgscan: command not found', '') : ''));
    await assert.rejects(activateLvm(table, missing.run), /hold LVM volumes but the lvm2 tools are missing/);
  });
});
