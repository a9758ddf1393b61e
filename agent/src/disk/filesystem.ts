import type { Disk } from './block-reader.js';

export type FilesystemType =
  | 'ext2'
  | 'ext3'
  | 'ext4'
  | 'swap'
  | 'xfs'
  | 'btrfs'
  | 'lvm2'
  | 'crypto_LUKS'
  | 'vfat'
  | 'ntfs'
  | 'unknown';

export interface FilesystemInfo {
  type: FilesystemType;
  label?: string;
  uuid?: string;
}

/** Enough to see every signature we know: btrfs keeps its superblock at 64 KiB. */
export const PROBE_BYTES = 0x10000 + 4096;
const SWAP_PAGE_SIZES = [4096, 8192, 16384, 65536];

const EXT_SUPERBLOCK = 1024;
const EXT_COMPAT_HAS_JOURNAL = 0x4;
const EXT_INCOMPAT_JOURNAL_DEV = 0x8;
// What ext3 understands; any other feature means only ext4 can mount it (blkid's rule).
const EXT3_INCOMPAT = 0x2 | 0x4 | 0x10;
const EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4;

function ascii(buf: Buffer, start: number, len: number): string {
  return buf.toString('latin1', start, start + len);
}

function cString(buf: Buffer, start: number, len: number): string | undefined {
  const raw = buf.subarray(start, start + len);
  const nul = raw.indexOf(0);
  const text = raw.subarray(0, nul === -1 ? raw.length : nul).toString('utf8').trim();
  return text === '' ? undefined : text;
}

/** A 16-byte big-endian UUID as used by ext, xfs, btrfs and swap; all-zero means "none". */
function uuidAt(buf: Buffer, start: number): string | undefined {
  const raw = buf.subarray(start, start + 16);
  if (raw.length < 16 || raw.every((b) => b === 0)) return undefined;
  const h = raw.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function info(type: FilesystemType, label: string | undefined, uuid: string | undefined): FilesystemInfo {
  const out: FilesystemInfo = { type };
  if (label !== undefined) out.label = label;
  if (uuid !== undefined) out.uuid = uuid;
  return out;
}

/** Size of the swap header page, or null when `head` is not the start of a swap area. */
export function swapHeaderBytes(head: Buffer): number | null {
  for (const page of SWAP_PAGE_SIZES) {
    if (head.length < page) break;
    const sig = ascii(head, page - 10, 10);
    if (sig === 'SWAP-SPACE') return page;
    if (sig !== 'SWAPSPACE2') continue;
    // Version 1 in either byte order (the area may come from a big-endian machine).
    const version = head.readUInt32LE(1024);
    if (version === 1 || version === 0x01000000) return page;
  }
  return null;
}

function probeSwap(head: Buffer): FilesystemInfo | null {
  const page = swapHeaderBytes(head);
  if (page === null) return null;
  if (ascii(head, page - 10, 10) === 'SWAP-SPACE') return info('swap', undefined, undefined);
  return info('swap', cString(head, 1052, 16), uuidAt(head, 1036));
}

function probeExt(head: Buffer): FilesystemInfo | null {
  if (head.length < EXT_SUPERBLOCK + 1024 || head.readUInt16LE(EXT_SUPERBLOCK + 56) !== 0xef53) return null;
  const sb = head.subarray(EXT_SUPERBLOCK, EXT_SUPERBLOCK + 1024);
  const logBlockSize = sb.readUInt32LE(24);
  const blocks = sb.readUInt32LE(4);
  // A stray 0xEF53 is not a filesystem: demand a plausible geometry too.
  if (logBlockSize > 6 || blocks === 0 || sb.readUInt32LE(32) === 0) return null;
  const compat = sb.readUInt32LE(92);
  const incompat = sb.readUInt32LE(96);
  const roCompat = sb.readUInt32LE(100);
  const label = cString(sb, 120, 16);
  const uuid = uuidAt(sb, 104);
  // An external journal device holds only a journal: nothing we can map, so read it all.
  if (incompat & EXT_INCOMPAT_JOURNAL_DEV) return info('unknown', label, uuid);
  let type: FilesystemType = 'ext2';
  if (incompat & ~EXT3_INCOMPAT || roCompat & ~EXT3_RO_COMPAT) type = 'ext4';
  else if (compat & EXT_COMPAT_HAS_JOURNAL) type = 'ext3';
  return info(type, label, uuid);
}

function probeXfs(head: Buffer): FilesystemInfo | null {
  if (ascii(head, 0, 4) !== 'XFSB') return null;
  return info('xfs', cString(head, 108, 12), uuidAt(head, 32));
}

function probeBtrfs(head: Buffer): FilesystemInfo | null {
  const sb = 0x10000;
  if (head.length < sb + 0x12b + 256 || ascii(head, sb + 0x40, 8) !== '_BHRfS_M') return null;
  return info('btrfs', cString(head, sb + 0x12b, 256), uuidAt(head, sb + 0x20));
}

function probeLvm(head: Buffer): FilesystemInfo | null {
  for (let sector = 0; sector < 4; sector++) {
    const at = sector * 512;
    if (head.length < at + 512 || ascii(head, at, 8) !== 'LABELONE' || ascii(head, at + 24, 8) !== 'LVM2 001') continue;
    const pvAt = at + head.readUInt32LE(at + 20);
    const raw = pvAt + 32 <= head.length ? ascii(head, pvAt, 32) : '';
    // LVM prints its 32-character ids in 6-4-4-4-4-4-6 groups.
    const uuid = /^[0-9A-Za-z]{32}$/.test(raw)
      ? [raw.slice(0, 6), raw.slice(6, 10), raw.slice(10, 14), raw.slice(14, 18), raw.slice(18, 22), raw.slice(22, 26), raw.slice(26)].join('-')
      : undefined;
    return info('lvm2', undefined, uuid);
  }
  return null;
}

function probeLuks(head: Buffer): FilesystemInfo | null {
  if (head.length < 208 || !head.subarray(0, 6).equals(Buffer.from('LUKS\xba\xbe', 'latin1'))) return null;
  return info('crypto_LUKS', undefined, cString(head, 168, 40));
}

function probeNtfs(head: Buffer): FilesystemInfo | null {
  return ascii(head, 3, 8) === 'NTFS    ' ? info('ntfs', undefined, undefined) : null;
}

function probeVfat(head: Buffer): FilesystemInfo | null {
  if (head.length < 512 || head[510] !== 0x55 || head[511] !== 0xaa) return null;
  const fat1x = ascii(head, 54, 5);
  const fat32 = ascii(head, 82, 5);
  return fat1x === 'FAT12' || fat1x === 'FAT16' || fat32 === 'FAT32' ? info('vfat', undefined, undefined) : null;
}

/**
 * Identifies the filesystem whose first bytes are `head` (read PROBE_BYTES, or
 * the whole region if smaller). When signatures of two different kinds are
 * present one of them is stale and we cannot tell which: that is reported as
 * `unknown`, because acting on the wrong one would skip live data.
 */
export function identifyFilesystem(head: Buffer): FilesystemInfo {
  const found = [
    probeSwap(head),
    probeXfs(head),
    probeExt(head),
    probeBtrfs(head),
    probeLvm(head),
    probeLuks(head),
    probeNtfs(head),
    probeVfat(head),
  ].filter((f): f is FilesystemInfo => f !== null);
  const [only] = found;
  return found.length === 1 && only ? only : { type: 'unknown' };
}

/** Detects the filesystem in the `size` bytes at `offset` of `disk`. */
export async function detectFilesystem(disk: Disk, offset: number, size: number): Promise<FilesystemInfo> {
  const length = Math.min(PROBE_BYTES, size, disk.size - offset);
  if (length <= 0) return { type: 'unknown' };
  return identifyFilesystem(await disk.read(offset, length));
}
