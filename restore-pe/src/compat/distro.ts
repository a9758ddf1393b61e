import { existsSync } from 'node:fs';
import { inRoot, readIfExists } from './files.js';

export type InitramfsTool = 'initramfs-tools' | 'dracut';

export interface Distribution {
  id: string;
  versionId: string;
  /** ID_LIKE: "debian", "rhel fedora"… */
  like: string[];
  prettyName: string;
  initramfs?: InitramfsTool;
  packageManager?: 'dpkg' | 'rpm';
}

/** os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["'\\$`])/g, '$1');
    out[m[1]!] = v;
  }
  return out;
}

/** Reads the restored system's os-release and which initramfs generator and package manager it has. */
export async function detectDistribution(root: string): Promise<Distribution> {
  const text = (await readIfExists(inRoot(root, '/etc/os-release'))) ?? (await readIfExists(inRoot(root, '/usr/lib/os-release')));
  if (text === undefined) throw new Error('the restored root has no os-release');
  const os = parseOsRelease(text);
  const has = (p: string) => existsSync(inRoot(root, p));
  // Installing dracut on a Debian-family system removes initramfs-tools, so update-initramfs means it is in use.
  const initramfs: InitramfsTool | undefined =
    has('/usr/sbin/update-initramfs') || has('/sbin/update-initramfs') ? 'initramfs-tools' : has('/usr/bin/dracut') || has('/usr/sbin/dracut') || has('/sbin/dracut') ? 'dracut' : undefined;
  const packageManager = has('/usr/bin/dpkg') ? 'dpkg' : has('/usr/bin/rpm') || has('/bin/rpm') ? 'rpm' : undefined;
  return {
    id: os.ID ?? 'linux',
    versionId: os.VERSION_ID ?? '',
    like: (os.ID_LIKE ?? '').split(/\s+/).filter((s) => s.length > 0),
    prettyName: os.PRETTY_NAME ?? os.NAME ?? os.ID ?? 'Linux',
    ...(initramfs ? { initramfs } : {}),
    ...(packageManager ? { packageManager } : {}),
  };
}
