import { access, readdir, readFile } from 'node:fs/promises';
import { openDisk } from './block-reader.js';
import { readDiskLayout } from './disk-layout.js';
import type { DiskLayout } from './disk-layout.js';

export interface DiskInfo {
  /** Kernel name, e.g. "sda", "nvme0n1". */
  name: string;
  path: string;
  size: number;
  model?: string;
  serial?: string;
  vendor?: string;
  removable: boolean;
  readOnly: boolean;
  rotational?: boolean;
  layout?: DiskLayout;
  /** Why the layout could not be read; the disk is still listed so the operator sees it. */
  error?: string;
}

// Devices that are never source disks: RAM-backed, optical, and (for now) device-mapper,
// whose underlying disks are backed up instead.
const SKIPPED_PREFIXES = ['ram', 'zram', 'sr', 'dm-'];

async function readText(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** Whether a path exists (sysfs entries, device nodes). */
export async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function isSourceDisk(sysBlock: string, name: string): Promise<boolean> {
  if (SKIPPED_PREFIXES.some((p) => name.startsWith(p))) return false;
  // An unattached loop device has no backing file and no content.
  if (name.startsWith('loop') && !(await exists(`${sysBlock}/${name}/loop/backing_file`))) return false;
  return true;
}

/** The machine's whole disks, from /sys/block, each with its partition layout. */
export async function listDisks(sysBlock = '/sys/block', devDir = '/dev'): Promise<DiskInfo[]> {
  const names = (await readdir(sysBlock)).sort();
  const disks: DiskInfo[] = [];
  for (const name of names) {
    if (!(await isSourceDisk(sysBlock, name))) continue;
    const sys = `${sysBlock}/${name}`;
    const sectors = Number(await readText(`${sys}/size`));
    // Empty card readers and unconnected nbd devices report size 0.
    if (!Number.isSafeInteger(sectors) || sectors <= 0) continue;
    const model = await readText(`${sys}/device/model`);
    const serial = (await readText(`${sys}/device/serial`)) ?? (await readText(`${sys}/serial`));
    const vendor = await readText(`${sys}/device/vendor`);
    const rotational = await readText(`${sys}/queue/rotational`);
    const disk: DiskInfo = {
      name,
      // sysfs spells "/" in names like cciss/c0d0 as "!".
      path: `${devDir}/${name.replaceAll('!', '/')}`,
      size: sectors * 512,
      removable: (await readText(`${sys}/removable`)) === '1',
      readOnly: (await readText(`${sys}/ro`)) === '1',
    };
    if (model !== undefined) disk.model = model;
    if (serial !== undefined) disk.serial = serial;
    if (vendor !== undefined) disk.vendor = vendor;
    if (rotational !== undefined) disk.rotational = rotational === '1';
    try {
      const opened = await openDisk(disk.path);
      try {
        disk.layout = await readDiskLayout(opened);
      } finally {
        await opened.close();
      }
    } catch (err) {
      disk.error = err instanceof Error ? err.message : String(err);
    }
    disks.push(disk);
  }
  return disks;
}
