import { readFile, readdir } from 'node:fs/promises';
import { formatBytes } from '@ferry/protocol';
import { sh } from './system.js';

export interface TargetDisk {
  path: string;
  size: number;
  model: string;
}

/** Kernel names that are never restore targets: RAM and loop devices, optical drives, device-mapper and md. */
const NOT_TARGETS = /^(loop|ram|zram|sr|fd|dm-|md|nbd)/;

async function text(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim();
}

/** The disk the restore environment booted from (a USB stick labelled FERRY_RESTORE), if any. */
async function bootDisk(): Promise<string | null> {
  const dev = (await sh('blkid', ['-L', 'FERRY_RESTORE']).catch(() => '')).trim();
  const m = /^\/dev\/([a-z]+)/.exec(dev);
  return m ? m[1]! : null;
}

/** The target machine's disks in kernel order (vda, vdb… / sda, sdb…), sizes from sysfs. */
export async function listTargetDisks(sysBlock = '/sys/block'): Promise<TargetDisk[]> {
  const skip = await bootDisk();
  const names = (await readdir(sysBlock).catch(() => [] as string[])).filter((n) => !NOT_TARGETS.test(n) && n !== skip).sort();
  const disks: TargetDisk[] = [];
  for (const name of names) {
    const sectors = Number(await text(`${sysBlock}/${name}/size`));
    if (!(sectors > 0)) continue;
    disks.push({ path: `/dev/${name}`, size: sectors * 512, model: (await text(`${sysBlock}/${name}/device/model`)) || (await text(`${sysBlock}/${name}/device/type`)) || '' });
  }
  return disks;
}

export function describeDisk(d: { path: string; size: number; model?: string }): string {
  return `${d.path} ${formatBytes(d.size)}${d.model ? ` ${d.model}` : ''}`;
}
