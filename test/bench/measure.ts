/*
 * Runs a command the way the bench counts it: wall time, CPU seconds (user + sys of every process it started, from
 * GNU time's getrusage of its waited-for children) and the peak RSS of each process in its tree (VmHWM sampled
 * from /proc every 50 ms). Also the same figures for a long-running process (the appliance) over an interval.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sh } from '../lib/cli.js';

const TICKS_PER_SECOND = 100;

export interface Measured {
  wallSeconds: number;
  cpuSeconds: number;
  /** Peak RSS by program name (comm), the largest one of that name. */
  peakRss: Map<string, number>;
  stdout: string;
  stderr: string;
}

export interface CommandSpec {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A file read as stdin. */
  stdinFile?: string;
  /** A file that receives stdout (else it is collected). */
  stdoutFile?: string;
}

/** A process and everything below it, from /proc/PID/task/TID/children (no scan of all of /proc). */
function tree(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (children) queue.push(...children.split(' ').map(Number));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Resident-set high-water mark of a process in bytes, or 0 once it is gone. */
export function vmHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** user + sys CPU seconds of a live process (all its threads). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

/** Samples the peak RSS of every process below `root` until stopped. */
export class RssSampler {
  readonly peak = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #skip: Set<string>;

  constructor(root: number, skip: string[] = ['time']) {
    this.#skip = new Set(skip);
    this.#timer = setInterval(() => this.sample(root), 50);
  }

  sample(root: number): void {
    for (const pid of tree(root)) {
      const comm = commOf(pid);
      if (comm === undefined || this.#skip.has(comm)) continue;
      const hwm = vmHwm(pid);
      if (hwm > (this.peak.get(comm) ?? 0)) this.peak.set(comm, hwm);
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Runs one command under /usr/bin/time and the RSS sampler; fails with its stderr when it exits non-zero. */
export async function measure(spec: CommandSpec): Promise<Measured> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-time-'));
  const timeFile = path.join(dir, 'time');
  const stdin = spec.stdinFile ? openSync(spec.stdinFile, 'r') : 'ignore';
  const stdout = spec.stdoutFile ? openSync(spec.stdoutFile, 'w') : 'pipe';
  try {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, spec.cmd, ...spec.args], {
      env: { ...process.env, ...spec.env },
      cwd: spec.cwd,
      stdio: [stdin, stdout, 'pipe'],
    });
    const sampler = new RssSampler(child.pid!);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    const wallSeconds = (performance.now() - started) / 1000;
    sampler.stop();
    if (code !== 0) throw new Error(`${spec.cmd} ${spec.args.join(' ')} exited ${code}:\n${err.slice(-4000)}`);
    const [user, sys] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
    return { wallSeconds, cpuSeconds: (user ?? 0) + (sys ?? 0), peakRss: sampler.peak, stdout: out, stderr: err };
  } finally {
    if (typeof stdin === 'number') closeSync(stdin);
    if (typeof stdout === 'number') closeSync(stdout);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * CPU seconds and peak RSS of a long-running process over an interval: its high-water mark is reset at the start
 * (clear_refs 5), so the peak is the interval's own.
 */
export async function watchProcess(pid: number): Promise<() => { cpuSeconds: number; peakRss: number }> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
  const cpu0 = cpuSecondsOf(pid);
  return () => ({ cpuSeconds: cpuSecondsOf(pid) - cpu0, peakRss: vmHwm(pid) });
}

/** Apparent bytes under a directory (or of a file): what a backup tool stored. */
export async function storedBytes(p: string): Promise<number> {
  return Number((await sh('du', ['-sb', p])).split('\t')[0]);
}
