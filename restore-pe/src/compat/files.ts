import { copyFile, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { constants, existsSync } from 'node:fs';
import path from 'node:path';

export const BACKUP_SUFFIX = '.ferry-backup';

/** A path inside the restored root; rel is absolute in the restored system's view (/etc/fstab). */
export function inRoot(root: string, rel: string): string {
  return path.join(root, rel);
}

export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Keeps the original next to the file (file.ferry-backup) before the first change. A second run of
 * compatibility processing must not replace the original with an already rewritten copy, hence COPYFILE_EXCL.
 */
export async function backupOnce(file: string, backup = `${file}${BACKUP_SUFFIX}`): Promise<string> {
  if (!existsSync(backup)) await copyFile(file, backup, constants.COPYFILE_EXCL);
  return backup;
}

/** Backs the file up once, then replaces it atomically keeping its mode. */
export async function writeWithBackup(file: string, text: string): Promise<void> {
  await backupOnce(file);
  const tmp = `${file}.ferry-tmp`;
  await writeFile(tmp, text, { mode: (await stat(file)).mode & 0o7777 });
  await rename(tmp, file);
}
