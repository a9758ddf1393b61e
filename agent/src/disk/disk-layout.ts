import type { Disk } from './block-reader.js';
import { detectFilesystem } from './filesystem.js';
import type { FilesystemInfo } from './filesystem.js';
import { filesystemUsedExtents } from './fs-usage.js';
import { isMappable, logicalVolumeDisk, lvDiskExtents, readVolumeGroups, type VolumeGroupLayout } from './lvm.js';
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
  /** LVM volume groups with physical volumes on this disk (partitions or the whole disk). */
  volumeGroups?: VolumeGroupLayout[];
}

// With no partitions to bound it, an MBR disk's boot loader area is taken to be the customary first MiB.
const MBR_DEFAULT_BOOT_AREA = 1024 * 1024;

/** Reads the partition table of `disk` and identifies the filesystem of each partition. */
export async function readDiskLayout(disk: Disk): Promise<DiskLayout> {
  const { table, sectorSize } = await readPartitionTable(disk);
  const layout: DiskLayout = { size: disk.size, sectorSize, table };
  if (table.type === 'none') {
    layout.filesystem = await detectFilesystem(disk, 0, disk.size);
  } else {
    for (const p of table.partitions) {
      if (p.kind === 'extended' || p.startByte >= disk.size) continue;
      p.filesystem = await detectFilesystem(disk, p.startByte, Math.min(p.sizeBytes, disk.size - p.startByte));
    }
  }
  const pvRegions = regions(layout, disk.size).filter((r) => r.fs.type === 'lvm2');
  if (pvRegions.length > 0) layout.volumeGroups = (await readVolumeGroups(disk, pvRegions)).groups;
  return layout;
}

/** The filesystem-holding regions of a disk: its partitions, or the whole disk. */
function regions(layout: DiskLayout, diskSize: number): { start: number; size: number; fs: FilesystemInfo }[] {
  if (layout.table.type === 'none') return [{ start: 0, size: diskSize, fs: layout.filesystem ?? { type: 'unknown' } }];
  return layout.table.partitions
    .filter((p) => p.kind !== 'extended' && p.startByte < diskSize)
    .map((p) => ({ start: p.startByte, size: Math.min(p.sizeBytes, diskSize - p.startByte), fs: p.filesystem }));
}

/**
 * What must be read of the LVM physical volume at `start`: its label and metadata areas, and inside each
 * logical volume the used blocks of its filesystem (or all of it); unallocated extents are not read.
 * False when the volume is not one we could map, so the caller reads all of it.
 */
async function addPhysicalVolume(map: UsageMap, disk: Disk, start: number, lvm: LvmState): Promise<boolean> {
  const { groups, done } = lvm;
  const vg = groups.find((g) => g.pvs.some((p) => p.start === start));
  if (!vg || vg.readWhole !== undefined) return false;
  if (done.has(vg)) return true;
  done.add(vg);
  for (const m of vg.metadata) map.add(m.start, Math.min(m.end, disk.size));
  for (const lv of vg.lvs) {
    const trusted = !lvm.distrust?.volumes?.has(lv.id.replaceAll('-', ''));
    const used = isMappable(lv) && lv.filesystem && trusted ? await filesystemUsedExtents(logicalVolumeDisk(disk, lv), 0, lv.size, lv.filesystem) : null;
    if (!used || !isMappable(lv)) {
      for (const a of lv.allocated) map.add(a.start, Math.min(a.end, disk.size));
      continue;
    }
    for (const e of lvDiskExtents(lv.segments, used.extents())) map.add(e.start, e.end);
  }
  return true;
}

/** Adds what must be read of a region holding `fs`: used blocks where we can tell, else all of it. */
async function addRegion(map: UsageMap, disk: Disk, start: number, size: number, fs: FilesystemInfo, lvm: LvmState): Promise<void> {
  const length = Math.min(size, disk.size - start);
  if (length <= 0) return;
  if (fs.type === 'lvm2') {
    if (await addPhysicalVolume(map, disk, start, lvm)) return;
  } else if (!lvm.distrust?.regions?.has(start)) {
    const used = await filesystemUsedExtents(disk, start, length, fs);
    if (used) {
      map.addAll(used, start);
      return;
    }
  }
  map.add(start, start + length);
}

/**
 * Filesystems whose on-disk allocation maps must not be trusted, so they are read whole: an XFS mounted
 * read-write and read live keeps allocations in its log before they reach its free-space trees.
 * `regions` are byte offsets of partitions (or 0 for the whole disk), `volumes` LVM volume ids without dashes.
 */
export interface Distrust {
  regions?: ReadonlySet<number>;
  volumes?: ReadonlySet<string>;
}

interface LvmState {
  groups: VolumeGroupLayout[];
  /** Groups already mapped (a group with several physical volumes on the disk is mapped once). */
  done: Set<VolumeGroupLayout>;
  distrust: Distrust | undefined;
}

/** The byte extents of `disk` a backup must read, given its layout from readDiskLayout. */
export async function usedExtents(disk: Disk, layout: DiskLayout, distrust?: Distrust): Promise<UsageMap> {
  const map = new UsageMap();
  const { table } = layout;
  const lvm: LvmState = { groups: layout.volumeGroups ?? [], done: new Set<VolumeGroupLayout>(), distrust };
  if (table.type === 'none') {
    await addRegion(map, disk, 0, disk.size, layout.filesystem ?? { type: 'unknown' }, lvm);
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
    await addRegion(map, disk, p.startByte, p.sizeBytes, p.filesystem, lvm);
  }
  return map;
}
