import { open, type FileHandle, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** fsync a directory so a rename or create inside it survives power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Fills a temporary file (`fill`), fsyncs it, renames it over the target and fsyncs the directory: a reader
 * sees no file or the whole one, also after a power cut.
 */
export async function writeDurable(file: string, fill: (fh: FileHandle) => Promise<void>, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fill(fh);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Write to a temporary name, fsync, rename over the target, fsync the directory: all or nothing. */
export function writeFileDurable(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  return writeDurable(file, (fh) => fh.writeFile(data), mode);
}
