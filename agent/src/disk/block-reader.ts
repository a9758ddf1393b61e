import { open, readFile, stat } from 'node:fs/promises';
import { deviceNumbers, FerryError } from '@ferry/protocol';

/** A source disk (block device or image file) opened read-only. */
export interface Disk {
  path: string;
  /** Size in bytes. */
  size: number;
  /** Logical sector size: the unit of partition-table LBAs. */
  sectorSize: number;
  /**
   * Reads exactly `length` bytes at `offset`; throws if that runs past the end. With `into` (at least `length`
   * bytes) an implementation may fill it and return a view of it instead of allocating.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export { deviceNumbers };

async function readSysNumber(file: string): Promise<number | null> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isSafeInteger(n) ? n : null;
  } catch {
    return null;
  }
}

// fstat reports 0 bytes for block devices; sysfs knows the size (always in 512-byte units).
async function blockDeviceGeometry(path: string, rdev: bigint): Promise<{ size: number; sectorSize: number }> {
  const { major, minor } = deviceNumbers(rdev);
  const sys = `/sys/dev/block/${major}:${minor}`;
  const sectors = await readSysNumber(`${sys}/size`);
  if (sectors === null) {
    throw new Error(`cannot determine the size of block device ${path}: ${sys}/size is unreadable`);
  }
  // A partition has no queue/ of its own; its parent disk's applies.
  const sectorSize =
    (await readSysNumber(`${sys}/queue/logical_block_size`)) ??
    (await readSysNumber(`${sys}/../queue/logical_block_size`)) ??
    512;
  return { size: sectors * 512, sectorSize };
}

/** Opens a block device or disk image for reading. */
export async function openDisk(path: string): Promise<Disk> {
  const st = await stat(path, { bigint: true });
  let geometry: { size: number; sectorSize: number };
  if (st.isBlockDevice()) geometry = await blockDeviceGeometry(path, st.rdev);
  else if (st.isFile()) geometry = { size: Number(st.size), sectorSize: 512 };
  else throw new Error(`${path} is neither a block device nor a regular file`);

  const handle = await open(path, 'r');
  const { size, sectorSize } = geometry;
  return {
    path,
    size,
    sectorSize,
    async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new Error(`read of ${length} bytes at offset ${offset} is outside ${path} (${size} bytes)`);
      }
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      let done = 0;
      // A failing or shrinking disk is the environment, not a bug: say which disk and where.
      while (done < length) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(buf, done, length - done, offset + done));
        } catch (err) {
          throw new FerryError('DISK_UNREADABLE', `reading ${path} at offset ${offset + done} failed: ${(err as Error).message}`, { cause: err });
        }
        if (bytesRead === 0) {
          throw new FerryError('DISK_UNREADABLE', `unexpected end of ${path} at offset ${offset + done} (expected ${size} bytes): did the disk shrink?`);
        }
        done += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}
