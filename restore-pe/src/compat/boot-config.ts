import { readdir, rename as move } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { stableRenamer, type Renamer, type Rewrite } from './fstab.js';
import { BACKUP_SUFFIX, inRoot, readIfExists, writeWithBackup } from './files.js';
import { failed, ok, skipped, type CompatContext, type StepResult } from './types.js';

function renameParams(value: string, params: string, rename: Renamer, changes: string[], unresolved: string[]): string {
  return value.replace(new RegExp(`(^|[\\s"'])(${params})=([^\\s"']+)`, 'g'), (all, lead: string, key: string, spec: string) => {
    const r = rename(spec);
    if (r === undefined) return all;
    if ('unresolved' in r) {
      unresolved.push(`${key}=${spec}`);
      return all;
    }
    changes.push(`${key}=${spec} -> ${key}=${r.to}`);
    return `${lead}${key}=${r.to}`;
  });
}

/**
 * /etc/default/grub: root= and resume= on the kernel command lines become UUID=…, and
 * GRUB_DISABLE_LINUX_UUID=true (which makes update-grub write root=/dev/sdXN) is turned off.
 */
export function rewriteGrubDefaults(text: string, rename: Renamer): Rewrite {
  const changes: string[] = [];
  const unresolved: string[] = [];
  const lines = text.split('\n').flatMap((line) => {
    if (/^\s*GRUB_CMDLINE_LINUX(_DEFAULT)?=/.test(line)) return [renameParams(line, 'root|resume', rename, changes, unresolved)];
    if (/^\s*GRUB_DISABLE_LINUX_UUID=["']?true["']?\s*$/.test(line)) {
      changes.push('GRUB_DISABLE_LINUX_UUID=true -> false');
      return [`# ${line.trim()}  (turned off by Ferry: the kernel finds its root by UUID on the new machine)`, 'GRUB_DISABLE_LINUX_UUID=false'];
    }
    return [line];
  });
  return { text: lines.join('\n'), changes, unresolved, optional: [] };
}

/** initramfs-tools' resume setting (conf.d/resume): RESUME=/dev/sda2 becomes RESUME=UUID=…. */
export function rewriteResumeConf(text: string, rename: Renamer): Rewrite {
  const changes: string[] = [];
  const unresolved: string[] = [];
  const lines = text.split('\n').map((line) => (/^\s*RESUME=/.test(line) ? renameParams(line, 'RESUME', rename, changes, unresolved) : line));
  return { text: lines.join('\n'), changes, unresolved, optional: [] };
}

/** The boot configuration that names devices: GRUB's defaults, the resume device, GRUB's device.map. */
export async function rewriteBootConfig(ctx: CompatContext): Promise<StepResult> {
  const rename = stableRenamer(ctx.devices);
  const files: { rel: string; transform: (text: string, r: Renamer) => Rewrite }[] = [{ rel: '/etc/default/grub', transform: rewriteGrubDefaults }];
  for (const f of await readdir(inRoot(ctx.root, '/etc/default/grub.d')).catch(() => [] as string[])) {
    if (f.endsWith('.cfg')) files.push({ rel: `/etc/default/grub.d/${f}`, transform: rewriteGrubDefaults });
  }
  files.push({ rel: '/etc/initramfs-tools/conf.d/resume', transform: rewriteResumeConf });

  const done: string[] = [];
  const unresolved: string[] = [];
  for (const { rel, transform } of files) {
    const text = await readIfExists(inRoot(ctx.root, rel));
    if (text === undefined) continue;
    const r = transform(text, rename);
    if (r.changes.length > 0) {
      await writeWithBackup(inRoot(ctx.root, rel), r.text);
      done.push(`${rel}: ${r.changes.join(', ')}`);
    }
    unresolved.push(...r.unresolved.map((u) => `${rel}: ${u}`));
  }
  // device.map maps GRUB drive names to the old disks; grub-install works without it and would trust it.
  const deviceMap = inRoot(ctx.root, '/boot/grub/device.map');
  if (existsSync(deviceMap)) {
    await move(deviceMap, `${deviceMap}${BACKUP_SUFFIX}`);
    done.push('/boot/grub/device.map moved aside');
  }
  if (unresolved.length > 0) return failed(`no restored partition for ${unresolved.join(', ')}${done.length ? `; rewrote ${done.join('; ')}` : ''}`);
  if (done.length === 0) return skipped('the boot configuration names no device by a controller-dependent name');
  return ok(`${done.join('; ')} (originals kept as *.ferry-backup)`);
}
