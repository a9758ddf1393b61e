import type { Distribution } from './distro.js';
import { installedPackages, withoutServiceActions } from './packages.js';
import { ok, skipped, type CompatContext, type StepResult } from './types.js';

/**
 * The old hypervisors' guest tools: on a KVM VM they fail at every boot (open-vm-tools) or wait for
 * devices that never come (hyperv-daemons). Debian and RHEL family names.
 */
export const FOREIGN_GUEST_TOOLS = ['open-vm-tools-desktop', 'open-vm-tools-sdmp', 'open-vm-tools', 'hyperv-daemons', 'hypervkvpd', 'hypervvssd', 'hypervfcopyd'];

export async function removeForeignGuestTools(ctx: CompatContext, distro: Distribution): Promise<StepResult> {
  if (distro.packageManager === undefined) return skipped('no dpkg or rpm in the restored system');
  const present = await installedPackages(ctx, distro, FOREIGN_GUEST_TOOLS);
  if (present.length === 0) return skipped('no VMware or Hyper-V guest tools installed');
  await withoutServiceActions(ctx, () =>
    distro.packageManager === 'dpkg' ? ctx.run('dpkg', ['--purge', ...present], { chroot: ctx.root }) : ctx.run('rpm', ['-e', '--nodeps', ...present], { chroot: ctx.root }),
  );
  return ok(`removed ${present.join(', ')}`);
}
