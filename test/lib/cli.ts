import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BINS = {
  appliance: `${ROOT}appliance/bin/ferry-appliance.js`,
  agent: `${ROOT}agent/bin/ferry-agent.js`,
  restore: `${ROOT}restore-pe/bin/ferry-restore.js`,
};

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of Ferry's programs as the user would (the built bin), collecting its output. */
export function ferry(program: keyof typeof BINS, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BINS[program], ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a program and fails with its output when it exits non-zero. */
export async function ferryOk(program: keyof typeof BINS, args: string[]): Promise<RunResult> {
  const r = await ferry(program, args);
  if (r.code !== 0) throw new Error(`ferry-${program} ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`);
  return r;
}

const execFileP = promisify(execFile);

/** Runs a system tool; its stderr is in the error when it fails. */
export async function sh(cmd: string, args: string[], opts: { input?: string } = {}): Promise<string> {
  if (opts.input !== undefined) {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
      child.stdin.end(opts.input);
    });
  }
  const { stdout } = await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface RunningAppliance {
  url: string;
  fingerprint: string;
  dataDir: string;
  process: ChildProcess;
  adminToken: string;
  enrollToken(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a real appliance process on an ephemeral loopback port with its own data directory. */
export async function startAppliance(dataDir: string): Promise<RunningAppliance> {
  const child = spawn(process.execPath, [BINS.appliance, 'serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const { url, fingerprint } = await new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`appliance did not start in 30 s:\n${out}\n${err}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const u = /listening on (https:\/\/\S+)/.exec(out);
      const f = /Certificate fingerprint: (SHA256:\S+)/.exec(out);
      if (u && f) {
        clearTimeout(timer);
        resolve({ url: u[1]!, fingerprint: f[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`appliance exited ${code} before listening:\n${out}\n${err}`));
    });
  });
  const adminToken = (await ferryOk('appliance', ['token', 'create', '--data', dataDir, '--name', 'test'])).stdout.trim();
  return {
    url,
    fingerprint,
    dataDir,
    process: child,
    adminToken,
    enrollToken: async () => (await ferryOk('appliance', ['enroll-token', '--data', dataDir])).stdout.trim(),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Enrolls a fresh agent state directory against the appliance. */
export async function enrollAgent(a: RunningAppliance, stateDir: string, name: string): Promise<void> {
  await ferryOk('agent', ['enroll', '--appliance', a.url, '--fingerprint', a.fingerprint, '--token', await a.enrollToken(), '--state', stateDir, '--name', name]);
}
