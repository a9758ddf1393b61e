import { constants } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
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
   * bytes) an implementation may fill it and return a view of it instead of allocating; with `length +
   * DIRECT_IO_SLACK` bytes, the view may start further in, where the memory suits a direct read.
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

/**
 * Room a caller leaves after `length` in a read's `into` buffer so the disk can read directly (O_DIRECT) into
 * it: such reads need memory aligned to the device's DMA alignment (512 bytes on most devices), and a
 * buffer's address is not something JavaScript can ask for, so the disk finds an aligned start by trying.
 */
export const DIRECT_IO_SLACK = 4096;

// Buffers of this size come from malloc, which aligns to 16 bytes; 8 is the least any allocator gives.
const ADDRESS_STEP = 8;
const PROBE_BYTES = 8192;

/**
 * Reads large, aligned spans with O_DIRECT and everything else through the page cache. Direct reads cost the
 * device only the bytes asked for, and just while the read is in flight: no kernel readahead keeps the disk
 * busy after the agent's read returns (so the storage throttle's share is the disk's real busy time), and a
 * backup does not push the server's own working set out of its page cache.
 */
class DirectReader {
  /** Where, in each pooled buffer seen so far, an aligned view starts (null: none within the slack). */
  readonly #starts = new WeakMap<ArrayBufferLike, { byteOffset: number; start: number | null }>();
  #usable = true;

  constructor(
    readonly handle: FileHandle,
    /** The device's logical block size: direct reads start and end on it. */
    readonly blockSize: number,
  ) {}

  disable(): void {
    this.#usable = false;
  }

  /** A view of `into` for `length` bytes that the device can read into directly, or null. */
  async view(offset: number, length: number, into: Buffer): Promise<Buffer | null> {
    if (!this.#usable || offset % this.blockSize !== 0 || length % this.blockSize !== 0) return null;
    if (into.length < length + DIRECT_IO_SLACK) return null;
    let known = this.#starts.get(into.buffer);
    if (known?.byteOffset !== into.byteOffset) {
      known = { byteOffset: into.byteOffset, start: await this.#probe(into) };
      this.#starts.set(into.buffer, known);
    }
    return known.start === null ? null : into.subarray(known.start, known.start + length);
  }

  /**
   * Reads the device's first bytes into successive offsets of `into` until the kernel accepts the address.
   * The probe spans pages: Linux takes a read within one page at any address, so a short probe proves nothing.
   */
  async #probe(into: Buffer): Promise<number | null> {
    const bytes = Math.max(PROBE_BYTES, 2 * this.blockSize);
    for (let start = 0; start < DIRECT_IO_SLACK && start + bytes <= into.length; start += ADDRESS_STEP) {
      try {
        await this.handle.read(into, start, bytes, 0);
        return start;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EINVAL') continue;
        // Anything but a misaligned address: direct reads do not work here; the page cache does.
        this.#usable = false;
        return null;
      }
    }
    return null;
  }
}

async function openDirect(path: string, blockSize: number): Promise<DirectReader | null> {
  try {
    return new DirectReader(await open(path, constants.O_RDONLY | constants.O_DIRECT), blockSize);
  } catch {
    // Some file systems (tmpfs before Linux 6.6, FUSE) refuse O_DIRECT: read through the page cache.
    return null;
  }
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
  const direct = await openDirect(path, sectorSize);
  return {
    path,
    size,
    sectorSize,
    async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new Error(`read of ${length} bytes at offset ${offset} is outside ${path} (${size} bytes)`);
      }
      const aligned = into && direct ? await direct.view(offset, length, into) : null;
      const buf = aligned ?? (into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length));
      let done = 0;
      let viaDirect = aligned !== null;
      // A failing or shrinking disk is the environment, not a bug: say which disk and where.
      while (done < length) {
        // A direct read that came back short of a block boundary leaves the rest to the page cache.
        if (direct && done % direct.blockSize !== 0) viaDirect = false;
        let bytesRead: number;
        try {
          ({ bytesRead } = await (viaDirect && direct ? direct.handle : handle).read(buf, done, length - done, offset + done));
        } catch (err) {
          if (viaDirect && direct && (err as NodeJS.ErrnoException).code === 'EINVAL') {
            // The device wants more alignment than its reported block size (an image on a 4Kn disk).
            direct.disable();
            viaDirect = false;
            continue;
          }
          throw new FerryError('DISK_UNREADABLE', `reading ${path} at offset ${offset + done} failed: ${(err as Error).message}`, { cause: err });
        }
        if (bytesRead === 0) {
          throw new FerryError('DISK_UNREADABLE', `unexpected end of ${path} at offset ${offset + done} (expected ${size} bytes): did the disk shrink?`);
        }
        done += bytesRead;
      }
      return buf;
    },
    close: async () => {
      await direct?.handle.close();
      await handle.close();
    },
  };
}
