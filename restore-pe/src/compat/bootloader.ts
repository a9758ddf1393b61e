import { readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { inRoot, readIfExists } from './files.js';
import type { MountedRoot } from './root.js';
import { failed, ok, type CompatContext, type StepResult } from './types.js';

/** root= of every kernel GRUB would boot: linux lines of grub.cfg and options of BootLoaderSpec entries. */
export function kernelRoots(config: string): string[] {
  const out: string[] = [];
  for (const line of config.split('\n')) {
    if (!/^\s*(linux|linuxefi|linux16|options)\s/.test(line)) continue;
    const m = /(?:^|\s)root=(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** A root= the new machine may not have: a bare device name rather than UUID=, LABEL=, /dev/mapper/… */
export function isBareDeviceRoot(root: string): boolean {
  return /^\/dev\/(sd|hd|vd|xvd|nvme|loop|mmcblk|disk\/by-(id|path)\/)/.test(root);
}

interface GrubTools {
  install: string;
  mkconfig: string;
  cfg: string;
  /** Module folder of each platform in the restored system (installed with grub-pc-bin, grub-efi-amd64-bin…). */
  modules: string;
}

/** Debian names the tools grub-*, Fedora/RHEL grub2-*. */
function grubTools(root: string): GrubTools | undefined {
  for (const bin of ['/usr/sbin', '/sbin', '/usr/bin']) {
    if (existsSync(inRoot(root, `${bin}/grub-install`))) return { install: 'grub-install', mkconfig: 'grub-mkconfig', cfg: '/boot/grub/grub.cfg', modules: '/usr/lib/grub' };
    if (existsSync(inRoot(root, `${bin}/grub2-install`))) return { install: 'grub2-install', mkconfig: 'grub2-mkconfig', cfg: '/boot/grub2/grub.cfg', modules: '/usr/lib/grub' };
  }
  return undefined;
}

/** The disk whose MBR gets GRUB's boot code: the one holding /boot (or /). */
function bootDisk(m: MountedRoot): string {
  const dev = m.mountedFrom.get('/boot') ?? m.mountedFrom.get('/');
  const index = dev !== undefined && dev.disk >= 0 ? dev.disk : 0;
  return m.devices.targets[index]!;
}

async function install(ctx: CompatContext, m: MountedRoot, tools: GrubTools): Promise<string> {
  const bios = ctx.options.firmware === 'bios';
  const platform = bios ? 'i386-pc' : 'x86_64-efi';
  const inChroot = existsSync(inRoot(ctx.root, `${tools.modules}/${platform}`));
  if (!bios && !m.mountedFrom.has('/boot/efi')) throw new Error('no EFI system partition is mounted at /boot/efi in the restored system (did the source boot with BIOS?)');
  // Without the platform's modules in the restored system (a BIOS source moved to UEFI, or back), the ISO's
  // own GRUB installs them into the restored /boot.
  const where = inChroot ? { chroot: ctx.root } : {};
  const boot = inChroot ? '/boot' : inRoot(ctx.root, '/boot');
  const args = bios
    ? [`--target=${platform}`, `--boot-directory=${boot}`, bootDisk(m)]
    : // --removable: EFI/BOOT/BOOTX64.EFI, the path firmware boots without NVRAM entries, which the new VM lacks
      // (and which cannot be written from here: --no-nvram).
      [`--target=${platform}`, `--boot-directory=${boot}`, `--efi-directory=${inChroot ? '/boot/efi' : inRoot(ctx.root, '/boot/efi')}`, '--removable', '--no-nvram'];
  const cmd = inChroot ? tools.install : 'grub-install';
  await ctx.run(cmd, args, where);
  if (!bios) {
    const efiBoot = await readdir(inRoot(ctx.root, '/boot/efi/EFI/BOOT')).catch(() => [] as string[]);
    if (!efiBoot.some((f) => f.toUpperCase() === 'BOOTX64.EFI')) throw new Error(`${cmd} finished but /boot/efi/EFI/BOOT/BOOTX64.EFI is not there`);
  }
  return `${cmd} ${args.join(' ')}${inChroot ? '' : ' (from the restore ISO: the restored system lacks GRUB for this platform)'}`;
}

/** Installs GRUB for the new machine's firmware, regenerates its configuration and checks how it finds /. */
export async function regenerateBootloader(ctx: CompatContext, m: MountedRoot): Promise<StepResult> {
  const tools = grubTools(ctx.root);
  if (!tools) return failed('the restored system has no GRUB (grub-install/grub2-install): only GRUB is supported');
  const installed = await install(ctx, m, tools);
  const updateGrub = existsSync(inRoot(ctx.root, '/usr/sbin/update-grub'));
  await ctx.run(updateGrub ? 'update-grub' : tools.mkconfig, updateGrub ? [] : ['-o', tools.cfg], { chroot: ctx.root });

  const cfg = (await readIfExists(inRoot(ctx.root, tools.cfg))) ?? '';
  let entries = '';
  for (const f of await readdir(inRoot(ctx.root, '/boot/loader/entries')).catch(() => [] as string[])) {
    entries += (await readIfExists(inRoot(ctx.root, `/boot/loader/entries/${f}`))) ?? '';
  }
  const roots = kernelRoots(`${cfg}\n${entries}`);
  const bare = [...new Set(roots.filter(isBareDeviceRoot))];
  // The whole point of this step: a root= naming a device of this ISO (a loop device, /dev/vda1 seen without
  // udev) boots today and breaks when the disks are enumerated differently.
  if (bare.length > 0) return failed(`${tools.cfg} boots root=${bare.join(', root=')}, a device name; expected root=UUID=… (is GRUB_DISABLE_LINUX_UUID set?)`);
  if (roots.length === 0) return failed(`${tools.cfg} has no kernel entry with root=`);
  return ok(`${installed}; ${tools.cfg} boots root=${[...new Set(roots)].join(', ')}`);
}
