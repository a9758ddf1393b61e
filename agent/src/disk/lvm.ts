import type { Disk } from './block-reader.js';
import { detectFilesystem, type FilesystemInfo } from './filesystem.js';
import { num, parseLvmText, str, strList, type LvmSection } from './lvm-metadata.js';
import type { Extent } from './usage-map.js';

// On-disk LVM2 structures are little-endian; offsets in docs/spec/filesystems.md.
const SECTOR = 512;
const LABEL_SCAN_SECTORS = 4;
const MDA_MAGIC = ' LVM2 x[5A%r0N*>';
const MDA_HEADER_SIZE = 512;
const RAW_LOCN_IGNORED = 0x1;
const MAX_METADATA_BYTES = 64 * 1024 * 1024;

/** A stretch of a logical volume on the disk: stripe i of the segment begins at areas[i] (a byte offset of the disk). */
export interface LvSegmentLayout {
  /** Offset of the segment in the logical volume, bytes. */
  lvStart: number;
  length: number;
  /** Bytes per stripe chunk; equal to the length for a linear segment. */
  stripeSize: number;
  areas: number[];
}

export interface LogicalVolumeLayout {
  name: string;
  id: string;
  size: number;
  visible: boolean;
  /** The disk extents allocated to this volume on this disk. */
  allocated: Extent[];
  /** Present when every segment is linear or striped over physical volumes of this disk: the volume can be read through it. */
  segments?: LvSegmentLayout[];
  /** Why the volume's used blocks are not mapped (its allocated extents are then read whole). */
  readWhole?: string;
  filesystem?: FilesystemInfo;
}

export interface VolumeGroupLayout {
  name: string;
  id: string;
  seqno: number;
  extentSize: number;
  /** Unallocated extents of the whole group (every physical volume, also those on other disks). */
  freeExtents: number;
  /** Physical volumes of this group on this disk: where each starts and where its extent 0 lies. */
  pvs: { name: string; id: string; start: number; size: number; dataStart: number }[];
  /** Label, headers and metadata areas of those physical volumes: always read. */
  metadata: Extent[];
  lvs: LogicalVolumeLayout[];
  /** Set when a segment type we do not understand holds physical extents: its physical volumes are read whole. */
  readWhole?: string;
}

interface PvLabel {
  id: string;
  start: number;
  size: number;
  dataStart: number | null;
  mdas: { offset: number; size: number }[];
}

/** Reads the LVM2 label of a physical volume at `start` of `disk`, or null without one. */
export async function readPvLabel(disk: Disk, start: number, size: number): Promise<PvLabel | null> {
  const head = await disk.read(start, Math.min(LABEL_SCAN_SECTORS * SECTOR, size));
  for (let sector = 0; sector < LABEL_SCAN_SECTORS; sector++) {
    const at = sector * SECTOR;
    if (head.length < at + SECTOR) break;
    if (head.toString('latin1', at, at + 8) !== 'LABELONE' || head.toString('latin1', at + 24, at + 32) !== 'LVM2 001') continue;
    if (Number(head.readBigUInt64LE(at + 8)) !== sector) continue;
    let p = at + head.readUInt32LE(at + 20);
    if (p + 40 > at + SECTOR) return null;
    const id = head.toString('latin1', p, p + 32);
    p += 40;
    const lists: { offset: number; size: number }[][] = [[], []];
    for (const list of lists) {
      for (;;) {
        if (p + 16 > at + SECTOR) return null;
        const offset = Number(head.readBigUInt64LE(p));
        const len = Number(head.readBigUInt64LE(p + 8));
        p += 16;
        if (offset === 0) break;
        list.push({ offset, size: len });
      }
    }
    const [data, mdas] = lists as [{ offset: number }[], { offset: number; size: number }[]];
    return { id, start, size, dataStart: data[0]?.offset ?? null, mdas };
  }
  return null;
}

/** The newest metadata text of one metadata area, or null when the area holds none (or is marked ignored). */
async function readMetadataArea(disk: Disk, pv: PvLabel, mda: { offset: number; size: number }): Promise<string | null> {
  if (mda.offset + mda.size > pv.size || mda.size < MDA_HEADER_SIZE) return null;
  const base = pv.start + mda.offset;
  const hdr = await disk.read(base, MDA_HEADER_SIZE);
  if (hdr.toString('latin1', 4, 20) !== MDA_MAGIC) return null;
  const areaSize = Number(hdr.readBigUInt64LE(32));
  const offset = Number(hdr.readBigUInt64LE(40));
  const size = Number(hdr.readBigUInt64LE(48));
  const flags = hdr.readUInt32LE(60);
  if (offset === 0 || size === 0 || flags & RAW_LOCN_IGNORED) return null;
  if (areaSize !== mda.size || offset >= areaSize || size > MAX_METADATA_BYTES || size > areaSize - MDA_HEADER_SIZE) return null;
  // The area is a ring after its header: a copy that runs past the end continues just after the header.
  const first = Math.min(size, areaSize - offset);
  const parts = [await disk.read(base + offset, first)];
  if (first < size) parts.push(await disk.read(base + MDA_HEADER_SIZE, size - first));
  return Buffer.concat(parts).toString('utf8');
}

/** The one volume group section of a metadata text (the other top-level entries are settings). */
function vgSection(root: LvmSection): { name: string; vg: LvmSection } | null {
  for (const [name, vg] of root.sections) if (vg.sections.has('physical_volumes')) return { name, vg };
  return null;
}

const bare = (id: string): string => id.replaceAll('-', '');

/** The extent ranges one segment holds on physical volumes ("pv0", first extent), and how many extents each. */
function segmentPvAreas(seg: LvmSection, pvNames: Set<string>): { pv: string; pe: number }[] {
  const out: { pv: string; pe: number }[] = [];
  const scan = (v: unknown): void => {
    if (!Array.isArray(v)) return;
    for (let i = 0; i + 1 < v.length; i++) {
      const a: unknown = v[i];
      const b: unknown = v[i + 1];
      if (typeof a === 'string' && pvNames.has(a) && typeof b === 'number') out.push({ pv: a, pe: b });
    }
  };
  for (const v of seg.values.values()) scan(v);
  return out;
}

function describeVg(name: string, vg: LvmSection, label: Map<string, PvLabel>, seqno: number): VolumeGroupLayout | string {
  const extentSectors = num(vg, 'extent_size');
  if (extentSectors === undefined || extentSectors <= 0) return `volume group ${name} has no extent size`;
  const extentSize = extentSectors * SECTOR;
  const pvSections = vg.sections.get('physical_volumes')?.sections ?? new Map<string, LvmSection>();
  const pvs: VolumeGroupLayout['pvs'] = [];
  const pvStart = new Map<string, number>();
  let totalExtents = 0;
  for (const [pvName, pv] of pvSections) {
    totalExtents += num(pv, 'pe_count') ?? 0;
    const id = str(pv, 'id') ?? '';
    const found = label.get(bare(id));
    if (!found) continue;
    // The metadata's pe_start wins; the label's first data area says the same in every PV LVM2 writes.
    const peStart = (num(pv, 'pe_start') ?? (found.dataStart ?? 0) / SECTOR) * SECTOR;
    if (peStart <= 0) continue;
    pvs.push({ name: pvName, id, start: found.start, size: found.size, dataStart: found.start + peStart });
    pvStart.set(pvName, found.start + peStart);
  }
  const metadata: Extent[] = [];
  for (const p of pvs) {
    const l = label.get(bare(p.id));
    metadata.push({ start: p.start, end: p.dataStart });
    for (const m of l?.mdas ?? []) metadata.push({ start: p.start + m.offset, end: p.start + m.offset + m.size });
  }
  const layout: VolumeGroupLayout = { name, id: str(vg, 'id') ?? '', seqno, extentSize, freeExtents: 0, pvs, metadata, lvs: [] };
  const pvNames = new Set(pvSections.keys());
  let allocatedExtents = 0;
  for (const [lvName, lv] of vg.sections.get('logical_volumes')?.sections ?? new Map<string, LvmSection>()) {
    const out: LogicalVolumeLayout = { name: lvName, id: str(lv, 'id') ?? '', size: 0, visible: strList(lv, 'status').includes('VISIBLE'), allocated: [] };
    const segments: LvSegmentLayout[] = [];
    const why: string[] = [];
    for (const seg of [...lv.sections.values()].filter((s) => s.values.has('start_extent'))) {
      const type = str(seg, 'type') ?? '?';
      const start = (num(seg, 'start_extent') ?? 0) * extentSize;
      const count = num(seg, 'extent_count') ?? 0;
      out.size = Math.max(out.size, start + count * extentSize);
      const areas = segmentPvAreas(seg, pvNames);
      if (type !== 'striped') {
        if (areas.length > 0) layout.readWhole = `segment type "${type}" of ${lvName} holds physical extents we cannot follow`;
        why.push(`segment type "${type}"`);
        continue;
      }
      const stripes = Math.max(1, areas.length);
      const perArea = count / stripes;
      if (!Number.isInteger(perArea) || areas.length === 0) {
        layout.readWhole = `striped segment of ${lvName} has ${count} extents over ${areas.length} stripes`;
        continue;
      }
      allocatedExtents += count;
      const offsets: number[] = [];
      for (const a of areas) {
        const base = pvStart.get(a.pv);
        if (base === undefined) {
          why.push(`a segment on ${a.pv}, a physical volume on another disk`);
          continue;
        }
        const s = base + a.pe * extentSize;
        out.allocated.push({ start: s, end: s + perArea * extentSize });
        offsets.push(s);
      }
      const stripeSize = stripes === 1 ? count * extentSize : (num(seg, 'stripe_size') ?? 0) * SECTOR;
      if (stripeSize <= 0) why.push('a striped segment without a stripe size');
      if (offsets.length === stripes) segments.push({ lvStart: start, length: count * extentSize, stripeSize, areas: offsets });
    }
    if (!out.visible) why.push('a hidden (internal) volume');
    if (why.length > 0) out.readWhole = why.join(', ');
    else out.segments = segments.sort((a, b) => a.lvStart - b.lvStart);
    layout.lvs.push(out);
  }
  layout.freeExtents = Math.max(0, totalExtents - allocatedExtents);
  return layout;
}

/** One piece of an LV byte range: `length` bytes at LV offset `lvOffset` live at disk offset `diskOffset`. */
export interface LvPiece {
  lvOffset: number;
  diskOffset: number;
  length: number;
  /** The area (stripe) it lies in: its first byte on the disk. */
  area: number;
}

/** Where the bytes [start, end) of a logical volume lie on the disk, in LV order. */
export function* lvPieces(segments: readonly LvSegmentLayout[], start: number, end: number): Generator<LvPiece> {
  for (const seg of segments) {
    const from = Math.max(start, seg.lvStart);
    const to = Math.min(end, seg.lvStart + seg.length);
    let o = from - seg.lvStart;
    while (o < to - seg.lvStart) {
      const chunk = Math.floor(o / seg.stripeSize);
      const stripes = seg.areas.length;
      const within = o % seg.stripeSize;
      const length = Math.min(seg.stripeSize - within, to - seg.lvStart - o);
      const areaOffset = Math.floor(chunk / stripes) * seg.stripeSize + within;
      const area = seg.areas[chunk % stripes]!;
      yield { lvOffset: seg.lvStart + o, diskOffset: area + areaOffset, length, area };
      o += length;
    }
  }
}

/** A logical volume seen as a disk of its own, read through its segment mapping. */
export function logicalVolumeDisk(disk: Disk, lv: LogicalVolumeLayout & { segments: LvSegmentLayout[] }): Disk {
  const segments = lv.segments;
  return {
    path: `${disk.path} (LV ${lv.name})`,
    size: lv.size,
    sectorSize: disk.sectorSize,
    async read(offset: number, length: number): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > lv.size) throw new Error(`read of ${length} bytes at ${offset} is outside LV ${lv.name} (${lv.size} bytes)`);
      const out = Buffer.alloc(length);
      for (const p of lvPieces(segments, offset, offset + length)) (await disk.read(p.diskOffset, p.length)).copy(out, p.lvOffset - offset);
      return out;
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Disk extents of the LV byte extents `used` (in LV order), sorted by disk offset: a striped volume's pieces
 * alternate between areas, and a usage map fed in disk order only appends.
 */
export function lvDiskExtents(segments: readonly LvSegmentLayout[], used: Iterable<Extent>): Extent[] {
  const perArea = new Map<number, Extent[]>();
  for (const e of used) {
    for (const p of lvPieces(segments, e.start, e.end)) {
      let list = perArea.get(p.area);
      if (!list) perArea.set(p.area, (list = []));
      // Within one area disk offsets grow with LV offsets: touching pieces merge as they come.
      const last = list[list.length - 1];
      if (last?.end === p.diskOffset) last.end += p.length;
      else list.push({ start: p.diskOffset, end: p.diskOffset + p.length });
    }
  }
  return [...perArea.keys()].sort((a, b) => a - b).flatMap((k) => perArea.get(k)!);
}

export function isMappable(lv: LogicalVolumeLayout): lv is LogicalVolumeLayout & { segments: LvSegmentLayout[] } {
  return lv.segments !== undefined && lv.readWhole === undefined;
}

/**
 * The volume groups whose physical volumes lie in `regions` of `disk` (partitions or the whole disk that
 * carry an LVM2 label), each from its newest metadata copy, with the filesystem of every logical volume we
 * can read through. Regions with no readable metadata are listed in `unreadable`: they must be read whole.
 */
export async function readVolumeGroups(disk: Disk, regions: readonly { start: number; size: number }[]): Promise<{ groups: VolumeGroupLayout[]; unreadable: { start: number; why: string }[] }> {
  const labels = new Map<string, PvLabel>();
  const unreadable: { start: number; why: string }[] = [];
  const newest = new Map<string, { seqno: number; name: string; vg: LvmSection }>();
  for (const r of regions) {
    const label = await readPvLabel(disk, r.start, r.size);
    if (!label) {
      unreadable.push({ start: r.start, why: 'no LVM2 label' });
      continue;
    }
    labels.set(label.id, label);
    for (const mda of label.mdas) {
      const text = await readMetadataArea(disk, label, mda);
      if (text === null) continue;
      let parsed;
      try {
        parsed = vgSection(parseLvmText(text));
      } catch {
        continue;
      }
      if (!parsed) continue;
      const id = str(parsed.vg, 'id') ?? parsed.name;
      const seqno = num(parsed.vg, 'seqno') ?? 0;
      if ((newest.get(id)?.seqno ?? -1) < seqno) newest.set(id, { seqno, ...parsed });
    }
  }
  const groups: VolumeGroupLayout[] = [];
  const covered = new Set<string>();
  for (const { seqno, name, vg } of newest.values()) {
    const g = describeVg(name, vg, labels, seqno);
    if (typeof g === 'string') continue;
    for (const lv of g.lvs) {
      if (!isMappable(lv)) continue;
      lv.filesystem = await detectFilesystem(logicalVolumeDisk(disk, lv), 0, lv.size);
    }
    for (const p of g.pvs) covered.add(bare(p.id));
    groups.push(g);
  }
  for (const l of labels.values()) if (!covered.has(l.id)) unreadable.push({ start: l.start, why: 'no readable LVM2 metadata for this physical volume' });
  return { groups, unreadable };
}
