import { chmod, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { Distribution } from './distro.js';
import { inRoot } from './files.js';
import type { CompatContext } from './types.js';

/**
 * Runs fn with a policy-rc.d that forbids starting or stopping services: package scripts run in the chroot
 * must not touch daemons (there are none of the restored system running, and the ISO's are not theirs).
 */
export async function withoutServiceActions<T>(ctx: CompatContext, fn: () => Promise<T>): Promise<T> {
  const policy = inRoot(ctx.root, '/usr/sbin/policy-rc.d');
  if (existsSync(policy)) return fn();
  await writeFile(policy, '#!/bin/sh\n# Ferry compatibility processing: no service actions in the chroot.\nexit 101\n');
  await chmod(policy, 0o755);
  try {
    return await fn();
  } finally {
    await rm(policy, { force: true });
  }
}

/** Which of the named packages are installed in the restored system. */
export async function installedPackages(ctx: CompatContext, distro: Distribution, names: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    if (distro.packageManager === 'dpkg') {
      const r = await ctx.run('dpkg-query', ['-W', '-f=${Status}', name], { chroot: ctx.root, okCodes: [1] });
      if (r.code === 0 && /install ok (installed|half-configured|unpacked)/.test(r.stdout)) out.push(name);
    } else if (distro.packageManager === 'rpm') {
      const r = await ctx.run('rpm', ['-q', name], { chroot: ctx.root, okCodes: [1] });
      if (r.code === 0) out.push(name);
    }
  }
  return out;
}
