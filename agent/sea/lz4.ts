import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getAsset } from 'node:sea';

/**
 * The lz4 addon inside the single executable. A native addon can only be loaded from a file, so the `.node`
 * embedded as the SEA asset `lz4.node` is written to a private directory (mode 0700, its own name), loaded
 * with process.dlopen and deleted at once: the mapping stays, nothing is left on disk. Temp directories can
 * be mounted noexec, so a few places are tried. It exports what protocol/src/codec.ts uses of the `lz4`
 * package, which are the very same native functions (lz4/lib/lz4.js: encodeBlock = bindings.compress, …).
 */
interface Lz4Binding {
  // Plain functions of the addon (no `this`), hence properties rather than methods.
  compressBound: (size: number) => number;
  compress: (input: Buffer, output: Buffer) => number;
  uncompress: (input: Buffer, output: Buffer) => number;
}

export const LZ4_ASSET = 'lz4.node';

function load(): Lz4Binding {
  const bytes = new Uint8Array(getAsset(LZ4_ASSET));
  const places = [...new Set([os.tmpdir(), '/dev/shm', '/run', '/var/tmp'])];
  const failures: string[] = [];
  for (const place of places) {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(path.join(place, 'ferry-agent-'));
      const file = path.join(dir, LZ4_ASSET);
      writeFileSync(file, bytes, { mode: 0o500 });
      const mod = { exports: {} as Lz4Binding };
      process.dlopen(mod, file);
      return mod.exports;
    } catch (err) {
      failures.push(`${place}: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error(
    `ferry-agent cannot load its lz4 compressor: it writes it to a temporary directory and loads it from there, which failed in every place tried (${failures.join('; ')}). ` +
      'Give it a writable directory that is not mounted noexec with TMPDIR=DIR.',
  );
}

const binding = load();

export default {
  encodeBound: binding.compressBound,
  encodeBlock: binding.compress,
  decodeBlock: binding.uncompress,
};
