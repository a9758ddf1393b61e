import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deviceNumbers, FerryError } from '@ferry/protocol';

const run = promisify(execFile);

/** A restore target: a whole block device, or an image file (created at the source size if missing). */
export interface Target {
  path: string;
  size: number;
  isDevice: boolean;
  file: FileHandle;
}

async function deviceSize(path: string, rdev: bigint): Promise<number> {
  const { major, minor } = deviceNumbers(rdev);
  const sectors = Number((await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors)) throw new FerryError('TARGET_UNWRITABLE', `cannot read the size of ${path} from sysfs`);
  return sectors * 512;
}

/** Looks at a target without opening it for writing, so every check can run before anything is written. */
export async function probeTarget(path: string): Promise<{ size: number; isDevice: boolean; exists: boolean }> {
  try {
    const st = await stat(path, { bigint: true });
    if (st.isBlockDevice()) return { size: await deviceSize(path, st.rdev), isDevice: true, exists: true };
    if (st.isFile()) return { size: Number(st.size), isDevice: false, exists: true };
    throw new FerryError('TARGET_UNWRITABLE', `${path} is neither a block device nor a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { size: 0, isDevice: false, exists: false };
    if (err instanceof FerryError) throw err;
    throw new FerryError('TARGET_UNWRITABLE', `cannot examine target ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Opens the target and clears it so that only data blocks need writing: an image file is truncated to zero
 * length and back (every byte reads as zero, no space used); a device is discarded when it supports it.
 * Returns whether the target now reads as zeroes everywhere. `keep` opens it as it is (a resumed restore).
 */
export async function openTarget(path: string, sourceSize: number, opts: { keep?: boolean } = {}): Promise<{ target: Target; zeroed: boolean; note?: string }> {
  const probe = await probeTarget(path);
  let file: FileHandle;
  try {
    file = await open(path, probe.exists ? 'r+' : 'w+', 0o600);
  } catch (err) {
    throw new FerryError('TARGET_UNWRITABLE', `cannot open target ${path} for writing: ${(err as Error).message}`, { cause: err });
  }
  const size = probe.exists ? probe.size : sourceSize;
  const target: Target = { path, size, isDevice: probe.isDevice, file };
  // A resumed restore keeps what was written and verified; its zero blocks are written, not assumed.
  if (opts.keep) return { target, zeroed: false };
  if (!probe.isDevice) {
    await file.truncate(0);
    await file.truncate(size);
    return { target, zeroed: true };
  }
  try {
    await run('blkdiscard', ['-f', path]);
    return { target, zeroed: false, note: `discarded ${path} before writing` };
  } catch {
    return { target, zeroed: false, note: `${path} does not support discard: blocks unused by the source were left as they were` };
  }
}

/** Drops the kernel's cached pages of a device so read-back verification reads the medium. */
export async function dropDeviceCache(t: Target): Promise<void> {
  if (t.isDevice) await run('blockdev', ['--flushbufs', t.path]).catch(() => undefined);
}

/** Writes at a byte offset of the target; a failing target is the environment, not a bug: say where. */
export async function writeAt(t: Target, data: Buffer, length: number, offset: number): Promise<void> {
  try {
    await t.file.write(data, 0, length, offset);
  } catch (err) {
    throw new FerryError('TARGET_UNWRITABLE', `writing ${length} bytes at offset ${offset} of ${t.path} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads back from the target (verification, GPT relocation), with the same error reporting as writeAt. */
export async function readAt(t: Target, into: Buffer, length: number, offset: number): Promise<void> {
  try {
    const { bytesRead } = await t.file.read(into, 0, length, offset);
    if (bytesRead !== length) throw new Error(`only ${bytesRead} of ${length} bytes could be read`);
  } catch (err) {
    throw new FerryError('TARGET_UNWRITABLE', `reading back ${length} bytes at offset ${offset} of ${t.path} failed: ${(err as Error).message}`, { cause: err });
  }
}
