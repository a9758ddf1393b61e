import type { Disk } from './block-reader.js';
import { UsageMap } from './usage-map.js';

// On-disk XFS structures are big-endian. Offsets are those of xfs_format.h (docs/spec/filesystems.md).
const SB_MAGIC = 0x58465342; // "XFSB"
const AGF_MAGIC = 0x58414746; // "XAGF"
const BNO_MAGIC_V4 = 0x41425442; // "ABTB"
const BNO_MAGIC_V5 = 0x41423342; // "AB3B"
const SHORT_HDR_V4 = 16;
const SHORT_HDR_V5 = 56;
const NULL_AGBLOCK = 0xffffffff;
const MAX_LEVELS = 9;

/** What the free-space walk needs from an XFS superblock. */
export interface XfsGeometry {
  blockSize: number;
  sectorSize: number;
  dataBlocks: number;
  agBlocks: number;
  agCount: number;
  version: 4 | 5;
}

/** Reads the geometry from the primary superblock, or returns why this code cannot map the filesystem. */
export function parseXfsSuperblock(sb: Buffer, regionSize: number): XfsGeometry | string {
  if (sb.length < 256 || sb.readUInt32BE(0) !== SB_MAGIC) return 'no XFS superblock';
  const blockSize = sb.readUInt32BE(4);
  const dataBlocks = Number(sb.readBigUInt64BE(8));
  const agBlocks = sb.readUInt32BE(84);
  const agCount = sb.readUInt32BE(88);
  const version = sb.readUInt16BE(100) & 0xf;
  const sectorSize = sb.readUInt16BE(102);
  const pow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
  if (version !== 4 && version !== 5) return `XFS superblock version ${version} is not 4 or 5`;
  if (!pow2(blockSize) || blockSize < 512 || blockSize > 65536) return `block size ${blockSize} is implausible`;
  if (!pow2(sectorSize) || sectorSize < 512 || sectorSize > blockSize) return `sector size ${sectorSize} is implausible`;
  if (sb[126] !== 0) return 'mkfs.xfs did not finish (sb_inprogress is set)';
  if (agBlocks === 0 || agCount === 0 || dataBlocks > agBlocks * agCount || dataBlocks <= agBlocks * (agCount - 1)) {
    return `${agCount} allocation groups of ${agBlocks} blocks do not add up to ${dataBlocks} blocks`;
  }
  if (dataBlocks * blockSize > regionSize) {
    return `filesystem of ${dataBlocks} × ${blockSize} bytes does not fit its ${regionSize}-byte partition`;
  }
  return { blockSize, sectorSize, dataBlocks, agBlocks, agCount, version };
}

/** Free extents [agbno, agbno+len) of one allocation group, from its by-block-number free-space B+tree. */
async function agFreeExtents(disk: Disk, offset: number, geo: XfsGeometry, ag: number): Promise<{ start: number; end: number }[] | string> {
  const { blockSize, sectorSize, version } = geo;
  const agStart = offset + ag * geo.agBlocks * blockSize;
  const agf = await disk.read(agStart + sectorSize, sectorSize);
  if (agf.readUInt32BE(0) !== AGF_MAGIC || agf.readUInt32BE(8) !== ag) return `AG ${ag} has no AGF header`;
  const agLength = agf.readUInt32BE(12);
  const expectLength = Math.min(geo.agBlocks, geo.dataBlocks - ag * geo.agBlocks);
  if (agLength !== expectLength) return `AG ${ag} claims ${agLength} blocks, the superblock says ${expectLength}`;
  const root = agf.readUInt32BE(16);
  const levels = agf.readUInt32BE(28);
  const freeBlocks = agf.readUInt32BE(52);
  if (levels < 1 || levels > MAX_LEVELS || root >= agLength) return `AG ${ag} free-space tree root ${root} (${levels} levels) is implausible`;

  const magic = version === 5 ? BNO_MAGIC_V5 : BNO_MAGIC_V4;
  const hdr = version === 5 ? SHORT_HDR_V5 : SHORT_HDR_V4;
  const readNode = async (agbno: number, level: number): Promise<Buffer | string> => {
    if (agbno >= agLength) return `AG ${ag} free-space tree points at block ${agbno}, past the AG`;
    const b = await disk.read(agStart + agbno * blockSize, blockSize);
    if (b.readUInt32BE(0) !== magic || b.readUInt16BE(4) !== level) return `AG ${ag} block ${agbno} is not a level-${level} free-space tree block`;
    if (version === 5 && Number(b.readBigUInt64BE(16)) !== ((ag * geo.agBlocks + agbno) * blockSize) / 512) {
      return `AG ${ag} block ${agbno} of the free-space tree records another address`;
    }
    return b;
  };

  // Down the leftmost pointers to the first leaf, then right along the leaf chain: leaves are in block order.
  let agbno = root;
  const nodeMax = Math.floor((blockSize - hdr) / 12);
  for (let level = levels - 1; level > 0; level--) {
    const node = await readNode(agbno, level);
    if (typeof node === 'string') return node;
    if (node.readUInt16BE(6) === 0 || node.readUInt16BE(6) > nodeMax) return `AG ${ag} free-space tree node ${agbno} has no valid records`;
    agbno = node.readUInt32BE(hdr + nodeMax * 8);
  }
  const leafMax = Math.floor((blockSize - hdr) / 8);
  const free: { start: number; end: number }[] = [];
  let total = 0;
  let last = 0;
  const seen = new Set<number>();
  while (agbno !== NULL_AGBLOCK) {
    if (seen.has(agbno)) return `AG ${ag} free-space leaf chain loops at block ${agbno}`;
    seen.add(agbno);
    const leaf = await readNode(agbno, 0);
    if (typeof leaf === 'string') return leaf;
    const n = leaf.readUInt16BE(6);
    if (n > leafMax) return `AG ${ag} free-space leaf ${agbno} claims ${n} records`;
    for (let i = 0; i < n; i++) {
      const start = leaf.readUInt32BE(hdr + i * 8);
      const len = leaf.readUInt32BE(hdr + i * 8 + 4);
      // Out of order or overlapping records mean a damaged tree: trusting it could skip live data.
      if (len === 0 || start < last || start + len > agLength) return `AG ${ag} free-space record [${start}, +${len}) is out of order or range`;
      free.push({ start, end: start + len });
      last = start + len;
      total += len;
    }
    agbno = leaf.readUInt32BE(12);
  }
  if (total !== freeBlocks) return `AG ${ag} free-space tree holds ${total} blocks, its AGF says ${freeBlocks}`;
  return free;
}

/**
 * The bytes an XFS filesystem uses, as offsets from its first byte: everything its free-space B+trees
 * (by block number) do not list, so the log, inodes, btrees and the AG free lists are all kept. Returns
 * null when the filesystem is damaged or of a kind this code cannot map; the caller must then read all of it.
 */
export async function xfsUsedExtents(disk: Disk, offset: number, size: number): Promise<UsageMap | null> {
  const reason = await xfsUsage(disk, offset, size);
  return typeof reason === 'string' ? null : reason;
}

/** As xfsUsedExtents, with the reason when the filesystem cannot be mapped. */
export async function xfsUsage(disk: Disk, offset: number, size: number): Promise<UsageMap | string> {
  if (size < 512) return 'region too small for XFS';
  const geo = parseXfsSuperblock(await disk.read(offset, 512), size);
  if (typeof geo === 'string') return geo;
  const used = new UsageMap();
  const bs = geo.blockSize;
  for (let ag = 0; ag < geo.agCount; ag++) {
    const agFirst = ag * geo.agBlocks;
    const agEnd = Math.min(agFirst + geo.agBlocks, geo.dataBlocks);
    const free = await agFreeExtents(disk, offset, geo, ag);
    if (typeof free === 'string') return free;
    let at = agFirst;
    for (const f of free) {
      used.add(at * bs, (agFirst + f.start) * bs);
      at = agFirst + f.end;
    }
    used.add(at * bs, agEnd * bs);
  }
  return used;
}
