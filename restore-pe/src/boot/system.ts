import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs a system tool of the restore environment; the error names the command and what it printed. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

export async function hasTool(name: string): Promise<boolean> {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (await access(`${dir}/${name}`).then(
      () => true,
      () => false,
    ))
      return true;
  }
  return false;
}
