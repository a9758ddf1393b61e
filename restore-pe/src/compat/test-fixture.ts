import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// Test support only. The fixture scripts live in test/ (outside this package, which must not compile them):
// imported at run time, typed here by hand.
interface FixtureModule {
  ensureDebianSource(): Promise<string>;
}
interface DiskImageModule {
  attach(image: string, expectPartitions?: number): Promise<string>;
  detach(dev: string): Promise<void>;
}

const execFileP = promisify(execFile);
const testDir = new URL('../../../test/', import.meta.url);

/** Runs fn on a loop device holding a private copy of the Debian source fixture (built on first use). */
export async function withFixtureCopy<T>(fn: (dev: string) => Promise<T>): Promise<T> {
  const fixture = (await import(new URL('fixtures/debian-source.ts', testDir).href)) as FixtureModule;
  return withImageCopy(await fixture.ensureDebianSource(), 2, fn);
}

/** Runs fn on a loop device holding a sparse private copy of `image` (with `partitions` partitions); detaches and deletes it afterwards. */
export async function withImageCopy<T>(image: string, partitions: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const disk = (await import(new URL('lib/disk-image.ts', testDir).href)) as DiskImageModule;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-compat-'));
  try {
    const copy = path.join(dir, 'source.img');
    await execFileP('cp', ['--sparse=always', image, copy]);
    const dev = await disk.attach(copy, partitions);
    try {
      return await fn(dev);
    } finally {
      await disk.detach(dev);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Mounts partition 1 of dev (the fixture's root) with /dev and /proc for chroot, runs fn with the mount
 * point, unmounts.
 */
export async function withFixtureRoot<T>(dev: string, fn: (root: string) => Promise<T>): Promise<T> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-fixture-root-'));
  const mounted: string[] = [];
  try {
    for (const [args, at] of [
      [[`${dev}p1`], root],
      [['--bind', '/dev'], `${root}/dev`],
      [['-t', 'proc', 'proc'], `${root}/proc`],
    ] as const) {
      await execFileP('mount', [...args, at]);
      mounted.push(at);
    }
    return await fn(root);
  } finally {
    for (const at of mounted.reverse()) await execFileP('umount', [at]);
    await rm(root, { recursive: true, force: true });
  }
}

/** Runs a command in the chroot and returns its stdout. */
export async function inChroot(root: string, cmd: string, args: string[]): Promise<string> {
  return (await execFileP('chroot', [root, cmd, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
}

/** Builds a minimal .deb (control fields, optional files) with the machine's dpkg-deb. */
export async function buildDeb(out: string, control: Record<string, string>, files: Record<string, string> = {}): Promise<void> {
  const tree = await mkdtemp(path.join(os.tmpdir(), 'ferry-deb-'));
  try {
    await mkdir(path.join(tree, 'DEBIAN'));
    const fields = { Version: '1.0', Architecture: 'all', Maintainer: 'Ferry tests <tests@ferry.invalid>', Description: 'Ferry test package', ...control };
    await writeFile(path.join(tree, 'DEBIAN/control'), `${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
    for (const [p, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(tree, p)), { recursive: true });
      await writeFile(path.join(tree, p), text);
    }
    await execFileP('dpkg-deb', ['--root-owner-group', '--build', tree, out]);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}
