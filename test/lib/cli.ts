import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BINS = {
  appliance: `${ROOT}appliance/bin/ferry-appliance.js`,
  agent: `${ROOT}agent/bin/ferry-agent.js`,
  restore: `${ROOT}restore-pe/bin/ferry-restore.js`,
};

/** Every test appliance is encrypted with this passphrase (docs/spec/encryption.md). */
export const TEST_PASSPHRASE = 'ferry test passphrase, not secret';
/** scrypt N for test keyrings (recorded in the keyring): a start costs ~50 ms instead of ~0.6 s of calibrated scrypt. */
export const TEST_SCRYPT_N = 16384;

/** A file holding TEST_PASSPHRASE, outside every data directory (made once per test process). */
export function testPassphraseFile(): string {
  const file = path.join(os.tmpdir(), `ferry-test-passphrase-${process.pid}`);
  if (!existsSync(file)) writeFileSync(file, `${TEST_PASSPHRASE}\n`, { mode: 0o600 });
  return file;
}

/** What appliance commands get unless a test says otherwise: the test passphrase for offline commands, cheap scrypt. */
function applianceEnv(): NodeJS.ProcessEnv {
  return { FERRY_PASSPHRASE_FILE: testPassphraseFile(), FERRY_TEST_SCRYPT_N: String(TEST_SCRYPT_N) };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of Ferry's programs as the user would (the built bin), collecting its output. */
export function ferry(program: keyof typeof BINS, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const defaults = program === 'appliance' ? applianceEnv() : {};
    const child = spawn(process.execPath, [BINS[program], ...args], { env: { ...process.env, ...defaults, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

export interface StartApplianceOptions {
  /** false: start without a passphrase (a new directory stays uninitialised, an encrypted one locked). Default: the test passphrase. */
  unlock?: boolean;
}

/**
 * Starts a real appliance process on an ephemeral loopback port with its own data directory, encrypted with
 * the test passphrase (a new directory is initialised with it at start) and unlocked.
 */
export async function startAppliance(dataDir: string, opts: StartApplianceOptions = {}): Promise<RunningAppliance> {
  const unlock = opts.unlock ?? true;
  const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn', ...(unlock ? ['--passphrase-file', testPassphraseFile()] : [])];
  const env: NodeJS.ProcessEnv = { ...process.env, FERRY_TEST_SCRYPT_N: String(TEST_SCRYPT_N) };
  delete env.FERRY_PASSPHRASE_FILE;
  const child = spawn(process.execPath, [BINS.appliance, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
  // A locked or new appliance has no catalog to make a token in yet.
  const adminToken = unlock ? (await ferryOk('appliance', ['token', 'create', '--data', dataDir, '--name', 'test'])).stdout.trim() : '';
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
