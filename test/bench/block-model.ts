/*
 * The block-size study's model: what an incremental would send for the day of changes at a given block size,
 * computed from the two images without Ferry — so the study has figures for block sizes the product cannot run
 * (and a check of the model against the sizes it can). Mirrors Ferry's rules: unused filesystem blocks read as
 * zeros (both images are copied and fstrim'd, which punches them out of the sparse file); a block is changed when
 * its bytes differ from the same block before; an all-zero block is not sent; a block whose contents the store
 * already holds (any block of the first image, or one sent before) is not sent; the rest are sent LZ4-compressed
 * (raw when that does not shrink them).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Compressor } from '@ferry/protocol';
import { sh } from '../lib/cli.js';
import { withMounted } from '../lib/disk-image.js';

export interface ModelResult {
  blockSize: number;
  changedBytes: number;
  sentBytes: number;
}

/** A copy of `image` whose ext4 root (partition 1) has its free blocks discarded: they read as zeros. */
export async function trimmedCopy(image: string, copy: string): Promise<void> {
  await sh('cp', ['--sparse=always', image, copy]);
  await withMounted(copy, 1, async (dir) => {
    await sh('fstrim', [dir]);
  });
}

const isZero = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
};

export async function modelIncremental(before: string, after: string, blockSize: number): Promise<ModelResult> {
  const a = await open(before, 'r');
  const b = await open(after, 'r');
  try {
    const size = (await a.stat()).size;
    const bufA = Buffer.alloc(blockSize);
    const bufB = Buffer.alloc(blockSize);
    const stored = new Set<string>();
    const changed: number[] = [];
    for (let at = 0, n = 0; at < size; at += blockSize, n++) {
      const len = Math.min(blockSize, size - at);
      const [ra, rb] = await Promise.all([a.read(bufA, 0, len, at), b.read(bufB, 0, len, at)]);
      const va = bufA.subarray(0, ra.bytesRead);
      const vb = bufB.subarray(0, rb.bytesRead);
      if (!isZero(va)) stored.add(createHash('sha256').update(va).digest('base64'));
      if (!va.equals(vb)) changed.push(n);
    }
    const compressor = new Compressor();
    let sentBytes = 0;
    for (const n of changed) {
      const { bytesRead } = await b.read(bufB, 0, blockSize, n * blockSize);
      const block = bufB.subarray(0, bytesRead);
      if (isZero(block)) continue;
      const id = createHash('sha256').update(block).digest('base64');
      if (stored.has(id)) continue;
      stored.add(id);
      sentBytes += compressor.compress(block).payload.length;
    }
    return { blockSize, changedBytes: changed.length * blockSize, sentBytes };
  } finally {
    await a.close();
    await b.close();
  }
}
