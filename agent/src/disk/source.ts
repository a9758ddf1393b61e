import { realpath } from 'node:fs/promises';
import { FerryError } from '@ferry/protocol';
import { openDisk, type Disk } from './block-reader.js';
import { readDiskLayout, usedExtents, type DiskLayout } from './disk-layout.js';
import type { UsageMap } from './usage-map.js';

/** A disk to back up: opened, with its layout and the byte ranges its filesystems use. */
export interface SourceDisk {
  /** The resolved path; the appliance knows the disk by it from cycle to cycle. */
  key: string;
  disk: Disk;
  layout: unknown;
  usage: UsageMap;
}

export async function openSourceDisk(path: string): Promise<{ disk: Disk; key: string }> {
  try {
    const key = await realpath(path);
    return { disk: await openDisk(key), key };
  } catch (err) {
    throw new FerryError('DISK_UNREADABLE', `cannot open disk ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Partition table, filesystems and used bytes of one disk; a damaged table is the disk's problem, not a bug. */
export async function examine(disk: Disk): Promise<{ layout: DiskLayout; usage: UsageMap }> {
  try {
    const layout = await readDiskLayout(disk);
    return { layout, usage: await usedExtents(disk, layout) };
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('DISK_UNREADABLE', `cannot read the layout of ${disk.path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Opens and examines every disk, in order; if one fails, those already open are closed again. */
export async function openSourceDisks(paths: readonly string[]): Promise<SourceDisk[]> {
  const opened: Disk[] = [];
  try {
    const disks: SourceDisk[] = [];
    for (const p of paths) {
      const { disk, key } = await openSourceDisk(p);
      opened.push(disk);
      disks.push({ key, disk, ...(await examine(disk)) });
    }
    return disks;
  } catch (err) {
    for (const disk of opened) await disk.close();
    throw err;
  }
}

export async function closeSourceDisks(disks: readonly SourceDisk[]): Promise<void> {
  for (const d of disks) await d.disk.close();
}
