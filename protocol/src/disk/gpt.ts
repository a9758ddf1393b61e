import { crc32 } from './crc32.js';
import { MBR_TYPE_PROTECTIVE } from './mbr.js';

export const GPT_SIGNATURE = 'EFI PART';
const MIN_HEADER_SIZE = 92;
// Far above anything a partitioning tool creates (sgdisk tops out at a few MiB); a bigger
// claim is damage, and trusting it would make callers allocate and read absurd amounts.
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;

export interface GptHeader {
  revision: number;
  headerSize: number;
  headerCrc32: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  partitionEntryLba: number;
  numEntries: number;
  entrySize: number;
  entriesCrc32: number;
}

export interface GptEntry {
  /** 1-based partition number (entry index + 1), as Linux and sgdisk number them. */
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  attributes: bigint;
  name: string;
}

/** Context for error messages: which disk and which LBA the bytes came from. */
export interface GptSource {
  source?: string;
  /** The LBA the header was read from; when given, the header must claim it as its own. */
  lba?: number;
}

/** A write of `data` at byte `offset` of the target disk. */
export interface DiskWrite {
  offset: number;
  data: Buffer;
}

function where(src: GptSource): string {
  return `${src.source ?? 'GPT data'}${src.lba === undefined ? '' : ` at LBA ${src.lba}`}`;
}

function readSafeU64(buf: Buffer, offset: number, field: string, src: GptSource): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`GPT header on ${where(src)} has ${field} ${value}, beyond 2^53: the table is damaged`);
  }
  return Number(value);
}

/** Formats the 16 bytes at `offset` as a GUID, with the mixed endianness GPT uses. */
export function formatGuid(buf: Buffer, offset = 0): string {
  const hex = (start: number, end: number): string => buf.subarray(offset + start, offset + end).toString('hex');
  return [
    buf.readUInt32LE(offset).toString(16).padStart(8, '0'),
    buf.readUInt16LE(offset + 4).toString(16).padStart(4, '0'),
    buf.readUInt16LE(offset + 6).toString(16).padStart(4, '0'),
    hex(8, 10),
    hex(10, 16),
  ].join('-');
}

/** Inverse of formatGuid: the 16 on-disk bytes of a canonical GUID string. */
export function encodeGuid(guid: string): Buffer {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(guid);
  if (!m) throw new Error(`"${guid}" is not a GUID`);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(parseInt(m[1] ?? '', 16), 0);
  out.writeUInt16LE(parseInt(m[2] ?? '', 16), 4);
  out.writeUInt16LE(parseInt(m[3] ?? '', 16), 6);
  Buffer.from(`${m[4] ?? ''}${m[5] ?? ''}`, 'hex').copy(out, 8);
  return out;
}

function headerCrc(buf: Buffer, headerSize: number): number {
  const copy = Buffer.from(buf.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  return crc32(copy);
}

/** Parses and validates a GPT header (signature, size, CRC32, entry geometry). Throws on any damage. */
export function parseGptHeader(buf: Buffer, src: GptSource = {}): GptHeader {
  if (buf.length < MIN_HEADER_SIZE) {
    throw new Error(`GPT header on ${where(src)} is truncated: ${buf.length} bytes, need ${MIN_HEADER_SIZE}`);
  }
  if (buf.toString('latin1', 0, 8) !== GPT_SIGNATURE) {
    throw new Error(`no GPT header on ${where(src)}: signature "EFI PART" missing`);
  }
  const headerSize = buf.readUInt32LE(12);
  if (headerSize < MIN_HEADER_SIZE || headerSize > buf.length) {
    throw new Error(`GPT header on ${where(src)} declares size ${headerSize}: the table is damaged`);
  }
  const stored = buf.readUInt32LE(16);
  const computed = headerCrc(buf, headerSize);
  if (stored !== computed) {
    throw new Error(
      `GPT header CRC mismatch on ${where(src)}: stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)}; the table is damaged`,
    );
  }
  const header: GptHeader = {
    revision: buf.readUInt32LE(8),
    headerSize,
    headerCrc32: stored,
    myLba: readSafeU64(buf, 24, 'MyLBA', src),
    alternateLba: readSafeU64(buf, 32, 'AlternateLBA', src),
    firstUsableLba: readSafeU64(buf, 40, 'FirstUsableLBA', src),
    lastUsableLba: readSafeU64(buf, 48, 'LastUsableLBA', src),
    diskGuid: formatGuid(buf, 56),
    partitionEntryLba: readSafeU64(buf, 72, 'PartitionEntryLBA', src),
    numEntries: buf.readUInt32LE(80),
    entrySize: buf.readUInt32LE(84),
    entriesCrc32: buf.readUInt32LE(88),
  };
  if (header.entrySize < 128 || header.entrySize % 8 !== 0) {
    throw new Error(`GPT header on ${where(src)} declares entry size ${header.entrySize}: the table is damaged`);
  }
  if (header.numEntries * header.entrySize > MAX_ENTRY_ARRAY_BYTES) {
    throw new Error(
      `GPT header on ${where(src)} declares ${header.numEntries} entries of ${header.entrySize} bytes: implausibly large, the table is damaged`,
    );
  }
  if (src.lba !== undefined && header.myLba !== src.lba) {
    throw new Error(`GPT header on ${where(src)} claims to live at LBA ${header.myLba}: the table is damaged`);
  }
  return header;
}

/** Byte length of the partition entry array the header describes. */
export function gptEntryArrayBytes(header: GptHeader): number {
  return header.numEntries * header.entrySize;
}

/** Validates the entry array CRC and returns the used entries (type GUID not all zero). */
export function parseGptEntries(buf: Buffer, header: GptHeader, src: GptSource = {}): GptEntry[] {
  const bytes = gptEntryArrayBytes(header);
  if (buf.length < bytes) {
    throw new Error(`GPT entry array on ${where(src)} is truncated: ${buf.length} bytes, header declares ${bytes}`);
  }
  const computed = crc32(buf.subarray(0, bytes));
  if (computed !== header.entriesCrc32) {
    throw new Error(
      `GPT entry array CRC mismatch on ${where(src)}: header says 0x${header.entriesCrc32.toString(16)}, computed 0x${computed.toString(16)}; the table is damaged`,
    );
  }
  const entries: GptEntry[] = [];
  for (let i = 0; i < header.numEntries; i++) {
    const at = i * header.entrySize;
    const entry = buf.subarray(at, at + header.entrySize);
    if (entry.subarray(0, 16).every((b) => b === 0)) continue;
    const nameBytes = entry.subarray(56, Math.min(header.entrySize, 56 + 72));
    const name = nameBytes.toString('utf16le');
    const nul = name.indexOf('\0');
    const firstLba = readSafeU64(entry, 32, `StartingLBA of entry ${i + 1}`, src);
    const lastLba = readSafeU64(entry, 40, `EndingLBA of entry ${i + 1}`, src);
    if (lastLba < firstLba) {
      throw new Error(`GPT entry ${i + 1} on ${where(src)} ends (LBA ${lastLba}) before it starts (LBA ${firstLba})`);
    }
    entries.push({
      number: i + 1,
      typeGuid: formatGuid(entry, 0),
      uniqueGuid: formatGuid(entry, 16),
      firstLba,
      lastLba,
      attributes: entry.readBigUInt64LE(48),
      name: nul === -1 ? name : name.slice(0, nul),
    });
  }
  return entries;
}

function toSectorCount(n: bigint | number): number {
  const value = typeof n === 'bigint' ? n : BigInt(n);
  if (value <= 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`invalid disk size of ${n} sectors`);
  return Number(value);
}

function buildHeader(
  template: Buffer,
  header: GptHeader,
  sectorSize: number,
  fields: { myLba: number; alternateLba: number; lastUsableLba: number; partitionEntryLba: number },
): Buffer {
  const out = Buffer.alloc(sectorSize);
  template.copy(out, 0, 0, header.headerSize);
  out.writeBigUInt64LE(BigInt(fields.myLba), 24);
  out.writeBigUInt64LE(BigInt(fields.alternateLba), 32);
  out.writeBigUInt64LE(BigInt(fields.lastUsableLba), 48);
  out.writeBigUInt64LE(BigInt(fields.partitionEntryLba), 72);
  out.writeUInt32LE(headerCrc(out, header.headerSize), 16);
  return out;
}

/**
 * The writes that make a GPT disk image valid on a target of `newDiskSectors`
 * sectors (normally larger than the source): both headers point at the new last
 * LBA, the backup entry array and header move to the end of the target, and the
 * protective MBR grows. `header` may be the primary or, when the primary was
 * damaged, the backup header; the primary is rewritten either way.
 * Pass `protectiveMbr` (sector 0) to locate the 0xEE slot; without it slot 0 is assumed.
 */
export function relocateGptBackup(
  header: Buffer,
  entries: Buffer,
  newDiskSectors: bigint | number,
  sectorSize = 512,
  protectiveMbr?: Buffer,
): DiskWrite[] {
  const h = parseGptHeader(header, { source: 'the GPT header to relocate' });
  const parsed = parseGptEntries(entries, h, { source: 'the GPT entry array to relocate' });
  if (h.headerSize > sectorSize) {
    throw new Error(`GPT header of ${h.headerSize} bytes does not fit a ${sectorSize}-byte sector`);
  }
  const arrayBytes = gptEntryArrayBytes(h);
  const arraySectors = Math.ceil(arrayBytes / sectorSize);
  const table = Buffer.alloc(arraySectors * sectorSize);
  entries.copy(table, 0, 0, arrayBytes);

  const sectors = toSectorCount(newDiskSectors);
  const lastLba = sectors - 1;
  const backupEntriesLba = lastLba - arraySectors;
  const lastUsableLba = backupEntriesLba - 1;

  const fromPrimary = h.myLba < h.alternateLba;
  const primaryLba = fromPrimary ? h.myLba : h.alternateLba;
  const oldBackupLba = fromPrimary ? h.alternateLba : h.myLba;
  // The backup header does not say where the primary array lives; LBA 2 is where every tool puts it.
  const primaryEntriesLba = fromPrimary ? h.partitionEntryLba : primaryLba + 1;
  if (primaryEntriesLba + arraySectors > h.firstUsableLba) {
    throw new Error(
      `GPT primary entry array at LBA ${primaryEntriesLba} (${arraySectors} sectors) overlaps the first usable LBA ${h.firstUsableLba}`,
    );
  }
  const highestUsed = parsed.reduce((max, e) => Math.max(max, e.lastLba), h.firstUsableLba);
  if (lastUsableLba < highestUsed) {
    throw new Error(
      `target of ${sectors} sectors is too small for this GPT: partitions reach LBA ${highestUsed}, the backup table would start at LBA ${backupEntriesLba}`,
    );
  }

  const writes: DiskWrite[] = [
    {
      offset: primaryLba * sectorSize,
      data: buildHeader(header, h, sectorSize, {
        myLba: primaryLba,
        alternateLba: lastLba,
        lastUsableLba,
        partitionEntryLba: primaryEntriesLba,
      }),
    },
    { offset: primaryEntriesLba * sectorSize, data: table },
    { offset: backupEntriesLba * sectorSize, data: table },
    {
      offset: lastLba * sectorSize,
      data: buildHeader(header, h, sectorSize, {
        myLba: lastLba,
        alternateLba: primaryLba,
        lastUsableLba,
        partitionEntryLba: backupEntriesLba,
      }),
    },
  ];
  // A stale backup header left inside the new free space could later be mistaken for a live one.
  if (oldBackupLba !== lastLba && oldBackupLba < backupEntriesLba && oldBackupLba > highestUsed) {
    writes.push({ offset: oldBackupLba * sectorSize, data: Buffer.alloc(sectorSize) });
  }
  const mbrWrite = protectiveSizeWrite(sectors, oldBackupLba + 1, protectiveMbr);
  if (mbrWrite) writes.push(mbrWrite);
  return writes;
}

function protectiveSizeWrite(sectors: number, oldSectors: number, mbr: Buffer | undefined): DiskWrite | null {
  let slot = 0;
  if (mbr) {
    const types = [0, 1, 2, 3].map((s) => mbr[446 + s * 16 + 4] ?? 0);
    const found = types.indexOf(MBR_TYPE_PROTECTIVE);
    if (found === -1) return null;
    // A hybrid MBR (other slots in use) sizes its 0xEE slot on purpose; only a whole-disk one is ours to grow.
    const hybrid = types.some((t, s) => s !== found && t !== 0);
    if (hybrid && mbr.readUInt32LE(446 + found * 16 + 12) !== Math.min(oldSectors - 1, 0xffffffff)) return null;
    slot = found;
  }
  const data = Buffer.alloc(4);
  data.writeUInt32LE(Math.min(sectors - 1, 0xffffffff));
  return { offset: 446 + slot * 16 + 12, data };
}
