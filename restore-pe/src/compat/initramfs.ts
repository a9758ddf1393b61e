import { copyFile, readdir, writeFile } from 'node:fs/promises';
import { constants, existsSync } from 'node:fs';
import { BACKUP_SUFFIX, inRoot, readIfExists, writeWithBackup } from './files.js';
import type { Distribution } from './distro.js';
import { CommandError } from './runner.js';
import { failed, ok, skipped, type CompatContext, type StepResult } from './types.js';

/** What a virtio VM needs to find its disks (blk, scsi), its NIC, and the PCI transport under all three. */
export const VIRTIO_MODULES = ['virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_pci'];

const norm = (m: string) => m.replace(/-/g, '_');

/** /etc/initramfs-tools/modules with the missing modules appended; such modules are included whatever MODULES= says. */
export function addToModulesList(text: string, modules: string[]): { text: string; added: string[] } {
  const listed = new Set(
    text
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((m) => m !== '' && !m.startsWith('#'))
      .map(norm),
  );
  const added = modules.filter((m) => !listed.has(norm(m)));
  if (added.length === 0) return { text, added };
  const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return { text: `${base}# Added by Ferry: the restored system runs on a virtio VM.\n${added.join('\n')}\n`, added };
}

/** Whether a kernel has a module as a loadable file, built in, or not at all (from modules.dep and modules.builtin). */
export function moduleState(modulesDep: string, modulesBuiltin: string, name: string): 'module' | 'builtin' | 'missing' {
  const file = new RegExp(`(^|/)${norm(name).replace(/_/g, '[-_]')}\\.ko(\\.\\w+)?:?$`, 'm');
  if (modulesDep.split('\n').some((l) => file.test(l.split(':')[0]!))) return 'module';
  if (modulesBuiltin.split('\n').some((l) => file.test(l.trim()))) return 'builtin';
  return 'missing';
}

/** Whether an initramfs file list (lsinitramfs / lsinitrd output) holds the module. */
export function listHasModule(files: string, name: string): boolean {
  return new RegExp(`/${norm(name).replace(/_/g, '[-_]')}\\.ko(\\.\\w+)?$`, 'm').test(files);
}

/** Kernel versions installed in the restored system: /lib/modules entries with a modules.dep. */
async function kernels(root: string): Promise<string[]> {
  const dirs = await readdir(inRoot(root, '/lib/modules')).catch(() => [] as string[]);
  return dirs.filter((v) => existsSync(inRoot(root, `/lib/modules/${v}/modules.dep`))).sort();
}

async function backupOnceCopy(file: string): Promise<boolean> {
  if (!existsSync(file) || existsSync(`${file}${BACKUP_SUFFIX}`)) return false;
  await copyFile(file, `${file}${BACKUP_SUFFIX}`, constants.COPYFILE_EXCL);
  return true;
}

interface KernelPlan {
  version: string;
  image: string;
  /** Modules the initramfs must hold as files afterwards (built-in ones need nothing). */
  expect: string[];
  builtin: string[];
  missing: string[];
}

async function plan(ctx: CompatContext, version: string, image: string): Promise<KernelPlan> {
  const dep = (await readIfExists(inRoot(ctx.root, `/lib/modules/${version}/modules.dep`))) ?? '';
  const builtin = (await readIfExists(inRoot(ctx.root, `/lib/modules/${version}/modules.builtin`))) ?? '';
  const p: KernelPlan = { version, image, expect: [], builtin: [], missing: [] };
  for (const m of VIRTIO_MODULES) {
    const s = moduleState(dep, builtin, m);
    (s === 'module' ? p.expect : s === 'builtin' ? p.builtin : p.missing).push(m);
  }
  return p;
}

/** Checks the rebuilt image; returns what is missing from it. */
async function verify(ctx: CompatContext, lister: string, p: KernelPlan): Promise<string[]> {
  const files = (await ctx.run(lister, [p.image], { chroot: ctx.root })).stdout;
  return p.expect.filter((m) => !listHasModule(files, m));
}

function summary(plans: KernelPlan[], backups: string[], extra: string[]): string {
  const perKernel = plans.map((p) => {
    const notes = [p.builtin.length ? `${p.builtin.join(', ')} built in` : '', p.missing.length ? `${p.missing.join(', ')} not in this kernel` : ''].filter((s) => s);
    return `${p.image}: ${p.expect.join(', ') || 'nothing to add'}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  });
  return [...extra, ...perKernel, backups.length ? `previous images kept as ${backups.map((b) => `${b}${BACKUP_SUFFIX}`).join(', ')}` : ''].filter((s) => s).join('; ');
}

async function withInitramfsTools(ctx: CompatContext, versions: string[]): Promise<StepResult> {
  const extra: string[] = [];
  const listFile = inRoot(ctx.root, '/etc/initramfs-tools/modules');
  const current = (await readIfExists(listFile)) ?? '';
  const { text, added } = addToModulesList(current, VIRTIO_MODULES);
  if (added.length > 0) {
    if (existsSync(listFile)) await writeWithBackup(listFile, text);
    else await writeFile(listFile, text);
    extra.push(`added ${added.join(', ')} to /etc/initramfs-tools/modules`);
  }
  const plans: KernelPlan[] = [];
  const backups: string[] = [];
  for (const v of versions) {
    const p = await plan(ctx, v, `/boot/initrd.img-${v}`);
    plans.push(p);
    const exists = existsSync(inRoot(ctx.root, p.image));
    if (await backupOnceCopy(inRoot(ctx.root, p.image))) backups.push(p.image);
    const update = () => ctx.run('update-initramfs', [exists ? '-u' : '-c', '-k', v], { chroot: ctx.root });
    try {
      await update();
    } catch (err) {
      // MODULES=dep looks for the driver of the disk / is on; in a chroot that can be a device it cannot
      // place (it says "failed to determine device"). MODULES=most carries every storage driver instead.
      if (!(err instanceof CommandError && /failed to determine device/.test(err.stderr))) throw err;
      await writeFile(inRoot(ctx.root, '/etc/initramfs-tools/conf.d/ferry-modules'), '# Ferry: MODULES=dep could not work out the root device during restore.\nMODULES=most\n');
      extra.push('MODULES=dep could not place the root device in the chroot, set MODULES=most (conf.d/ferry-modules)');
      await update();
    }
    const lacking = await verify(ctx, 'lsinitramfs', p);
    if (lacking.length > 0) return failed(`${p.image} was rebuilt but lacks ${lacking.join(', ')} (lsinitramfs)`);
  }
  return ok(summary(plans, backups, extra));
}

async function withDracut(ctx: CompatContext, versions: string[]): Promise<StepResult> {
  // Also for later rebuilds by the restored system's own kernel updates.
  const conf = inRoot(ctx.root, '/etc/dracut.conf.d/90-ferry-virtio.conf');
  await writeFile(conf, `# Added by Ferry: the restored system runs on a virtio VM.\nadd_drivers+=" ${VIRTIO_MODULES.join(' ')} "\n`);
  const plans: KernelPlan[] = [];
  const backups: string[] = [];
  for (const v of versions) {
    // Fedora/RHEL name it initramfs-<ver>.img; Debian-family systems using dracut keep initrd.img-<ver>.
    const image = existsSync(inRoot(ctx.root, `/boot/initrd.img-${v}`)) ? `/boot/initrd.img-${v}` : `/boot/initramfs-${v}.img`;
    const p = await plan(ctx, v, image);
    plans.push(p);
    if (await backupOnceCopy(inRoot(ctx.root, image))) backups.push(image);
    await ctx.run('dracut', ['--force', '--add-drivers', p.expect.join(' '), image, v], { chroot: ctx.root });
    const lacking = await verify(ctx, 'lsinitrd', p);
    if (lacking.length > 0) return failed(`${image} was rebuilt but lacks ${lacking.join(', ')} (lsinitrd)`);
  }
  return ok(summary(plans, backups, ['/etc/dracut.conf.d/90-ferry-virtio.conf']));
}

/** Puts the virtio drivers into every installed kernel's initramfs, keeping each previous image. */
export async function addVirtioDrivers(ctx: CompatContext, distro: Distribution): Promise<StepResult> {
  const versions = await kernels(ctx.root);
  if (versions.length === 0) return failed('no kernel in /lib/modules of the restored system');
  switch (distro.initramfs) {
    case 'initramfs-tools':
      return withInitramfsTools(ctx, versions);
    case 'dracut':
      return withDracut(ctx, versions);
    case undefined:
      return skipped('neither initramfs-tools nor dracut is installed: the kernel is expected to carry its drivers');
  }
}
