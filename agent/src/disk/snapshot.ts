import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Disk } from './block-reader.js';
import { openDisk } from './block-reader.js';
import { exists } from './discover.js';
import type { DiskLayout } from './disk-layout.js';
import { isMappable, type LogicalVolumeLayout, type LvSegmentLayout, type VolumeGroupLayout } from './lvm.js';
import type { Extent } from './usage-map.js';

const execFileP = promisify(execFile);

export const SNAPSHOT_PREFIX = 'ferry-snap-';
// Each snapshot is tagged with the pid of the agent that made it, so one agent never removes another's.
const PID_TAG = 'ferry_pid_';
// LVM commands can hang on a dead device: a cycle would rather read live than wait for ever.
const LVM_TIMEOUT_MS = 120_000;

type Log = (line: string) => void;

/** Where one stretch of a disk's bytes comes from instead of the live disk. */
interface Override {
  start: number;
  end: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/** For one area (stripe i) of a segment: the disk range [start, end) and the LV offset of a disk offset in it. */
function areaRanges(seg: LvSegmentLayout): { start: number; end: number; lvOffset(diskOffset: number): number }[] {
  const n = seg.areas.length;
  const perArea = seg.length / n;
  return seg.areas.map((area, i) => ({
    start: area,
    end: area + perArea,
    lvOffset: (d: number): number => {
      const a = d - area;
      const row = Math.floor(a / seg.stripeSize);
      return seg.lvStart + (row * n + i) * seg.stripeSize + (a % seg.stripeSize);
    },
  }));
}

/**
 * A disk whose reads come from `overrides` where they cover the range (bytes captured in memory, a logical
 * volume's snapshot) and from `live` elsewhere; pieces are stitched in order.
 */
export function stitchedDisk(live: Disk, overrides: readonly Override[]): Disk {
  const sorted = [...overrides].sort((a, b) => a.start - b.start);
  return {
    path: live.path,
    size: live.size,
    sectorSize: live.sectorSize,
    async read(offset: number, length: number): Promise<Buffer> {
      const end = offset + length;
      const parts: Buffer[] = [];
      let at = offset;
      for (const o of sorted) {
        if (o.end <= at || o.start >= end) continue;
        if (o.start > at) parts.push(await live.read(at, o.start - at));
        const to = Math.min(o.end, end);
        const from = Math.max(o.start, at);
        parts.push(await o.read(from, to - from));
        at = to;
      }
      if (at < end) parts.push(await live.read(at, end - at));
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    },
    close: () => live.close(),
  };
}

/** Overrides that read a logical volume's extents on the disk from `snapshot` (a device of the volume's size). */
export function volumeOverrides(lv: LogicalVolumeLayout & { segments: LvSegmentLayout[] }, snapshot: Disk): Override[] {
  const out: Override[] = [];
  for (const seg of lv.segments) {
    for (const r of areaRanges(seg)) {
      out.push({
        start: r.start,
        end: r.end,
        // A disk range inside one area crosses stripe chunks: read chunk by chunk.
        async read(offset, length) {
          const parts: Buffer[] = [];
          for (let d = offset; d < offset + length; ) {
            const within = (d - r.start) % seg.stripeSize;
            const n = Math.min(seg.stripeSize - within, offset + length - d);
            parts.push(await snapshot.read(r.lvOffset(d), n));
            d += n;
          }
          return Buffer.concat(parts, length);
        },
      });
    }
  }
  return out;
}

/** Bytes captured now and served later: the LVM metadata as it was before the snapshot changed it. */
export async function capturedOverrides(disk: Disk, extents: readonly Extent[]): Promise<Override[]> {
  const out: Override[] = [];
  for (const e of extents) {
    const end = Math.min(e.end, disk.size);
    if (end <= e.start) continue;
    const bytes = await disk.read(e.start, end - e.start);
    out.push({ start: e.start, end, read: (offset, length) => Promise.resolve(bytes.subarray(offset - e.start, offset - e.start + length)) });
  }
  // Overlapping captures (a metadata area inside the label area) would read twice: keep the outer one.
  return out.filter((o) => !out.some((p) => p !== o && p.start <= o.start && p.end >= o.end && (p.start < o.start || p.end > o.end)));
}

async function lvm(args: string[]): Promise<string> {
  const { stdout } = await execFileP(args[0]!, args.slice(1), { env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' }, timeout: LVM_TIMEOUT_MS });
  return stdout;
}

/** Whether `pid` is a running ferry-agent (other than this process): its snapshots are in use. */
async function agentRunning(pid: number): Promise<boolean> {
  if (pid === process.pid) return false;
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('ferry');
  } catch {
    return false;
  }
}

/**
 * Removes `ferry-snap-*` snapshots left behind by a cycle that did not end (the agent crashed or was killed);
 * those of another agent process still running (a `backup` by hand next to the service) are left alone.
 */
export async function removeStaleSnapshots(log: Log): Promise<void> {
  let out: string;
  try {
    out = await lvm(['lvs', '--noheadings', '--separator', '/', '-o', 'vg_name,lv_name,lv_tags']);
  } catch {
    return; // No LVM tools, or no volume groups: nothing can be left.
  }
  for (const line of out.split('\n').map((l) => l.trim())) {
    const [vg, lv, tags = ''] = line.split('/');
    if (!vg || !lv?.startsWith(SNAPSHOT_PREFIX)) continue;
    const owner = tags.split(',').find((t) => t.startsWith(PID_TAG));
    if (owner && (await agentRunning(Number(owner.slice(PID_TAG.length))))) continue;
    try {
      await lvm(['lvremove', '-f', `${vg}/${lv}`]);
      log(`removed the snapshot ${vg}/${lv} left by an earlier cycle that did not end`);
    } catch (err) {
      log(`cannot remove the stale snapshot ${vg}/${lv}: ${(err as Error).message.trim()}; remove it with lvremove`);
    }
  }
}

/** Snapshots taken for one cycle; release() removes them. */
export interface Snapshots {
  /** The disk to read instead of the live one (the live one when nothing was snapshotted). */
  disk: Disk;
  /** Ids (without dashes) of the logical volumes read from a snapshot. */
  volumes: Set<string>;
  release: () => Promise<void>;
}

/**
 * For each logical volume of the disk's volume groups that holds a filesystem: when its group has free
 * extents, takes a temporary snapshot (lvcreate -s) and reads the volume's extents from it, so the volume
 * is read as of one instant; without free extents, reads it live and says so. The group's metadata is
 * captured before the snapshots change it, so the copy shows the volume group without them.
 */
export async function snapshotVolumes(disk: Disk, layout: DiskLayout, log: Log): Promise<Snapshots> {
  const taken: Taken[] = [];
  const overrides: Override[] = [];
  const release = async (): Promise<void> => {
    for (const t of taken.splice(0)) {
      await t.device.close().catch(() => undefined);
      try {
        await lvm(['lvremove', '-f', `${t.vg}/${t.name}`]);
      } catch (err) {
        log(`cannot remove the snapshot ${t.vg}/${t.name}: ${(err as Error).message.trim()}; the next start of the agent tries again`);
      }
    }
  };
  try {
    for (const vg of layout.volumeGroups ?? []) await snapshotGroup(disk, vg, log, taken, overrides);
  } catch (err) {
    await release();
    throw err;
  }
  const volumes = new Set(taken.map((t) => t.lvId));
  if (overrides.length === 0) return { disk, volumes, release };
  return { disk: stitchedDisk(disk, overrides), volumes, release };
}

interface Taken {
  vg: string;
  name: string;
  lvId: string;
  device: Disk;
}

async function snapshotGroup(disk: Disk, vg: VolumeGroupLayout, log: Log, taken: Taken[], overrides: Override[]): Promise<void> {
  const volumes = vg.lvs.filter((lv) => isMappable(lv) && lv.filesystem && lv.filesystem.type !== 'unknown' && lv.filesystem.type !== 'swap');
  if (volumes.length === 0) return;
  if (vg.freeExtents === 0) {
    log(`crash-consistent (live read): no free extents in VG ${vg.name} for a snapshot of ${volumes.map((v) => v.name).join(', ')}`);
    return;
  }
  const captured = await capturedOverrides(disk, vg.metadata);
  // The free extents are shared among the volumes; a snapshot only needs room for what changes meanwhile.
  const share = Math.floor(vg.freeExtents / volumes.length);
  for (const lv of volumes) {
    if (!isMappable(lv)) continue;
    const extents = Math.min(share, Math.ceil(lv.size / vg.extentSize));
    const name = `${SNAPSHOT_PREFIX}${lv.name}`.slice(0, 127);
    if (!(await exists(`/dev/${vg.name}/${lv.name}`))) {
      // Not active on this system: nothing can write to it while it is read.
      continue;
    }
    if (extents < 1) {
      log(`crash-consistent (live read): too few free extents in VG ${vg.name} to snapshot ${lv.name}`);
      continue;
    }
    try {
      await lvm(['lvcreate', '-s', '-n', name, '-l', String(extents), '--addtag', `${PID_TAG}${process.pid}`, `${vg.name}/${lv.name}`]);
    } catch (err) {
      log(`crash-consistent (live read) of ${vg.name}/${lv.name}: lvcreate -s failed: ${(err as Error).message.trim()}`);
      continue;
    }
    let device: Disk;
    try {
      device = await openDisk(`/dev/${vg.name}/${name}`);
    } catch (err) {
      await lvm(['lvremove', '-f', `${vg.name}/${name}`]).catch(() => undefined);
      log(`crash-consistent (live read) of ${vg.name}/${lv.name}: cannot open its snapshot: ${(err as Error).message}`);
      continue;
    }
    taken.push({ vg: vg.name, name, lvId: lv.id.replaceAll('-', ''), device });
    overrides.push(...volumeOverrides(lv, device));
    log(`reading ${vg.name}/${lv.name} from the snapshot ${vg.name}/${name} (${extents} extents of ${vg.extentSize / 1048576} MiB for changes meanwhile)`);
  }
  if (taken.some((t) => t.vg === vg.name)) overrides.push(...captured);
}
