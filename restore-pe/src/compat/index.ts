import { regenerateBootloader } from './bootloader.js';
import { rewriteBootConfig } from './boot-config.js';
import { detectDistribution, type Distribution } from './distro.js';
import { rewriteCrypttab, rewriteFstab } from './fstab.js';
import { installGuestAgent } from './guest-agent.js';
import { removeForeignGuestTools } from './guest-tools.js';
import { addVirtioDrivers } from './initramfs.js';
import { adaptNetwork } from './network.js';
import { mountRoot, unmountRoot, type MountedRoot } from './root.js';
import { runCommand } from './runner.js';
import { failed, ok, type CompatContext, type CompatOptions, type CompatStep, type StepResult } from './types.js';

export type { CompatOptions, CompatStep } from './types.js';
export { CommandError, runCommand, type CommandRunner, type CommandResult, type RunOptions } from './runner.js';

/**
 * Makes a restored system boot on the new hypervisor (DESIGN.md §6, "compatibility processing"): mounts its
 * root from the restored disks and, in a chroot, puts the virtio drivers into its initramfs, swaps the old
 * hypervisor's guest tools for ours, names its disks by UUID, reinstalls GRUB for the new firmware and adapts
 * its network configuration. Each step is reported as it ends and returned; a failed step does not stop the
 * ones after it (the operator gets the whole picture), except that nothing runs without a root. Everything
 * mounted is unmounted before this returns.
 */
export async function runCompatibility(opts: CompatOptions): Promise<CompatStep[]> {
  const run = opts.run ?? runCommand;
  const steps: CompatStep[] = [];
  const record = (name: string, r: StepResult) => {
    const step = { name, ...r };
    steps.push(step);
    opts.report(step);
    return step;
  };
  const attempt = async (name: string, fn: () => Promise<StepResult>) => {
    try {
      return record(name, await fn());
    } catch (err) {
      return record(name, failed((err as Error).message));
    }
  };

  let mounted: MountedRoot | undefined;
  const root = await attempt('root', async () => {
    mounted = await mountRoot(opts.targets, run);
    const others = [...mounted.mountedFrom].filter(([at]) => at !== '/').map(([at, d]) => `${at} from ${d.path}`);
    return ok([`${mounted.rootDevice.path} (${mounted.rootDevice.type ?? '?'}) at ${mounted.root}`, ...others, ...mounted.notes].join('; '));
  });
  if (root.status !== 'ok' || !mounted) return steps;
  const m: MountedRoot = mounted;

  try {
    const ctx: CompatContext = { root: m.root, run, devices: m.devices, options: opts };
    let distro: Distribution | undefined;
    await attempt('distribution', async () => {
      distro = await detectDistribution(m.root);
      return ok(`${distro.prettyName} (${distro.id} ${distro.versionId}); initramfs: ${distro.initramfs ?? 'none'}; packages: ${distro.packageManager ?? 'none'}`);
    });
    // Device names first: the initramfs rebuilt below carries the resume device, dracut also the fstab.
    await attempt('fstab', () => rewriteFstab(ctx));
    await attempt('crypttab', () => rewriteCrypttab(ctx));
    await attempt('boot-config', () => rewriteBootConfig(ctx));
    if (distro) {
      const d: Distribution = distro;
      // Package scripts may rebuild the initramfs themselves; the explicit rebuild comes after them.
      await attempt('guest-tools', () => removeForeignGuestTools(ctx, d));
      await attempt('guest-agent', () => installGuestAgent(ctx, d));
      await attempt('initramfs', () => addVirtioDrivers(ctx, d));
    }
    await attempt('network', () => adaptNetwork(ctx));
    // Last: update-grub lists the initramfs images as they are now.
    await attempt('bootloader', () => regenerateBootloader(ctx, m));
  } finally {
    await attempt('unmount', async () => ok(await unmountRoot(m, run)));
  }
  return steps;
}
