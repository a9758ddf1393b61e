import type { Disk } from './block-reader.js';
import { UsageMap } from './usage-map.js';

const SUPERBLOCK_OFFSET = 1024;
const BOOT_AREA_AND_SUPERBLOCK = 2048;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

const COMPAT_SPARSE_SUPER2 = 0x200;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_GDT_CSUM = 0x10;
const RO_COMPAT_METADATA_CSUM = 0x400;
const BG_BLOCK_UNINIT = 0x2;
const STATE_ERROR_FS = 0x2;

// Features that leave the block-group layout as described below. Anything else
// (compression, needs_recovery, journal_dev, meta_bg, or bits newer than this
// code) changes where metadata lives or makes the bitmaps untrustworthy.
const HANDLED_INCOMPAT = 0x2 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000;
const HANDLED_RO_COMPAT =
  0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000;
const INCOMPAT_NAMES: Record<number, string> = {
  0x1: 'compression',
  0x4: 'needs_recovery (the journal holds block allocations not yet in the bitmaps)',
  0x8: 'journal_dev',
  0x10: 'meta_bg',
};
const RO_COMPAT_NAMES: Record<number, string> = { 0x80: 'snapshot', 0x200: 'bigalloc', 0x800: 'replica' };

/** What the block-group layout code needs from an ext2/3/4 superblock. */
export interface ExtGeometry {
  blockSize: number;
  blocksCount: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  inodeSize: number;
  groupCount: number;
  descSize: number;
  gdtBlocks: number;
  reservedGdtBlocks: number;
  compat: number;
  incompat: number;
  roCompat: number;
  backupBgs: [number, number];
}

function featureNames(bits: number, names: Record<number, string>): string {
  const out: string[] = [];
  for (let i = 0; i < 32; i++) {
    const bit = 2 ** i;
    if (Math.floor(bits / bit) % 2 === 1) out.push(names[bit] ?? `0x${bit.toString(16)}`);
  }
  return out.join(', ');
}

/**
 * Reads the geometry from a 1024-byte superblock, or returns why this code
 * cannot map the filesystem. `regionSize` is the size of the partition holding it.
 */
export function parseExtSuperblock(sb: Buffer, regionSize: number): ExtGeometry | string {
  if (sb.length < 1024 || sb.readUInt16LE(56) !== 0xef53) return 'no ext2/3/4 superblock';
  const logBlockSize = sb.readUInt32LE(24);
  if (logBlockSize > 6) return `block size 2^(10+${logBlockSize}) is implausible`;
  const blockSize = 1024 << logBlockSize;
  const compat = sb.readUInt32LE(92);
  const incompat = sb.readUInt32LE(96);
  const roCompat = sb.readUInt32LE(100);
  const badIncompat = (incompat & ~HANDLED_INCOMPAT) >>> 0;
  if (badIncompat) return `unsupported incompat feature ${featureNames(badIncompat, INCOMPAT_NAMES)}`;
  const badRo = (roCompat & ~HANDLED_RO_COMPAT) >>> 0;
  if (badRo) return `unsupported ro_compat feature ${featureNames(badRo, RO_COMPAT_NAMES)}`;
  if (sb.readUInt16LE(58) & STATE_ERROR_FS) return 'the filesystem is marked as having errors; its bitmaps may be wrong';

  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = sb.readUInt32LE(4) + (is64 ? sb.readUInt32LE(336) * 2 ** 32 : 0);
  const firstDataBlock = sb.readUInt32LE(20);
  const blocksPerGroup = sb.readUInt32LE(32);
  const inodesPerGroup = sb.readUInt32LE(40);
  const revLevel = sb.readUInt32LE(76);
  const inodeSize = revLevel === 0 ? 128 : sb.readUInt16LE(88);
  const descSize = is64 ? sb.readUInt16LE(254) : 32;

  if (blocksCount === 0 || blocksCount * blockSize > regionSize) {
    return `filesystem of ${blocksCount} × ${blockSize} bytes does not fit its ${regionSize}-byte partition`;
  }
  if (firstDataBlock !== (blockSize === 1024 ? 1 : 0)) return `first data block ${firstDataBlock} is implausible`;
  if (blocksPerGroup === 0 || blocksPerGroup > blockSize * 8 || blocksPerGroup % 8 !== 0) {
    return `${blocksPerGroup} blocks per group is implausible`;
  }
  if (sb.readUInt32LE(36) !== blocksPerGroup) return 'clusters per group differs from blocks per group';
  if (inodesPerGroup === 0 || inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) {
    return `inode geometry (${inodesPerGroup} per group, ${inodeSize} bytes) is implausible`;
  }
  if (descSize < (is64 ? 64 : 32) || descSize > 1024 || (descSize & (descSize - 1)) !== 0) {
    return `group descriptor size ${descSize} is implausible`;
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  return {
    blockSize,
    blocksCount,
    firstDataBlock,
    blocksPerGroup,
    inodesPerGroup,
    inodeSize,
    groupCount,
    descSize,
    gdtBlocks: Math.ceil((groupCount * descSize) / blockSize),
    reservedGdtBlocks: sb.readUInt16LE(206),
    compat,
    incompat,
    roCompat,
    backupBgs: [sb.readUInt32LE(588), sb.readUInt32LE(592)],
  };
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

/** Whether group `g` carries a superblock backup and a copy of the descriptor table (e2fsprogs' rules). */
export function groupHasSuperBackup(geo: ExtGeometry, g: number): boolean {
  if (g === 0) return true;
  if (geo.compat & COMPAT_SPARSE_SUPER2) return g === geo.backupBgs[0] || g === geo.backupBgs[1];
  if (g === 1 || !(geo.roCompat & RO_COMPAT_SPARSE_SUPER)) return true;
  return g % 2 === 1 && (isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7));
}

interface GroupDesc {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  bitmapValid: boolean;
}

function readDescriptors(gdt: Buffer, geo: ExtGeometry): GroupDesc[] | string {
  const wide = geo.descSize >= 64 && (geo.incompat & INCOMPAT_64BIT) !== 0;
  const csum = (geo.roCompat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)) !== 0;
  const itableBlocks = Math.ceil((geo.inodesPerGroup * geo.inodeSize) / geo.blockSize);
  const descs: GroupDesc[] = [];
  for (let g = 0; g < geo.groupCount; g++) {
    const at = g * geo.descSize;
    const hi = (off: number): number => (wide ? gdt.readUInt32LE(at + off) * 2 ** 32 : 0);
    const d: GroupDesc = {
      group: g,
      blockBitmap: gdt.readUInt32LE(at) + hi(32),
      inodeBitmap: gdt.readUInt32LE(at + 4) + hi(36),
      inodeTable: gdt.readUInt32LE(at + 8) + hi(40),
      // The kernel honours BLOCK_UNINIT only when descriptors are checksummed; so do we.
      bitmapValid: !(csum && (gdt.readUInt16LE(at + 18) & BG_BLOCK_UNINIT)),
    };
    const inRange = (b: number, n = 1): boolean => b >= geo.firstDataBlock && b + n <= geo.blocksCount;
    if (!inRange(d.blockBitmap) || !inRange(d.inodeBitmap) || !inRange(d.inodeTable, itableBlocks)) {
      return `group ${g} descriptor points outside the filesystem`;
    }
    descs.push(d);
  }
  return descs;
}

/** Adds a run of set bits as byte extents: bit i stands for block `firstBlock + i`. */
function addBitmapRuns(map: UsageMap, bitmap: Buffer, bits: number, firstBlock: number, blockSize: number): void {
  const emit = (from: number, to: number): void => map.add((firstBlock + from) * blockSize, (firstBlock + to) * blockSize);
  let runStart = -1;
  for (let byte = 0, base = 0; base < bits; byte++, base += 8) {
    const b = bitmap[byte] ?? 0;
    // Whole bytes settle most of a bitmap without touching bits.
    if (base + 8 <= bits && (b === 0 || b === 0xff)) {
      if (b === 0xff && runStart < 0) runStart = base;
      if (b === 0 && runStart >= 0) {
        emit(runStart, base);
        runStart = -1;
      }
      continue;
    }
    for (let bit = 0; bit < 8 && base + bit < bits; bit++) {
      if (b & (1 << bit)) {
        if (runStart < 0) runStart = base + bit;
      } else if (runStart >= 0) {
        emit(runStart, base + bit);
        runStart = -1;
      }
    }
  }
  if (runStart >= 0) emit(runStart, bits);
}

/** Groups the valid bitmaps into runs of adjacent blocks, so flex_bg's packed bitmaps take one read per run. */
function batchBitmaps(descs: GroupDesc[], blockSize: number): GroupDesc[][] {
  const sorted = descs.filter((d) => d.bitmapValid).sort((a, b) => a.blockBitmap - b.blockBitmap);
  const maxBlocks = Math.max(1, Math.floor(MAX_BATCH_BYTES / blockSize));
  const batches: GroupDesc[][] = [];
  let current: GroupDesc[] = [];
  for (const d of sorted) {
    const first = current[0];
    const last = current[current.length - 1];
    if (first && last && d.blockBitmap === last.blockBitmap + 1 && d.blockBitmap - first.blockBitmap < maxBlocks) {
      current.push(d);
    } else {
      if (current.length > 0) batches.push(current);
      current = [d];
    }
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * The bytes an ext2/3/4 filesystem uses, as offsets from its first byte, taken
 * from its block bitmaps. Returns null when the filesystem has a feature or
 * state this code cannot map exactly; the caller must then read all of it.
 */
export async function ext4UsedExtents(disk: Disk, offset: number, size: number): Promise<UsageMap | null> {
  if (size < SUPERBLOCK_OFFSET + 1024) return null;
  const geo = parseExtSuperblock(await disk.read(offset + SUPERBLOCK_OFFSET, 1024), size);
  if (typeof geo === 'string') return null;
  const { blockSize, blocksPerGroup, firstDataBlock, blocksCount } = geo;

  const gdtStart = (firstDataBlock + 1) * blockSize;
  const gdtBytes = geo.groupCount * geo.descSize;
  if (gdtStart + gdtBytes > blocksCount * blockSize) return null;
  const descs = readDescriptors(await disk.read(offset + gdtStart, gdtBytes), geo);
  if (typeof descs === 'string') return null;

  const used = new UsageMap();
  used.add(0, BOOT_AREA_AND_SUPERBLOCK);
  for (const batch of batchBitmaps(descs, blockSize)) {
    const first = batch[0];
    if (!first) continue;
    const data = await disk.read(offset + first.blockBitmap * blockSize, batch.length * blockSize);
    for (const d of batch) {
      const groupStart = firstDataBlock + d.group * blocksPerGroup;
      const bits = Math.min(blocksPerGroup, blocksCount - groupStart);
      const at = (d.blockBitmap - first.blockBitmap) * blockSize;
      addBitmapRuns(used, data.subarray(at, at + blockSize), bits, groupStart, blockSize);
    }
  }

  // Metadata is in use whatever the bitmaps say, and a BLOCK_UNINIT group has
  // no bitmap on disk: its only used blocks are the metadata it hosts.
  const itableBytes = Math.ceil((geo.inodesPerGroup * geo.inodeSize) / blockSize) * blockSize;
  const backupBytes = (1 + geo.gdtBlocks + geo.reservedGdtBlocks) * blockSize;
  for (const d of descs) {
    const groupStart = firstDataBlock + d.group * blocksPerGroup;
    const groupEnd = Math.min(groupStart + blocksPerGroup, blocksCount) * blockSize;
    if (groupHasSuperBackup(geo, d.group)) used.add(groupStart * blockSize, Math.min(groupStart * blockSize + backupBytes, groupEnd));
    used.add(d.blockBitmap * blockSize, (d.blockBitmap + 1) * blockSize);
    used.add(d.inodeBitmap * blockSize, (d.inodeBitmap + 1) * blockSize);
    used.add(d.inodeTable * blockSize, d.inodeTable * blockSize + itableBytes);
  }
  return used;
}
