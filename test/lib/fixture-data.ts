import type { PointStats } from '@ferry/protocol';

/** What `ferry-agent backup --json` prints. */
export interface BackupJson extends PointStats {
  point: { id: number; name: string };
}

/** Deterministic, compressible log-like text: fixtures need data that compresses like real logs do. */
export function textBlob(seed: number, bytes: number): string {
  const words = ['ferry', 'block', 'chunk', 'appliance', 'restore', 'datacenter', 'migration', 'engineer', 'point', 'cycle'];
  const parts: string[] = [];
  let n = 0;
  let i = seed;
  while (n < bytes) {
    i = (i * 1103515245 + 12345) & 0x7fffffff;
    const line = `${i % 100000} ${words[i % words.length]} ${words[(i >> 4) % words.length]} request served in ${i % 997} ms\n`;
    parts.push(line);
    n += line.length;
  }
  return parts.join('').slice(0, bytes);
}
