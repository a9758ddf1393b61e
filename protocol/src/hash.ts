import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';

type Xxh64 = (data: Uint8Array) => bigint;

/** An xxh64 (seed 0) computed over bytes given piece by piece: the same value as xxh64() of them all at once. */
export interface Xxh64Stream {
  update(data: Uint8Array): void;
  digest(): bigint;
}

let xxh64Impl: Xxh64 | undefined;
let xxh64StreamImpl: (() => Xxh64Stream) | undefined;

/** xxhash-wasm must be instantiated once before use; every program calls this at start-up. */
export async function initHashing(): Promise<void> {
  if (xxh64Impl) return;
  const api = await xxhash();
  xxh64Impl = (data) => api.h64Raw(data, 0n);
  xxh64StreamImpl = () => {
    const h = api.create64(0n);
    return {
      update: (data) => void h.update(data),
      digest: () => h.digest(),
    };
  };
}

/** xxh64 with seed 0: the cheap per-block fingerprint used for change detection and format checksums. */
export function xxh64(data: Uint8Array): bigint {
  if (!xxh64Impl) throw new Error('xxh64() called before initHashing(): this is a bug');
  return xxh64Impl(data);
}

/** A streaming xxh64 (seed 0), for checksums over more bytes than are held at once (a block index read as it arrives). */
export function createXxh64(): Xxh64Stream {
  if (!xxh64StreamImpl) throw new Error('createXxh64() called before initHashing(): this is a bug');
  return xxh64StreamImpl();
}

/** A chunk's identity: SHA-256 of its plaintext (64-bit hashes are too short to name data in a big store). */
export function chunkIdOf(plaintext: Uint8Array): Buffer {
  return createHash('sha256').update(plaintext).digest();
}
