import { execFile } from 'node:child_process';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { deviceNumbers, FerryError } from '@ferry/protocol';
import type { DiskLayout } from './disk-layout.js';
import { mounts, placementOf } from './placement.js';
import { UsageMap, type Extent } from './usage-map.js';

const execFileP = promisify(execFile);

/** What an exclusion needs of a disk being backed up (SourceDisk satisfies it). */
export interface ExcludableDisk {
  key: string;
  layout: unknown;
  usage: UsageMap;
}

/** One path's outcome, for the job log. */
export interface ExclusionReport {
  path: string;
  files: number;
  /** Bytes taken out of what the cycle reads (already-unused bytes are not counted). */
  bytes: number;
  /** The source disk they were on, or why nothing was excluded. */
  disk?: string;
  skipped?: string;
}

/** A file's data extents in bytes of its filesystem, from FIEMAP. */
export interface FileExtent {
  physical: number;
  length: number;
  flags: string[];
}

// FIEMAP flags under which the bytes on disk are not (only) this file's data: leave those extents alone.
// shared: reflinked with another file; inline/tail: data sits in metadata; unknown_loc/delalloc: not yet placed.
const MAPPABLE_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs']);
const KEEP_FLAGS = new Set(['shared', 'inline', 'data_inline', 'tail', 'unknown_loc', 'delalloc', 'encoded', 'encrypted', 'not_aligned']);

/**
 * Parses `filefrag -e -v` output for `files`, in the order given: each file's extents in filesystem bytes.
 * Sections are matched by name so a file that vanished (an error on stderr, no section) shifts nothing.
 */
export function parseFilefrag(output: string, files: readonly string[]): Map<string, FileExtent[]> {
  const out = new Map<string, FileExtent[]>();
  const sections = output.split(/^(?=File size of )/m).filter((s) => s.startsWith('File size of '));
  let f = 0;
  for (const section of sections) {
    while (f < files.length && !section.startsWith(`File size of ${files[f]} is `)) f++;
    const file = files[f++];
    if (file === undefined) break;
    const unit = Number(/ blocks? of (\d+) bytes\)/.exec(section.slice(0, section.indexOf('\n')))?.[1]);
    if (!Number.isSafeInteger(unit) || unit <= 0) continue;
    const extents: FileExtent[] = [];
    for (const m of section.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+):\s*(?:\d+:)?\s*(\S*)\s*$/gm)) {
      extents.push({ physical: Number(m[1]) * unit, length: Number(m[3]) * unit, flags: (m[4] ?? '').split(',').filter((x) => x !== '') });
    }
    out.set(file, extents);
  }
  return out;
}

/** The regular files under `root` on the same filesystem (mount points below it are not entered). */
async function filesUnder(root: string, dev: bigint): Promise<string[]> {
  const out: string[] = [];
  const st = await lstat(root, { bigint: true });
  if (st.isFile()) return [root];
  if (!st.isDirectory()) return out;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isFile()) out.push(p);
      else if (e.isDirectory()) {
        const s = await lstat(p, { bigint: true });
        if (s.dev === dev) await walk(p);
      }
    }
  };
  await walk(root);
  return out;
}

/** FIEMAP extents of files, by batches of filefrag runs (Node has no ioctl of its own). */
async function fileExtents(files: readonly string[]): Promise<Map<string, FileExtent[]>> {
  const all = new Map<string, FileExtent[]>();
  for (let i = 0; i < files.length; i += 256) {
    const batch = files.slice(i, i + 256);
    let stdout: string;
    try {
      ({ stdout } = await execFileP('filefrag', ['-s', '-e', '-v', ...batch], { maxBuffer: 256 * 1024 * 1024 }));
    } catch (err) {
      // A file that vanished makes filefrag exit 1 after reporting the others.
      const e = err as { stdout?: string; code?: unknown };
      if (typeof e.stdout !== 'string' || e.code === 'ENOENT') {
        throw new FerryError('EXCLUSION_INVALID', `cannot run filefrag to find the blocks of excluded files: ${(err as Error).message}; install e2fsprogs`, { cause: err });
      }
      stdout = e.stdout;
    }
    for (const [f, ext] of parseFilefrag(stdout, batch)) all.set(f, ext);
  }
  return all;
}

/** The usage map without `ranges`: their bytes are then neither read nor sent. */
export function subtractExtents(usage: UsageMap, ranges: readonly Extent[]): UsageMap {
  const cut = new UsageMap();
  // Sorted first: the map appends in order, but inserting out of order shifts its arrays.
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) cut.add(r.start, r.end);
  const out = new UsageMap();
  const holes = cut.extents();
  let h = 0;
  for (const e of usage.extents()) {
    let at = e.start;
    while (h < holes.length && holes[h]!.end <= at) h++;
    for (let k = h; k < holes.length && holes[k]!.start < e.end; k++) {
      if (holes[k]!.start > at) out.add(at, holes[k]!.start);
      at = Math.max(at, holes[k]!.end);
    }
    if (at < e.end) out.add(at, e.end);
  }
  return out;
}

/**
 * Takes the data blocks of every file under `paths` (absolute paths on this running system) out of the
 * usage maps of `disks`, so a cycle neither reads nor sends them; after a restore those files exist with
 * their sizes and read as zeros. Paths on disks not being backed up, or on filesystems we cannot map,
 * are reported and skipped. Extents shared with other files (reflinks) or held inside metadata stay.
 */
export async function applyExclusions(paths: readonly string[], disks: ExcludableDisk[]): Promise<ExclusionReport[]> {
  const reports: ExclusionReport[] = [];
  const mounted = await mounts();
  for (const given of paths) {
    if (!path.isAbsolute(given)) throw new FerryError('EXCLUSION_INVALID', `exclusion ${given} is not an absolute path; give it as /path/on/the/source`);
    let root: string;
    let st;
    try {
      root = await realpath(given);
      st = await stat(root, { bigint: true });
    } catch (err) {
      reports.push({ path: given, files: 0, bytes: 0, skipped: `it does not exist (${(err as Error).message})` });
      continue;
    }
    const { major, minor } = deviceNumbers(st.dev);
    const fsType = mounted.find((m) => m.major === major && m.minor === minor)?.fsType ?? 'unknown';
    if (!MAPPABLE_FS.has(fsType)) {
      // btrfs reports its own logical addresses through FIEMAP, not disk offsets; others we have not checked.
      reports.push({ path: given, files: 0, bytes: 0, skipped: `it is on a ${fsType} filesystem; exclusions work on ext2/3/4 and XFS` });
      continue;
    }
    const place = await placementOf(major, minor);
    if (typeof place === 'string') {
      reports.push({ path: given, files: 0, bytes: 0, skipped: place });
      continue;
    }
    const disk = disks.find((d) => place.diskNames.includes(d.key));
    if (!disk) {
      reports.push({ path: given, files: 0, bytes: 0, skipped: `its ${place.describe} is on ${place.diskNames.join(' / ')}, which this cycle does not back up` });
      continue;
    }
    const files = await filesUnder(root, st.dev);
    const ranges: Extent[] = [];
    let problem: string | undefined;
    for (const extents of (await fileExtents(files)).values()) {
      for (const e of extents) {
        if (e.flags.some((f) => KEEP_FLAGS.has(f))) continue;
        const mapped = place.map(e.physical, e.physical + e.length, disk.layout as DiskLayout | undefined);
        if (typeof mapped === 'string') {
          problem = mapped;
          break;
        }
        ranges.push(...mapped);
      }
      if (problem) break;
    }
    if (problem) {
      reports.push({ path: given, files: 0, bytes: 0, disk: disk.key, skipped: problem });
      continue;
    }
    const before = disk.usage.usedBytes();
    disk.usage = subtractExtents(disk.usage, ranges);
    reports.push({ path: given, files: files.length, bytes: before - disk.usage.usedBytes(), disk: disk.key });
  }
  return reports;
}
