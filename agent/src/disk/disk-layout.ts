import type { Disk } from './block-reader.js';
import { ext4UsedExtents } from './ext4-bitmap.js';
import { detectFilesystem, PROBE_BYTES, swapHeaderBytes } from './filesystem.js';
import type { FilesystemInfo } from './filesystem.js';
import { readPartitionTable } from './partition-table.js';
import type { PartitionTable } from './partition-table.js';
import { UsageMap } from './usage-map.js';

export type { GptLocation, PartitionInfo, PartitionTable } from './partition-table.js';

export interface DiskLayout {
  size: number;
  sectorSize: number;
  table: PartitionTable;
  /** For a disk without a partition table: the filesystem on the whole disk. */
  filesystem?: FilesystemInfo;
}

// With no partitions to bound it, an MBR disk's boot loader area is taken to be the customary first MiB.
const MBR_DEFAULT_BOOT_AREA = 1024 * 1024;

/** Reads the partition table of `disk` and identifies the filesystem of each partition. */
export async function readDiskLayout(disk: Disk): Promise<DiskLayout> {
  const { table, sectorSize } = await readPartitionTable(disk);
  const layout: DiskLayout = { size: disk.size, sectorSize, table };
  if (table.type === 'none') {
    layout.filesystem = await detectFilesystem(disk, 0, disk.size);
    return layout;
  }
  for (const p of table.partitions) {
    if (p.kind === 'extended' || p.startByte >= disk.size) continue;
    p.filesystem = await detectFilesystem(disk, p.startByte, Math.min(p.sizeBytes, disk.size - p.startByte));
  }
  return layout;
}

/** Adds what must be read of a region holding `fs`: used blocks where we can tell, else all of it. */
async function addRegion(map: UsageMap, disk: Disk, start: number, size: number, fs: FilesystemInfo): Promise<void> {
  const length = Math.min(size, disk.size - start);
  if (length <= 0) return;
  if (fs.type === 'ext2' || fs.type === 'ext3' || fs.type === 'ext4') {
    // Partition space past the filesystem's last block (a partition grown before resize2fs) holds nothing.
    const used = await ext4UsedExtents(disk, start, length);
    if (used) {
      map.addAll(used, start);
      return;
    }
  } else if (fs.type === 'swap') {
    // Swap contents are disposable; the header page (signature, UUID, label) is all a restore needs.
    const page = swapHeaderBytes(await disk.read(start, Math.min(PROBE_BYTES, length)));
    if (page !== null) {
      map.add(start, start + page);
      return;
    }
  }
  map.add(start, start + length);
}

/** The byte extents of `disk` a backup must read, given its layout from readDiskLayout. */
export async function usedExtents(disk: Disk, layout: DiskLayout): Promise<UsageMap> {
  const map = new UsageMap();
  const { table } = layout;
  if (table.type === 'none') {
    await addRegion(map, disk, 0, disk.size, layout.filesystem ?? { type: 'unknown' });
    return map;
  }
  const ss = layout.sectorSize;
  const clip = (n: number): number => Math.min(n, disk.size);

  // Everything before the first partition: MBR, GPT, and boot loaders embedded in the gap.
  const starts = table.partitions.map((p) => p.startByte);
  const gpt = table.gpt;
  const fallback = gpt ? gpt.firstUsableLba * ss : MBR_DEFAULT_BOOT_AREA;
  map.add(0, clip(starts.length > 0 ? Math.min(...starts) : fallback));
  if (gpt) {
    map.add(0, clip(gpt.entriesLba * ss + Math.ceil(gpt.entryArrayBytes / ss) * ss));
    map.add(clip(gpt.backupEntriesLba * ss), clip((gpt.backupLba + 1) * ss));
  }
  for (const offset of table.ebrOffsets ?? []) map.add(clip(offset), clip(offset + ss));

  for (const p of table.partitions) {
    if (p.kind === 'extended' || p.startByte >= disk.size) continue;
    await addRegion(map, disk, p.startByte, p.sizeBytes, p.filesystem);
  }
  return map;
}
