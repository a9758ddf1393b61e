import {
  GPT_SIGNATURE,
  gptEntryArrayBytes,
  isExtendedType,
  parseEbr,
  parseGptEntries,
  parseGptHeader,
  parseMbr,
} from '@ferry/protocol';
import type { GptEntry, GptHeader, Mbr } from '@ferry/protocol';
import type { Disk } from './block-reader.js';
import type { FilesystemInfo } from './filesystem.js';

export interface PartitionInfo {
  /** The number Linux gives the partition (sda<number>). */
  number: number;
  startByte: number;
  sizeBytes: number;
  /** MBR type as two hex digits ("83"), or the GPT type GUID. */
  type: string;
  /** GPT partition name. */
  name?: string;
  /** GPT unique partition GUID. */
  uuid?: string;
  /** MBR only: the extended container holds no filesystem, only the EBR chain and logical partitions. */
  kind?: 'primary' | 'extended' | 'logical';
  bootable?: boolean;
  filesystem: FilesystemInfo;
}

/** Where the GPT structures are, in LBAs of `sectorSize`. */
export interface GptLocation {
  headerLba: number;
  entriesLba: number;
  backupLba: number;
  backupEntriesLba: number;
  entryArrayBytes: number;
  firstUsableLba: number;
  lastUsableLba: number;
  /** The primary header or its entries were damaged, so the table was read from the backup. */
  fromBackup: boolean;
}

export interface PartitionTable {
  type: 'mbr' | 'gpt' | 'none';
  /** MBR disk signature ("0x1234abcd") or GPT disk GUID. */
  id?: string;
  partitions: PartitionInfo[];
  gpt?: GptLocation;
  /** Byte offsets of the extended boot records of an MBR's extended-partition chain. */
  ebrOffsets?: number[];
}

// More logical partitions than any tool allows; beyond this the chain is looping or garbage.
const MAX_LOGICAL_PARTITIONS = 256;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function hasGptSignature(disk: Disk, lba: number, sectorSize: number): Promise<boolean> {
  if ((lba + 1) * sectorSize > disk.size) return false;
  return (await disk.read(lba * sectorSize, 8)).toString('latin1') === GPT_SIGNATURE;
}

async function readGptAt(disk: Disk, lba: number, sectorSize: number): Promise<{ header: GptHeader; entries: GptEntry[] }> {
  const src = { source: disk.path, lba };
  const header = parseGptHeader(await disk.read(lba * sectorSize, sectorSize), src);
  const bytes = gptEntryArrayBytes(header);
  if (header.partitionEntryLba * sectorSize + bytes > disk.size) {
    throw new Error(`GPT header on ${disk.path} at LBA ${lba} puts its entries beyond the end of the disk`);
  }
  const entries = parseGptEntries(await disk.read(header.partitionEntryLba * sectorSize, bytes), header, {
    source: disk.path,
    lba: header.partitionEntryLba,
  });
  return { header, entries };
}

async function backupEntriesLba(disk: Disk, primary: GptHeader, sectorSize: number): Promise<number> {
  try {
    return (await readGptAt(disk, primary.alternateLba, sectorSize)).header.partitionEntryLba;
  } catch {
    // A missing or damaged backup is rebuilt on restore; cover where it belongs.
    return primary.alternateLba - Math.ceil(gptEntryArrayBytes(primary) / sectorSize);
  }
}

async function readGpt(disk: Disk, sectorSize: number, tryBackup: boolean): Promise<PartitionTable> {
  const lastLba = Math.floor(disk.size / sectorSize) - 1;
  let primaryError: string;
  try {
    const { header, entries } = await readGptAt(disk, 1, sectorSize);
    return gptTable(header, entries, sectorSize, {
      headerLba: 1,
      entriesLba: header.partitionEntryLba,
      backupLba: header.alternateLba,
      backupEntriesLba: await backupEntriesLba(disk, header, sectorSize),
      fromBackup: false,
    });
  } catch (err) {
    primaryError = message(err);
  }
  if (!tryBackup) throw new Error(primaryError);
  try {
    const { header, entries } = await readGptAt(disk, lastLba, sectorSize);
    return gptTable(header, entries, sectorSize, {
      headerLba: header.alternateLba,
      entriesLba: header.alternateLba + 1,
      backupLba: lastLba,
      backupEntriesLba: header.partitionEntryLba,
      fromBackup: true,
    });
  } catch (err) {
    throw new Error(`no valid GPT on ${disk.path}: primary: ${primaryError}; backup: ${message(err)}`);
  }
}

function gptTable(
  header: GptHeader,
  entries: GptEntry[],
  sectorSize: number,
  where: Omit<GptLocation, 'entryArrayBytes' | 'firstUsableLba' | 'lastUsableLba'>,
): PartitionTable {
  return {
    type: 'gpt',
    id: header.diskGuid,
    gpt: {
      ...where,
      entryArrayBytes: gptEntryArrayBytes(header),
      firstUsableLba: header.firstUsableLba,
      lastUsableLba: header.lastUsableLba,
    },
    partitions: entries.map((e) => ({
      number: e.number,
      startByte: e.firstLba * sectorSize,
      sizeBytes: (e.lastLba - e.firstLba + 1) * sectorSize,
      type: e.typeGuid,
      name: e.name,
      uuid: e.uniqueGuid,
      filesystem: { type: 'unknown' },
    })),
  };
}

function hexType(type: number): string {
  return type.toString(16).padStart(2, '0');
}

async function readMbrTable(disk: Disk, mbr: Mbr, sectorSize: number): Promise<PartitionTable> {
  const partitions: PartitionInfo[] = [];
  const ebrOffsets: number[] = [];
  for (const e of mbr.entries) {
    const extended = isExtendedType(e.type);
    partitions.push({
      number: e.slot + 1,
      startByte: e.startLba * sectorSize,
      sizeBytes: e.sectorCount * sectorSize,
      type: hexType(e.type),
      kind: extended ? 'extended' : 'primary',
      bootable: e.bootable,
      filesystem: { type: 'unknown' },
    });
    if (!extended) continue;
    let next: number | null = e.startLba;
    let number = 5;
    const seen = new Set<number>();
    while (next !== null) {
      if (seen.has(next) || seen.size >= MAX_LOGICAL_PARTITIONS || (next + 1) * sectorSize > disk.size) {
        throw new Error(`extended partition chain of ${disk.path} is damaged: EBR link to LBA ${next} loops or leaves the disk`);
      }
      seen.add(next);
      ebrOffsets.push(next * sectorSize);
      let ebr;
      try {
        ebr = parseEbr(await disk.read(next * sectorSize, sectorSize), next, e.startLba);
      } catch (err) {
        throw new Error(`extended partition chain of ${disk.path} is damaged: ${message(err)}`);
      }
      if (ebr.logical) {
        partitions.push({
          number: number++,
          startByte: ebr.logical.startLba * sectorSize,
          sizeBytes: ebr.logical.sectorCount * sectorSize,
          type: hexType(ebr.logical.type),
          kind: 'logical',
          bootable: ebr.logical.bootable,
          filesystem: { type: 'unknown' },
        });
      }
      next = ebr.nextEbrLba;
    }
  }
  return { type: 'mbr', id: `0x${mbr.diskSignature.toString(16).padStart(8, '0')}`, partitions, ebrOffsets };
}

/** Reads the MBR or GPT of `disk` (filesystems not yet probed), and the sector size its LBAs use. */
export async function readPartitionTable(disk: Disk): Promise<{ table: PartitionTable; sectorSize: number }> {
  const none = { table: { type: 'none' as const, partitions: [] }, sectorSize: disk.sectorSize };
  if (disk.size < 512) return none;
  const mbr = parseMbr(await disk.read(0, 512));
  if (mbr && !mbr.protective && mbr.entries.length > 0) {
    return { table: await readMbrTable(disk, mbr, disk.sectorSize), sectorSize: disk.sectorSize };
  }
  const emptyMbr = mbr && !mbr.protective ? { table: await readMbrTable(disk, mbr, disk.sectorSize), sectorSize: disk.sectorSize } : null;
  // An image of a 4Kn disk reads as a 512-byte-sector file: look for the GPT header at both sizes.
  const sizes = [disk.sectorSize, ...[512, 4096].filter((s) => s !== disk.sectorSize)];
  for (const ss of sizes) {
    if (!(await hasGptSignature(disk, 1, ss))) continue;
    try {
      return { table: await readGpt(disk, ss, mbr?.protective === true), sectorSize: ss };
    } catch (err) {
      // Behind an MBR with no partitions, a GPT that does not parse is a leftover, not the table.
      if (emptyMbr) return emptyMbr;
      throw err;
    }
  }
  if (emptyMbr) return emptyMbr;
  if (mbr) {
    // Protective MBR but the primary header is gone: only the backup can tell us the partitions.
    const errors: string[] = [];
    for (const ss of sizes) {
      try {
        return { table: await readGpt(disk, ss, true), sectorSize: ss };
      } catch (err) {
        errors.push(message(err));
      }
    }
    throw new Error(errors.join('; '));
  }
  return none;
}
