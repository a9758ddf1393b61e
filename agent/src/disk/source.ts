import { realpath } from 'node:fs/promises';
import { FerryError } from '@ferry/protocol';
import { openDisk, type Disk } from './block-reader.js';
import { readDiskLayout, usedExtents, type Distrust, type DiskLayout } from './disk-layout.js';
import { applyExclusions } from './exclusions.js';
import { runHook } from './hooks.js';
import { mounts, placementOf } from './placement.js';
import { snapshotVolumes } from './snapshot.js';
import type { UsageMap } from './usage-map.js';

/** A disk to back up: opened, with its layout and the byte ranges its filesystems use. */
export interface SourceDisk {
  /** The resolved path; the appliance knows the disk by it from cycle to cycle. */
  key: string;
  disk: Disk;
  layout: unknown;
  usage: UsageMap;
  /** Removes what opening took (LVM snapshots); closeSourceDisks calls it. */
  release?: () => Promise<void>;
}

/** How a cycle's disks are opened. */
export interface SourceOptions {
  /** Absolute paths on this system whose files' blocks are not read (FIEMAP): big dynamic directories. */
  exclude?: readonly string[] | undefined;
  /** Read logical volumes from temporary LVM snapshots where their group has free extents (default true). */
  snapshots?: boolean | undefined;
  /** Commands run before the disks are opened and after the cycle ends (the final cycle's). */
  hooks?: { pre?: string | null | undefined; post?: string | null | undefined } | undefined;
  /** The cycle's log: snapshots, exclusions, hooks. */
  log?: ((line: string) => void) | undefined;
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

/**
 * Opens and examines every disk, in order: logical volumes are read from snapshots where their group has
 * room, and the blocks of excluded files are taken out. If one disk fails, those already open are closed
 * (and their snapshots removed) again.
 */
export async function openSourceDisks(paths: readonly string[], options: SourceOptions = {}): Promise<SourceDisk[]> {
  const log = options.log ?? ((): void => undefined);
  // Everything opened so far, also a disk whose layout failed: closed again if any step fails.
  const opened: { disk: Disk; release?: () => Promise<void> }[] = [];
  const disks: SourceDisk[] = [];
  try {
    for (const p of paths) {
      const { disk, key } = await openSourceDisk(p);
      const open: { disk: Disk; release?: () => Promise<void> } = { disk };
      opened.push(open);
      try {
        const layout = await readDiskLayout(disk);
        let snapshotted = new Set<string>();
        if (options.snapshots !== false && (layout.volumeGroups?.length ?? 0) > 0) {
          const snaps = await snapshotVolumes(disk, layout, (line) => log(`${key}: ${line}`));
          open.disk = snaps.disk;
          open.release = snaps.release;
          snapshotted = snaps.volumes;
        }
        const distrust = await liveXfs(key, snapshotted, log);
        // The used blocks of snapshotted volumes are read from their snapshots too: one instant for both.
        const usage = await usedExtents(open.disk, layout, distrust);
        disks.push({ key, disk: open.disk, layout, usage, ...(open.release ? { release: open.release } : {}) });
      } catch (err) {
        if (err instanceof FerryError) throw err;
        throw new FerryError('DISK_UNREADABLE', `cannot read the layout of ${disk.path}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (options.exclude && options.exclude.length > 0) {
      for (const r of await applyExclusions(options.exclude, disks)) {
        log(
          r.skipped !== undefined
            ? `exclusion ${r.path}: nothing excluded: ${r.skipped}`
            : `exclusion ${r.path}: ${r.files} files, ${r.bytes} bytes of ${r.disk ?? '?'} not read or sent`,
        );
      }
    }
    return disks;
  } catch (err) {
    await closeSourceDisks(opened);
    throw err;
  }
}

/**
 * The XFS filesystems of disk `key` that are mounted read-write here and not read from a snapshot: their
 * free-space trees on disk may lag allocations still only in their log, so they are read whole
 * (an ext4 says so itself with needs_recovery). A snapshot freezes the filesystem, which writes them back.
 */
async function liveXfs(key: string, snapshotted: ReadonlySet<string>, log: (line: string) => void): Promise<Distrust> {
  const regions = new Set<number>();
  const volumes = new Set<string>();
  for (const m of await mounts()) {
    if (m.fsType !== 'xfs' || !m.readWrite) continue;
    const place = await placementOf(m.major, m.minor);
    if (typeof place === 'string' || !place.diskNames.includes(key)) continue;
    if ('lvId' in place.where && snapshotted.has(place.where.lvId)) continue;
    if ('lvId' in place.where) volumes.add(place.where.lvId);
    else regions.add(place.where.start);
    log(`${key}: XFS at ${m.mountPoint} (${place.describe}) is mounted read-write and read live: read whole, as its free-space trees may lag its log`);
  }
  return { regions, volumes };
}

export async function closeSourceDisks(disks: readonly Pick<SourceDisk, 'disk' | 'release'>[]): Promise<void> {
  for (const d of disks) {
    try {
      await d.release?.();
    } finally {
      await d.disk.close();
    }
  }
}

/**
 * One cycle's use of the disks: the pre-hook, open (snapshots, exclusions), `fn`, close (snapshots removed),
 * and the post-hook whatever happened, also after a failed pre-hook (which may have stopped half a service).
 */
export async function withSourceDisks<T>(paths: readonly string[], options: SourceOptions, fn: (disks: SourceDisk[]) => Promise<T>): Promise<T> {
  const log = options.log ?? ((): void => undefined);
  const { pre, post } = options.hooks ?? {};
  let failed = false;
  try {
    if (pre) await runHook('pre', pre, log);
    const disks = await openSourceDisks(paths, options);
    try {
      return await fn(disks);
    } finally {
      await closeSourceDisks(disks);
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    if (post) {
      try {
        await runHook('post', post, log);
      } catch (err) {
        // A failed post-hook must not hide why the cycle failed.
        if (!failed) throw err;
        log((err as Error).message);
      }
    }
  }
}
