/*
 * The other disks of the bench: the footprint disk (cached like the source image) and the scaling run's small disks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { textBlob } from '../lib/fixture-data.js';
import { CACHE, type Recipe } from './source-image.js';

const MIB = 1024 * 1024;
const HASH = createHash('sha256').update(readFileSync(new URL(import.meta.url))).digest('hex').slice(0, 12);

/** The footprint disk: no partition table (read whole), mostly incompressible data then text, zeros after; a backup at
 * 300 Mbit/s of the full recipe lasts over a minute. */
export async function footprintImage(r: Recipe): Promise<string> {
  await mkdir(CACHE, { recursive: true });
  const file = path.join(CACHE, `bench-footprint-${r.name}-${HASH}.img`);
  if (existsSync(file)) return file;
  process.stderr.write(`bench: building the footprint disk ${file}…\n`);
  const tmp = `${file}.partial.${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.truncate(r.diskMiB * MIB);
    const textMiB = Math.round(r.footprintDataMiB / 10);
    for (let at = 0; at < r.footprintDataMiB; at += 64) {
      const chunk = at < r.footprintDataMiB - textMiB ? randomBytes(64 * MIB) : Buffer.from(textBlob(at, 64 * MIB));
      await fh.write(chunk, 0, 64 * MIB, (64 + at) * MIB);
    }
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  return file;
}

/** A small raw disk for the scaling run: its own random and text data, so no two agents share chunks. */
export async function smallImage(file: string, diskMiB: number, dataMiB: number, seed: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.truncate(diskMiB * MIB);
    for (let at = 0; at < dataMiB; at += 8) {
      const chunk = at % 16 === 0 ? randomBytes(8 * MIB) : Buffer.from(textBlob(seed * 1000 + at, 8 * MIB));
      await fh.write(chunk, 0, 8 * MIB, (1 + at) * MIB);
    }
  } finally {
    await fh.close();
  }
}
