import { copyFile, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Distribution } from './distro.js';
import { inRoot, readIfExists } from './files.js';
import { withoutServiceActions } from './packages.js';
import { ok, skipped, type CompatContext, type StepResult } from './types.js';

/** Folders that fit the distribution, most specific first: debian-12, then debian-12 of 12.4, ubuntu-22.04… */
export function packageFolderNames(distro: Distribution): string[] {
  const major = distro.versionId.split('.')[0] ?? '';
  return [...new Set([`${distro.id}-${distro.versionId}`, `${distro.id}-${major}`])];
}

/** [Install] WantedBy= of a systemd unit file: the targets whose .wants/ enables it. */
export function wantedBy(unitText: string): string[] {
  let inInstall = false;
  const out: string[] = [];
  for (const raw of unitText.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) inInstall = line === '[Install]';
    else if (inInstall) {
      const m = /^WantedBy\s*=\s*(.*)$/.exec(line);
      if (m) out.push(...m[1]!.split(/\s+/).filter((s) => s.length > 0));
    }
  }
  return out;
}

async function findPackages(ctx: CompatContext, distro: Distribution, ext: string): Promise<{ dir: string; files: string[] } | undefined> {
  const names = packageFolderNames(distro);
  // packagesDir is either the folder of all distributions or, already chosen by the caller, the matching one.
  const dirs = [...names.map((n) => path.join(ctx.options.packagesDir, n)), ...(names.includes(path.basename(ctx.options.packagesDir)) ? [ctx.options.packagesDir] : [])];
  for (const dir of dirs) {
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(ext)).sort();
    if (files.length > 0) return { dir, files };
  }
  return undefined;
}

/**
 * systemctl cannot enable units in a chroot (no systemd runs there), so do what it does: a symlink in
 * /etc/systemd/system/<target>.wants/. Units without WantedBy (qemu-guest-agent's) are started by udev.
 */
async function enableUnits(ctx: CompatContext, unitPaths: string[]): Promise<string[]> {
  const enabled: string[] = [];
  for (const unit of unitPaths) {
    const text = await readIfExists(inRoot(ctx.root, unit));
    if (text === undefined) continue;
    for (const target of wantedBy(text)) {
      const dir = inRoot(ctx.root, `/etc/systemd/system/${target}.wants`);
      await mkdir(dir, { recursive: true });
      const link = path.join(dir, path.basename(unit));
      if (!existsSync(link)) await symlink(unit, link);
      enabled.push(`${path.basename(unit)} (${target})`);
    }
  }
  return enabled;
}

export async function installGuestAgent(ctx: CompatContext, distro: Distribution): Promise<StepResult> {
  const dpkg = distro.packageManager === 'dpkg';
  if (distro.packageManager === undefined) return skipped('no dpkg or rpm in the restored system');
  const found = await findPackages(ctx, distro, dpkg ? '.deb' : '.rpm');
  if (!found) return skipped(`no guest-agent packages for ${packageFolderNames(distro).join(' or ')} in ${ctx.options.packagesDir}`);

  const staging = '/tmp/ferry-packages';
  await mkdir(inRoot(ctx.root, staging), { recursive: true });
  try {
    const inside = found.files.map((f) => `${staging}/${f}`);
    for (const f of found.files) await copyFile(path.join(found.dir, f), inRoot(ctx.root, `${staging}/${f}`));
    const names: string[] = [];
    for (const f of inside) {
      const r = dpkg ? await ctx.run('dpkg-deb', ['-f', f, 'Package'], { chroot: ctx.root }) : await ctx.run('rpm', ['-qp', '--qf', '%{NAME}', f], { chroot: ctx.root });
      names.push(r.stdout.trim());
    }
    // No network in the restore ISO: the packages must come with their dependencies; dpkg says which are missing.
    await withoutServiceActions(ctx, () => (dpkg ? ctx.run('dpkg', ['-i', ...inside], { chroot: ctx.root }) : ctx.run('rpm', ['-U', '--replacepkgs', ...inside], { chroot: ctx.root })));
    const units: string[] = [];
    for (const name of names) {
      const r = dpkg ? await ctx.run('dpkg', ['-L', name], { chroot: ctx.root }) : await ctx.run('rpm', ['-ql', name], { chroot: ctx.root });
      units.push(...r.stdout.split('\n').filter((l) => /\/systemd\/system\/[^/]+\.service$/.test(l)));
    }
    const enabled = await enableUnits(ctx, units);
    return ok(`installed ${names.join(', ')} from ${found.dir}${enabled.length ? `; enabled ${enabled.join(', ')}` : ''}`);
  } finally {
    await rm(inRoot(ctx.root, staging), { recursive: true, force: true });
  }
}
