import { spawn } from 'node:child_process';

export interface RunOptions {
  /** Runs the command inside this root with chroot(8): the restored system's own tools and configuration. */
  chroot?: string;
  input?: string;
  env?: Record<string, string>;
  /** Exit codes other than 0 that are answers rather than failures (blkid exits 2 for "nothing found"). */
  okCodes?: number[];
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command; injectable so the text-rewriting steps can be tested without a restored system. */
export type CommandRunner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<CommandResult>;

/** A command that failed, named with its arguments and what it wrote to stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    const said = (stderr.trim() || stdout.trim()).split('\n').slice(-15).join('\n');
    super(`${command} exited ${code}${said ? `: ${said}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Exit code 127 is the shell's "command not found"; chroot(8) uses it too when the command is missing. */
export const NOT_FOUND = 127;

// Package scripts must neither ask questions nor depend on the ISO's locale or PATH.
const CHROOT_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
  DEBIAN_FRONTEND: 'noninteractive',
};

export const runCommand: CommandRunner = (cmd, args, opts = {}) => {
  const [file, argv] = opts.chroot !== undefined ? ['chroot', [opts.chroot, cmd, ...args]] : [cmd, [...args]];
  const shown = [file, ...argv].join(' ');
  const env = { ...process.env, ...(opts.chroot !== undefined ? CHROOT_ENV : {}), ...opts.env };
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new CommandError(shown, NOT_FOUND, `${file}: command not found`, '') : err);
    });
    child.once('close', (code, signal) => {
      const c = code ?? 128;
      if (c === 0 || opts.okCodes?.includes(c)) resolve({ code: c, stdout, stderr });
      else reject(new CommandError(shown, c, signal ? `killed by ${signal}\n${stderr}` : stderr, stdout));
    });
    // Package scripts that ask anything get end-of-file, not the ISO's console. A command that exits
    // without reading its input closes the pipe first (EPIPE): its exit code is what counts.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
};

/** True when err says the command (or chroot's command) does not exist. */
export function isNotFound(err: unknown): boolean {
  return err instanceof CommandError && err.code === NOT_FOUND;
}
