import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ip } from './netns.js';

const SCRIPT = fileURLToPath(new URL('./impair.py', import.meta.url));
/** Debian's interpreter by its path: PATH may lead to a pyenv shim or another Python. */
const PYTHON = '/usr/bin/python3';

/** What the impairer does to each packet, per direction (test/lib/impair.py). */
export interface Impairment {
  seed: number;
  /** Probability a packet is dropped (0.02 = 2 %). */
  loss: number;
  delayMs: number;
  /** The delay varies uniformly by ± this much (without reordering by itself). */
  jitterMs: number;
  /** Probability a packet is held back a further `reorderMs`, so later packets overtake it. */
  reorder: number;
  reorderMs: number;
  rateMbit: number;
  /** The bottleneck's drop-tail queue holds this much data (in time at `rateMbit`). */
  queueMs: number;
}

export interface ImpairCounters {
  forwarded: number;
  /** Dropped at random (`loss`). */
  dropped: number;
  /** Dropped because the bottleneck's queue was full. */
  queueDropped: number;
  heldBack: number;
  /** Delivered after a later packet of the same direction. */
  reordered: number;
  bytes: number;
}

/**
 * A network namespace whose only link to the host is a pair of tun devices with test/lib/impair.py forwarding
 * between them (lossy, slow, reordering: this kernel has no sch_netem). Point-to-point /32 peers in
 * 198.19.`index`.0/24 (part of 198.18.0.0/15; no other test uses 198.19). `stop()` ends the impairer and
 * returns its counters (the devices go with it); `close()` also deletes the namespace, also after a failure.
 */
export interface ImpairedLink {
  name: string;
  hostAddress: string;
  nsAddress: string;
  hostInterface: string;
  /** argv that runs `cmd` inside the namespace. */
  exec(cmd: string[]): string[];
  stop(): Promise<ImpairCounters>;
  close(): Promise<void>;
}

export async function impairedLink(prefix: string, index: number, impairment: Impairment): Promise<ImpairedLink> {
  const tag = `${prefix}${process.pid % 10000}`;
  const name = `ferry-${tag}`;
  const hostIf = `th${tag}`.slice(0, 15);
  const nsIf = `tn${tag}`.slice(0, 15);
  const hostAddress = `198.19.${index}.1`;
  const nsAddress = `198.19.${index}.2`;
  await ip('netns', 'del', name).catch(() => '');
  await ip('netns', 'add', name);
  const child = spawn(
    PYTHON,
    [
      SCRIPT,
      '--netns', name,
      '--host-if', hostIf,
      '--ns-if', nsIf,
      '--seed', String(impairment.seed),
      '--loss', String(impairment.loss),
      '--delay-ms', String(impairment.delayMs),
      '--jitter-ms', String(impairment.jitterMs),
      '--reorder', String(impairment.reorder),
      '--reorder-ms', String(impairment.reorderMs),
      '--rate-mbit', String(impairment.rateMbit),
      '--queue-ms', String(impairment.queueMs),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  let counters: ImpairCounters | null = null;
  const stop = async (): Promise<ImpairCounters> => {
    if (counters) return counters;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`the impairer left no counters (exit ${child.exitCode}):\n${out}\n${err}`);
    counters = JSON.parse(line) as ImpairCounters;
    return counters;
  };
  const close = async (): Promise<void> => {
    await stop().catch(() => undefined);
    await ip('netns', 'del', name).catch(() => '');
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the impairer did not start in 10 s:\n${out}\n${err}`)), 10_000);
      const check = (): void => {
        if (/^ready$/m.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', check);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`the impairer exited ${child.exitCode} before it was ready:\n${out}\n${err}`));
      });
    });
    await ip('addr', 'add', hostAddress, 'peer', nsAddress, 'dev', hostIf);
    await ip('link', 'set', hostIf, 'up');
    await ip('-n', name, 'addr', 'add', nsAddress, 'peer', hostAddress, 'dev', nsIf);
    await ip('-n', name, 'link', 'set', nsIf, 'up');
    await ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (e) {
    await close();
    throw e;
  }
  return { name, hostAddress, nsAddress, hostInterface: hostIf, exec: (cmd) => ['ip', 'netns', 'exec', name, ...cmd], stop, close };
}
