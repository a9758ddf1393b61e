import { createRequire } from 'node:module';

/**
 * Block compression. We use the `lz4` package's native block API with caller-owned buffers: measured here at
 * ~950 MB/s, against ~355 MB/s for lz4-napi's async API (whose *Sync functions leak one input per call).
 * Everything that compresses goes through this module so the codec can be swapped in one place.
 */
interface Lz4Native {
  encodeBound(size: number): number;
  encodeBlock(input: Buffer, output: Buffer): number;
  decodeBlock(input: Buffer, output: Buffer): number;
}
const lz4 = createRequire(import.meta.url)('lz4') as Lz4Native;

export enum Codec {
  None = 0,
  Lz4Block = 1,
}

export function isCodec(value: number): value is Codec {
  return value === (Codec.None as number) || value === (Codec.Lz4Block as number);
}

export interface Compressed {
  codec: Codec;
  /** A view into the compressor's scratch buffer (or the input itself): copy it before the next call. */
  payload: Buffer;
}

/** Reuses one output buffer per instance; the block pipeline keeps one compressor per worker. */
export class Compressor {
  #scratch: Buffer = Buffer.alloc(0);

  compress(input: Buffer): Compressed {
    const bound = lz4.encodeBound(input.length);
    if (this.#scratch.length < bound) this.#scratch = Buffer.allocUnsafe(bound);
    const written = lz4.encodeBlock(input, this.#scratch);
    // lz4 returns 0 or a size >= the input for incompressible data: store those blocks raw.
    if (written <= 0 || written >= input.length) return { codec: Codec.None, payload: input };
    return { codec: Codec.Lz4Block, payload: this.#scratch.subarray(0, written) };
  }
}

export class CodecError extends Error {}

/** Decodes into `output` (exactly rawLength bytes long) and returns it. */
export function decompressInto(codec: Codec, payload: Buffer, output: Buffer): Buffer {
  if (codec === Codec.None) {
    if (payload.length !== output.length) {
      throw new CodecError(`raw payload is ${payload.length} bytes, expected ${output.length}`);
    }
    payload.copy(output);
    return output;
  }
  const n = lz4.decodeBlock(payload, output);
  if (n !== output.length) throw new CodecError(`lz4 payload decoded to ${n} bytes, expected ${output.length}`);
  return output;
}
