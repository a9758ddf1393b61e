import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';

type Xxh64 = (data: Uint8Array) => bigint;

let xxh64Impl: Xxh64 | undefined;

/** xxhash-wasm must be instantiated once before use; every program calls this at start-up. */
export async function initHashing(): Promise<void> {
  if (xxh64Impl) return;
  const api = await xxhash();
  xxh64Impl = (data) => api.h64Raw(data, 0n);
}

/** xxh64 with seed 0: the cheap per-block fingerprint used for change detection and format checksums. */
export function xxh64(data: Uint8Array): bigint {
  if (!xxh64Impl) throw new Error('xxh64() called before initHashing(): this is a bug');
  return xxh64Impl(data);
}

/** A chunk's identity: SHA-256 of its plaintext (64-bit hashes are too short to name data in a big store). */
export function chunkIdOf(plaintext: Uint8Array): Buffer {
  return createHash('sha256').update(plaintext).digest();
}
