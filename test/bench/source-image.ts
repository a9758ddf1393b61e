/*
 * The benchmark's source disks, built once and cached in $FERRY_TEST_CACHE (default /var/cache/ferry-test) under a
 * name that carries a hash of this file, so editing the recipe makes new images:
 *   - the "server": a 4 GiB GPT image, ext4 root (p1) holding a debootstrapped Debian bookworm (minbase) and
 *     ~1 GiB of mixed data (text logs, incompressible files, many small files), swap (p2);
 *   - the same server after a "day of changes" (~1.5 % of the files rewritten, logs appended, some deleted, new);
 * BENCH_QUICK=1 builds a smaller image without Debian (a 1 GiB disk, ~110 MiB of data) for developing the bench.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sh } from '../lib/cli.js';
import { createPartitionedImage, withMounted } from '../lib/disk-image.js';
import { textBlob } from '../lib/fixture-data.js';

const MIB = 1024 * 1024;
export const CACHE = process.env.FERRY_TEST_CACHE ?? '/var/cache/ferry-test';
const RECIPE_HASH = createHash('sha256').update(readFileSync(new URL(import.meta.url))).digest('hex').slice(0, 12);

/** Sizes of one recipe; the quick one keeps the same shape at about an eighth of the data. */
export interface Recipe {
  name: 'full' | 'quick';
  diskMiB: number;
  rootMiB: number;
  swapMiB: number;
  debian: boolean;
  logs: { count: number; mib: number };
  blobs: { count: number; mib: number };
  smallFiles: number;
  footprintDataMiB: number;
}

export const RECIPES: Record<Recipe['name'], Recipe> = {
  full: { name: 'full', diskMiB: 4096, rootMiB: 3584, swapMiB: 256, debian: true, logs: { count: 192, mib: 2 }, blobs: { count: 32, mib: 10 }, smallFiles: 25_000, footprintDataMiB: 2560 },
  quick: { name: 'quick', diskMiB: 1024, rootMiB: 960, swapMiB: 32, debian: false, logs: { count: 24, mib: 2 }, blobs: { count: 4, mib: 10 }, smallFiles: 3_000, footprintDataMiB: 512 },
};

export interface SourceImages {
  base: string;
  changed: string;
  /** What the day of changes did, for the report. */
  changes: DayOfChanges;
  /** Files and bytes of the mixed data (without Debian). */
  dataFiles: number;
  dataBytes: number;
}

export interface DayOfChanges {
  rewritten: number;
  appended: number;
  deleted: number;
  created: number;
  pageWrites: number;
  filesBefore: number;
}

/** Small deterministic PRNG (mulberry32): the same day of changes every time the recipe is built. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

function debianMirror(): string {
  if (process.env.FERRY_DEBIAN_MIRROR) return process.env.FERRY_DEBIAN_MIRROR;
  const dir = '/etc/apt/sources.list.d';
  for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.sources')) : []) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const m = /^URIs:\s*(.+)$/.exec(line);
      const uri = m?.[1]?.split(/\s+/).find((u) => /\/debian\/?$/.test(u));
      if (uri) return uri;
    }
  }
  return 'http://deb.debian.org/debian';
}

/** Content of a small file: two in three are text (configs, mail, source), the rest incompressible. */
function smallFile(rand: () => number, seed: number): Buffer {
  const size = 1024 + Math.floor(rand() * rand() * 48 * 1024);
  return rand() < 0.66 ? Buffer.from(textBlob(seed, size)) : randomBytes(size);
}

async function writeMixedData(root: string, r: Recipe): Promise<{ files: number; bytes: number }> {
  const rand = prng(1);
  let files = 0;
  let bytes = 0;
  const put = async (file: string, data: Buffer | string): Promise<void> => {
    await writeFile(file, data);
    files++;
    bytes += data.length;
  };
  await mkdir(path.join(root, 'srv/logs'), { recursive: true });
  for (let i = 0; i < r.logs.count; i++) await put(path.join(root, 'srv/logs', `app-${i}.log`), textBlob(i, r.logs.mib * MIB));
  await mkdir(path.join(root, 'srv/blobs'), { recursive: true });
  for (let i = 0; i < r.blobs.count; i++) await put(path.join(root, 'srv/blobs', `store-${i}.bin`), randomBytes(r.blobs.mib * MIB));
  for (let i = 0; i < r.smallFiles; i++) {
    const dir = path.join(root, 'srv/files', `d${Math.floor(i / 250)}`);
    if (i % 250 === 0) await mkdir(dir, { recursive: true });
    await put(path.join(dir, `f${i}`), smallFile(rand, 100_000 + i));
  }
  return { files, bytes };
}

/** The day of changes: rewrites, appends, deletions and new files, chosen by a seeded PRNG. */
async function applyDayOfChanges(root: string, r: Recipe): Promise<DayOfChanges> {
  const rand = prng(2);
  const pick = (n: number, count: number): number[] => {
    const chosen = new Set<number>();
    while (chosen.size < Math.min(n, count)) chosen.add(Math.floor(rand() * n));
    return [...chosen];
  };
  const small = (i: number) => path.join(root, 'srv/files', `d${Math.floor(i / 250)}`, `f${i}`);
  const changes: DayOfChanges = { rewritten: 0, appended: 0, deleted: 0, created: 0, pageWrites: 0, filesBefore: r.logs.count + r.blobs.count + r.smallFiles };
  // 1.5 % of the small files get new contents (a new inode's blocks, as editors and package upgrades write them).
  const rewrite = pick(r.smallFiles, Math.round(r.smallFiles * 0.015));
  for (const i of rewrite) {
    const tmp = `${small(i)}.new`;
    await writeFile(tmp, smallFile(rand, 500_000 + i));
    await rename(tmp, small(i));
    changes.rewritten++;
  }
  // One blob replaced whole; two others get scattered 16 KiB page writes (a database's day).
  const [whole, ...paged] = pick(r.blobs.count, 3);
  await writeFile(path.join(root, 'srv/blobs', `store-${whole}.bin`), randomBytes(r.blobs.mib * MIB));
  changes.rewritten++;
  for (const b of paged) {
    const fh = await open(path.join(root, 'srv/blobs', `store-${b}.bin`), 'r+');
    try {
      for (let k = 0; k < 8; k++) {
        await fh.write(randomBytes(16 * 1024), 0, 16 * 1024, Math.floor(rand() * (r.blobs.mib * MIB - 16 * 1024)));
        changes.pageWrites++;
      }
    } finally {
      await fh.close();
    }
  }
  // 15 % of the logs grow by 256 KiB; two are rotated (rewritten), one deleted.
  const logs = pick(r.logs.count, Math.round(r.logs.count * 0.15) + 3);
  for (const [k, i] of logs.entries()) {
    const file = path.join(root, 'srv/logs', `app-${i}.log`);
    if (k === 0) {
      await unlink(file);
      changes.deleted++;
    } else if (k <= 2) {
      await writeFile(file, textBlob(900_000 + i, r.logs.mib * MIB));
      changes.rewritten++;
    } else {
      await appendFile(file, textBlob(800_000 + i, 256 * 1024));
      changes.appended++;
    }
  }
  // 0.5 % of the small files deleted (among those not rewritten), 0.8 % new ones.
  const rewritten = new Set(rewrite);
  for (const i of pick(r.smallFiles, Math.round(r.smallFiles * 0.005))) {
    if (rewritten.has(i)) continue;
    await unlink(small(i));
    changes.deleted++;
  }
  await mkdir(path.join(root, 'srv/files/new'), { recursive: true });
  for (let i = 0; i < Math.round(r.smallFiles * 0.008); i++) {
    await writeFile(path.join(root, 'srv/files/new', `n${i}`), smallFile(rand, 700_000 + i));
    changes.created++;
  }
  if (r.debian) {
    // The system side of a day: logs and package state.
    await appendFile(path.join(root, 'var/log/dpkg.log'), textBlob(42, 64 * 1024));
    changes.appended++;
  }
  return changes;
}

interface CacheMeta {
  changes: DayOfChanges;
  dataFiles: number;
  dataBytes: number;
}

/** Builds (or finds in the cache) the server image and its day-of-changes twin. */
export async function sourceImages(r: Recipe): Promise<SourceImages> {
  await mkdir(CACHE, { recursive: true });
  const stem = path.join(CACHE, `bench-source-${r.name}-${RECIPE_HASH}`);
  const base = `${stem}.img`;
  const changed = `${stem}-changed.img`;
  const metaFile = `${stem}.json`;
  if (!(existsSync(base) && existsSync(changed) && existsSync(metaFile))) {
    const started = Date.now();
    const tmp = `${base}.partial.${process.pid}`;
    const tmpChanged = `${changed}.partial.${process.pid}`;
    try {
      log(`building the ${r.diskMiB} MiB source image ${base}${r.debian ? ' (debootstrap of Debian bookworm, a few minutes)' : ''}…`);
      await createPartitionedImage(tmp, 'gpt', r.diskMiB, r.rootMiB, r.swapMiB);
      const data = await withMounted(tmp, 1, async (root) => {
        if (r.debian) {
          const mirror = debianMirror();
          await sh('debootstrap', ['--variant=minbase', 'bookworm', root, mirror]).catch((err: Error) => {
            throw new Error(`debootstrap of bookworm from ${mirror} failed (set FERRY_DEBIAN_MIRROR to another mirror): ${err.message.slice(-2000)}`);
          });
          await rm(path.join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
          await mkdir(path.join(root, 'var/cache/apt/archives/partial'), { recursive: true });
        }
        const written = await writeMixedData(root, r);
        await sh('sync', ['-f', root]);
        await sh('fstrim', [root]).catch(() => '');
        return written;
      });
      log(`source image built in ${((Date.now() - started) / 1000).toFixed(0)} s; applying the day of changes…`);
      await sh('cp', ['--sparse=always', tmp, tmpChanged]);
      const changes = await withMounted(tmpChanged, 1, async (root) => {
        const c = await applyDayOfChanges(root, r);
        await sh('sync', ['-f', root]);
        return c;
      });
      const meta: CacheMeta = { changes, dataFiles: data.files, dataBytes: data.bytes };
      await rename(tmp, base);
      await rename(tmpChanged, changed);
      await writeFile(metaFile, JSON.stringify(meta));
    } finally {
      await rm(tmp, { force: true });
      await rm(tmpChanged, { force: true });
    }
  }
  const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as CacheMeta;
  return { base, changed, changes: meta.changes, dataFiles: meta.dataFiles, dataBytes: meta.dataBytes };
}
