/** One slot of an MBR or EBR partition table, with LBAs made absolute. */
export interface MbrEntry {
  /** Slot index 0..3 in the sector it was read from. */
  slot: number;
  type: number;
  bootable: boolean;
  startLba: number;
  sectorCount: number;
}

export interface Mbr {
  /** The 32-bit disk signature at byte 440 (what `sfdisk` shows as the label id). */
  diskSignature: number;
  /** Non-empty slots (type ≠ 0 and size ≠ 0), in slot order. */
  entries: MbrEntry[];
  /** True when a slot has type 0xEE: the real table is a GPT. */
  protective: boolean;
}

export interface Ebr {
  /** The logical partition described by this EBR, or null for an empty link. */
  logical: MbrEntry | null;
  /** Absolute LBA of the next EBR in the chain, or null at the end. */
  nextEbrLba: number | null;
}

export const MBR_TYPE_PROTECTIVE = 0xee;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
const TABLE_OFFSET = 446;
const ENTRY_SIZE = 16;

export function isExtendedType(type: number): boolean {
  return EXTENDED_TYPES.has(type);
}

export function hasBootSignature(sector: Buffer): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

// A FAT or NTFS volume boot record also ends in 0x55AA; when such a filesystem
// covers the whole disk its BPB bytes must not be read as partition entries.
function looksLikeVolumeBootRecord(sector: Buffer): boolean {
  const ascii = (start: number, len: number): string => sector.toString('latin1', start, start + len);
  return ascii(3, 8) === 'NTFS    ' || ascii(54, 5) === 'FAT12' || ascii(54, 5) === 'FAT16' || ascii(82, 5) === 'FAT32';
}

function readSlots(sector: Buffer): { slot: number; type: number; bootFlag: number; relStart: number; count: number }[] {
  const slots = [];
  for (let slot = 0; slot < 4; slot++) {
    const at = TABLE_OFFSET + slot * ENTRY_SIZE;
    slots.push({
      slot,
      bootFlag: sector.readUInt8(at),
      type: sector.readUInt8(at + 4),
      relStart: sector.readUInt32LE(at + 8),
      count: sector.readUInt32LE(at + 12),
    });
  }
  return slots;
}

/**
 * Parses the partition table in sector 0. Returns null when the sector does not
 * hold an MBR (no 0x55AA, an invalid boot flag, or a FAT/NTFS boot sector of a
 * filesystem spanning the whole disk).
 */
export function parseMbr(sector0: Buffer): Mbr | null {
  if (!hasBootSignature(sector0)) return null;
  const slots = readSlots(sector0);
  // Linux applies the same test: a boot flag other than 0x00/0x80 means these bytes are not a table.
  if (slots.some((s) => s.bootFlag !== 0 && s.bootFlag !== 0x80)) return null;
  const entries = slots
    .filter((s) => s.type !== 0 && s.count !== 0)
    .map((s) => ({ slot: s.slot, type: s.type, bootable: s.bootFlag === 0x80, startLba: s.relStart, sectorCount: s.count }));
  // Same rule as libblkid: a FAT/NTFS boot sector wins, its BPB bytes would read as garbage entries.
  if (looksLikeVolumeBootRecord(sector0) && !entries.some((e) => e.type === MBR_TYPE_PROTECTIVE)) return null;
  return {
    diskSignature: sector0.readUInt32LE(440),
    entries,
    protective: entries.some((e) => e.type === MBR_TYPE_PROTECTIVE),
  };
}

/**
 * Parses one extended boot record. The logical partition's start is relative to
 * the EBR itself, the link to the next EBR is relative to the start of the
 * outermost extended partition; both come back absolute.
 */
export function parseEbr(sector: Buffer, ebrLba: number, extendedStartLba: number): Ebr {
  if (!hasBootSignature(sector)) {
    throw new Error(`EBR at LBA ${ebrLba} has no 0x55AA signature: the extended partition chain is damaged`);
  }
  const slots = readSlots(sector);
  const first = slots[0];
  const link = slots[1];
  let logical: MbrEntry | null = null;
  if (first && first.type !== 0 && first.count !== 0) {
    logical = {
      slot: 0,
      type: first.type,
      bootable: first.bootFlag === 0x80,
      startLba: ebrLba + first.relStart,
      sectorCount: first.count,
    };
  }
  const nextEbrLba = link && isExtendedType(link.type) && link.count !== 0 ? extendedStartLba + link.relStart : null;
  return { logical, nextEbrLba };
}
