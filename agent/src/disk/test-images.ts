// Helpers for the disk tests: build real images with the system's partitioning and mkfs tools.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Extent } from './usage-map.js';

export const MiB = 1024 * 1024;

/** Runs a tool and returns its stdout; stderr is kept for the error if it fails. */
export function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
}

/** Overwrites bytes of an image in place (damage a table, plant a signature). */
export function writeAt(img: string, offset: number, data: Buffer): void {
  const fd = openSync(img, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

export function makeTempDir(): string {
  return mkdtempSync(`${tmpdir()}/ferry-disk-`);
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Attaches `img` (or the window [offset, offset+size) of it) to a free loop device. */
export function attachLoop(img: string, offset?: number, size?: number): string {
  const args = ['-f', '--show'];
  if (offset !== undefined) args.push('-o', String(offset));
  if (size !== undefined) args.push('--sizelimit', String(size));
  return run('losetup', [...args, img]).trim();
}

export function detachLoop(dev: string): void {
  run('losetup', ['-d', dev]);
}

export async function withLoop<T>(img: string, offset: number | undefined, size: number | undefined, fn: (dev: string) => T | Promise<T>): Promise<T> {
  const dev = attachLoop(img, offset, size);
  try {
    return await fn(dev);
  } finally {
    detachLoop(dev);
  }
}

/** mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests. */
export const SMALL_XFS_ENV = { TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };

export interface Dumpe2fs {
  blockSize: number;
  blockCount: number;
  freeBlockCount: number;
  /** Free block ranges [first, last+1) in filesystem blocks, from the per-group "Free blocks:" lines. */
  free: Extent[];
  raw: string;
}

/** dumpe2fs's own view of the filesystem on `dev`. */
export function dumpe2fs(dev: string): Dumpe2fs {
  const out = run('dumpe2fs', [dev]);
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(out);
    if (!m?.[1]) throw new Error(`dumpe2fs output has no "${name}"`);
    return Number(m[1]);
  };
  const free: Extent[] = [];
  for (const m of out.matchAll(/^ {2}Free blocks: (.*)$/gm)) {
    for (const range of (m[1] ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '')) {
      const [a, b] = range.split('-').map(Number);
      if (a === undefined) continue;
      free.push({ start: a, end: (b ?? a) + 1 });
    }
  }
  return { blockSize: field('Block size'), blockCount: field('Block count'), freeBlockCount: field('Free blocks'), free, raw: out };
}

/** The gaps between `extents` inside [0, end), merging touching ranges. */
export function complement(extents: Extent[], end: number): Extent[] {
  const out: Extent[] = [];
  let at = 0;
  for (const e of extents) {
    if (e.start > at) out.push({ start: at, end: Math.min(e.start, end) });
    at = Math.max(at, e.end);
  }
  if (at < end) out.push({ start: at, end });
  return out;
}

/** Merges touching ranges (dumpe2fs splits free runs at group boundaries). */
export function mergeTouching(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of [...extents].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && e.start <= last.end) last.end = Math.max(last.end, e.end);
    else out.push({ ...e });
  }
  return out;
}
