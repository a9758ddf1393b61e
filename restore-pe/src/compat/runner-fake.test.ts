import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeForeignGuestTools } from './guest-tools.js';
import { runCompatibility } from './index.js';
import type { CommandRunner, RunOptions } from './runner.js';
import type { CompatContext, CompatStep } from './types.js';

// A recorded fake runner: the real commands run in compat.test.ts on the Debian fixture; these tests pin
// which commands a step issues for answers that fixture cannot give (installed VMware tools, no root).
function fake(answer: (cmd: string, args: readonly string[]) => { code: number; stdout?: string }): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  const run: CommandRunner = (cmd, args, opts: RunOptions = {}) => {
    calls.push(`${opts.chroot !== undefined ? 'chroot ' : ''}${cmd} ${args.join(' ')}`);
    const a = answer(cmd, args);
    if (a.code !== 0 && !opts.okCodes?.includes(a.code)) return Promise.reject(new Error(`${cmd} exited ${a.code}`));
    return Promise.resolve({ code: a.code, stdout: a.stdout ?? '', stderr: '' });
  };
  return { run, calls };
}

test('removeForeignGuestTools purges the installed VMware and Hyper-V packages with services held', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-tools-'));
  try {
    await mkdir(path.join(root, 'usr/sbin'), { recursive: true });
    let servicesHeld = false;
    const { run, calls } = fake((cmd, args) => {
      if (cmd === 'dpkg-query') return args.includes('open-vm-tools') ? { code: 0, stdout: 'install ok installed' } : { code: 1 };
      if (cmd === 'dpkg') servicesHeld = existsSync(path.join(root, 'usr/sbin/policy-rc.d'));
      return { code: 0 };
    });
    const ctx: CompatContext = { root, run, devices: { targets: [], devices: [] }, options: { targets: [], firmware: 'bios', packagesDir: '/x', report: () => undefined } };
    const r = await removeForeignGuestTools(ctx, { id: 'debian', versionId: '12', like: [], prettyName: 'Debian', packageManager: 'dpkg' });
    assert.deepEqual(r, { status: 'ok', detail: 'removed open-vm-tools' });
    assert.equal(calls.at(-1), 'chroot dpkg --purge open-vm-tools');
    assert.equal(servicesHeld, true, 'policy-rc.d forbids service actions during the purge');
    assert.equal(existsSync(path.join(root, 'usr/sbin/policy-rc.d')), false, 'and is gone afterwards');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('runCompatibility reports a failed root step and stops when the targets hold no Linux root', async () => {
  const { run } = fake(() => ({ code: 2 }));
  const reported: CompatStep[] = [];
  // /dev/null has no partitions in sysfs and blkid (faked) finds nothing on it.
  const steps = await runCompatibility({ targets: ['/dev/null'], firmware: 'bios', packagesDir: '/x', run, report: (s) => reported.push(s) });
  assert.equal(steps.length, 1);
  assert.equal(steps[0]!.name, 'root');
  assert.equal(steps[0]!.status, 'failed');
  assert.match(steps[0]!.detail, /no Linux root filesystem .* on \/dev\/null: found \/dev\/null \(no filesystem\)/);
  assert.deepEqual(reported, steps);
});
