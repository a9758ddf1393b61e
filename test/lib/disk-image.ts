import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { sh } from './cli.js';

export type TableType = 'mbr' | 'gpt';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Partitions the kernel knows for a loop device, from sysfs: name → "major:minor". */
async function kernelPartitions(name: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(`/sys/block/${name}`).catch(() => [] as string[])) {
    if (e.startsWith(`${name}p`)) out.set(e, (await readFile(`/sys/block/${name}/${e}/dev`, 'utf8')).trim());
  }
  return out;
}

/**
 * Attaches an image to a loop device with partition nodes; always pair with detach() in a finally.
 * There is no udev here: the kernel's partition scan is asynchronous and devtmpfs nodes can lag or be
 * missing, so wait for the scan and make any missing node from its sysfs major:minor.
 */
export async function attach(image: string, expectPartitions = 0): Promise<string> {
  const dev = (await sh('losetup', ['-f', '--show', '-P', image])).trim();
  const name = path.basename(dev);
  await sh('partx', ['-a', dev]).catch(() => undefined);
  for (let i = 0; i < 50; i++) {
    const parts = await kernelPartitions(name);
    if (parts.size >= expectPartitions) {
      for (const [p, majMin] of parts) {
        if (!existsSync(`/dev/${p}`)) {
          const [major, minor] = majMin.split(':');
          await sh('mknod', [`/dev/${p}`, 'b', major!, minor!]).catch(() => undefined);
        }
      }
      if ([...parts.keys()].every((p) => existsSync(`/dev/${p}`))) return dev;
    }
    await sleep(100);
  }
  await detach(dev);
  throw new Error(`partitions of ${image} did not appear on ${dev}`);
}

export async function detach(dev: string): Promise<void> {
  await sh('losetup', ['-d', dev]).catch(() => undefined);
}

/**
 * A partitioned image: partition 1 ext4 (most of the disk), partition 2 swap, free space after it.
 * Sizes in MiB.
 */
export async function createPartitionedImage(image: string, table: TableType, sizeMiB: number, ext4MiB: number, swapMiB: number): Promise<void> {
  await sh('truncate', ['-s', `${sizeMiB}M`, image]);
  if (table === 'mbr') {
    await sh('sfdisk', ['-q', image], { input: `label: dos\nstart=2048, size=${ext4MiB * 2048}, type=83\nsize=${swapMiB * 2048}, type=82\n` });
  } else {
    await sh('sgdisk', ['-o', '-n', `1:2048:+${ext4MiB}M`, '-t', '1:8300', '-n', `2:0:+${swapMiB}M`, '-t', '2:8200', image]);
  }
  const dev = await attach(image, 2);
  try {
    await sh('mkfs.ext4', ['-q', '-F', '-L', 'ferry-test', `${dev}p1`]);
    await sh('mkswap', [`${dev}p2`]);
  } finally {
    await detach(dev);
  }
}

/** Mounts partition `part` of the image, runs fn with the mount point, then unmounts and detaches. */
export async function withMounted<T>(image: string, part: number, fn: (dir: string) => Promise<T>, readOnly = false): Promise<T> {
  const dev = await attach(image, part);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-mnt-'));
  try {
    await sh('mount', [...(readOnly ? ['-o', 'ro,noload'] : []), `${dev}p${part}`, dir]);
    try {
      return await fn(dir);
    } finally {
      await sh('umount', [dir]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await detach(dev);
  }
}

export async function fsckClean(image: string, part: number): Promise<string> {
  const dev = await attach(image, part);
  try {
    return await sh('e2fsck', ['-fn', `${dev}p${part}`]);
  } finally {
    await detach(dev);
  }
}

/** SHA-256 of every regular file under dir, keyed by relative path (lost+found skipped). */
export async function treeChecksums(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (r === 'lost+found') continue;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile()) out.set(r, createHash('sha256').update(await readFile(path.join(dir, r))).digest('hex'));
    }
  }
  await walk('');
  return out;
}

export async function fileSize(p: string): Promise<number> {
  return existsSync(p) ? (await stat(p)).size : 0;
}
