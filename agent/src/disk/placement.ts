import { readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { DiskLayout } from './disk-layout.js';
import { isMappable, lvPieces } from './lvm.js';
import type { Extent } from './usage-map.js';

async function readText(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Where a filesystem's bytes lie: a disk (by the names it may be opened under) and a mapping from filesystem offsets. */
export interface Placement {
  diskNames: string[];
  describe: string;
  /** The byte offset of the region on its disk (a partition or whole disk), or the id of the logical volume. */
  where: { start: number } | { lvId: string };
  map(start: number, end: number, layout: DiskLayout | undefined): Extent[] | string;
}

/** The names a whole disk may be backed up under: /dev/NAME, and an image file behind a loop device. */
async function diskNames(name: string): Promise<string[]> {
  const names = [`/dev/${name.replaceAll('!', '/')}`];
  const backing = await readText(`/sys/block/${name}/loop/backing_file`);
  // A loop device over a window of an image is not the image's offset 0: match it by its own name only.
  if (backing && (await readText(`/sys/block/${name}/loop/offset`)) === '0') names.push(backing);
  return names;
}

/** Resolves the block device numbered `major:minor` to a disk region or a logical volume. */
export async function placementOf(major: number, minor: number): Promise<Placement | string> {
  const sys = `/sys/dev/block/${major}:${minor}`;
  let real: string;
  try {
    real = await realpath(sys);
  } catch {
    return `device ${major}:${minor} is not a block device (not a disk-backed filesystem)`;
  }
  const name = path.basename(real);
  const dmUuid = await readText(`${sys}/dm/uuid`);
  if (dmUuid !== null) {
    const m = /^LVM-([0-9A-Za-z]{32})([0-9A-Za-z]{32})/.exec(dmUuid);
    if (!m) return `device ${name} is a device-mapper device that is not an LVM logical volume (${dmUuid})`;
    const lvId = m[2]!;
    const slaves = await readdir(`${sys}/slaves`).catch(() => [] as string[]);
    const names: string[] = [];
    for (const s of slaves) {
      const parent = (await readText(`/sys/class/block/${s}/partition`)) !== null ? path.basename(path.dirname(await realpath(`/sys/class/block/${s}`))) : s;
      names.push(...(await diskNames(parent)));
    }
    return {
      diskNames: names,
      where: { lvId },
      describe: `logical volume ${(await readText(`${sys}/dm/name`)) ?? name}`,
      map(start, end, layout) {
        const lv = layout?.volumeGroups?.flatMap((g) => g.lvs).find((l) => l.id.replaceAll('-', '') === lvId);
        if (!lv) return 'its logical volume is not in the LVM metadata of the disk';
        if (!isMappable(lv)) return `its logical volume is read whole (${lv.readWhole ?? 'not mapped'})`;
        return [...lvPieces(lv.segments, start, end)].map((p) => ({ start: p.diskOffset, end: p.diskOffset + p.length }));
      },
    };
  }
  const isPartition = (await readText(`${sys}/partition`)) !== null;
  const partStart = isPartition ? Number(await readText(`${sys}/start`)) * 512 : 0;
  const diskName = isPartition ? path.basename(path.dirname(real)) : name;
  return {
    diskNames: await diskNames(diskName),
    where: { start: partStart },
    describe: diskName === name ? `disk ${name}` : `partition ${name}`,
    map: (start, end) => [{ start: partStart + start, end: partStart + end }],
  };
}

/** One line of /proc/self/mountinfo: the device, the mount point, the filesystem type and whether it is writable. */
export interface Mount {
  major: number;
  minor: number;
  mountPoint: string;
  fsType: string;
  readWrite: boolean;
}

/** Parses /proc/self/mountinfo (fields: id parent major:minor root mountpoint options … - fstype source superoptions). */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    const [major, minor] = (f[2] ?? '').split(':').map(Number);
    if (dash < 6 || major === undefined || minor === undefined || !Number.isInteger(major) || !Number.isInteger(minor)) continue;
    // Octal escapes (\040 for a space) in paths.
    const mountPoint = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ major, minor, mountPoint, fsType: f[dash + 1] ?? '', readWrite: (f[5] ?? '').split(',').includes('rw') });
  }
  return out;
}

export async function mounts(): Promise<Mount[]> {
  return parseMountinfo((await readText('/proc/self/mountinfo')) ?? '');
}
