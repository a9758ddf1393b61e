import { CHUNK_ID_BYTES, STREAM_MAGIC } from '../constants.js';
import { isCodec, type Codec } from '../codec.js';
import { isBlockKind, type BlockKind } from './block-index.js';
import { MAX_CHUNK_RAW_BYTES } from './chunk-file.js';

/**
 * Framed data stream v1, used for backup uploads and restore downloads (and later over SSH in passive mode).
 * A 16-byte stream header, then frames of an 8-byte header + payload, closed by an END frame.
 * Spec: docs/spec/frame-stream.md
 */
export const STREAM_VERSION = 1;
export const STREAM_HEADER_BYTES = 16;
export const FRAME_HEADER_BYTES = 8;
export const CHUNK_FRAME_FIXED_BYTES = 40;
export const BLOCK_FRAME_BYTES = 56;
export const END_FRAME_BYTES = 8;
export const MAX_FRAME_BYTES = CHUNK_FRAME_FIXED_BYTES + MAX_CHUNK_RAW_BYTES + 1024 * 1024;

export enum FrameType {
  Chunk = 0x01,
  Block = 0x02,
  End = 0x7f,
}

export interface ChunkFrame {
  type: FrameType.Chunk;
  id: Buffer;
  codec: Codec;
  rawLength: number;
  payload: Buffer;
}

export interface BlockFrame {
  type: FrameType.Block;
  disk: number;
  kind: BlockKind;
  blockNo: number;
  xxh64: bigint;
  chunkId: Buffer;
}

export interface EndFrame {
  type: FrameType.End;
  frameCount: number;
}

export type Frame = ChunkFrame | BlockFrame | EndFrame;

export class StreamFormatError extends Error {}

export function encodeStreamHeader(): Buffer {
  const b = Buffer.alloc(STREAM_HEADER_BYTES);
  STREAM_MAGIC.copy(b, 0);
  b.writeUInt16LE(STREAM_VERSION, 4);
  return b;
}

function frameHeader(type: FrameType, length: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUInt8(type, 0);
  b.writeUInt32LE(length, 4);
  return b;
}

/** Returns the frame as a list of buffers so a large payload is never copied. */
export function encodeChunkFrame(id: Buffer, codec: Codec, rawLength: number, payload: Buffer): Buffer[] {
  const fixed = Buffer.alloc(CHUNK_FRAME_FIXED_BYTES);
  id.copy(fixed, 0);
  fixed.writeUInt8(codec, 32);
  fixed.writeUInt32LE(rawLength, 36);
  return [frameHeader(FrameType.Chunk, CHUNK_FRAME_FIXED_BYTES + payload.length), fixed, payload];
}

export function encodeBlockFrame(f: Omit<BlockFrame, 'type'>): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES + BLOCK_FRAME_BYTES);
  b.writeUInt8(FrameType.Block, 0);
  b.writeUInt32LE(BLOCK_FRAME_BYTES, 4);
  const p = FRAME_HEADER_BYTES;
  b.writeUInt16LE(f.disk, p);
  b.writeUInt8(f.kind, p + 2);
  b.writeBigUInt64LE(BigInt(f.blockNo), p + 8);
  b.writeBigUInt64LE(f.xxh64, p + 16);
  f.chunkId.copy(b, p + 24);
  return b;
}

export function encodeEndFrame(frameCount: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES + END_FRAME_BYTES);
  b.writeUInt8(FrameType.End, 0);
  b.writeUInt32LE(END_FRAME_BYTES, 4);
  b.writeBigUInt64LE(BigInt(frameCount), FRAME_HEADER_BYTES);
  return b;
}

function decodeFrame(type: number, p: Buffer): Frame {
  switch (type as FrameType) {
    case FrameType.Chunk: {
      if (p.length < CHUNK_FRAME_FIXED_BYTES) throw new StreamFormatError('chunk frame shorter than its fixed part');
      const codec = p.readUInt8(32);
      if (!isCodec(codec)) throw new StreamFormatError(`chunk frame names unknown codec ${codec}`);
      const rawLength = p.readUInt32LE(36);
      if (rawLength > MAX_CHUNK_RAW_BYTES) throw new StreamFormatError(`chunk frame raw length ${rawLength} is too large`);
      return {
        type: FrameType.Chunk,
        id: p.subarray(0, CHUNK_ID_BYTES),
        codec,
        rawLength,
        payload: p.subarray(CHUNK_FRAME_FIXED_BYTES),
      };
    }
    case FrameType.Block: {
      if (p.length !== BLOCK_FRAME_BYTES) throw new StreamFormatError(`block frame is ${p.length} bytes, expected ${BLOCK_FRAME_BYTES}`);
      const kind = p.readUInt8(2);
      if (!isBlockKind(kind)) throw new StreamFormatError(`block frame names unknown block kind ${kind}`);
      const blockNo = p.readBigUInt64LE(8);
      if (blockNo > BigInt(Number.MAX_SAFE_INTEGER)) throw new StreamFormatError('block number out of range');
      return {
        type: FrameType.Block,
        disk: p.readUInt16LE(0),
        kind,
        blockNo: Number(blockNo),
        xxh64: p.readBigUInt64LE(16),
        chunkId: p.subarray(24, 56),
      };
    }
    case FrameType.End: {
      if (p.length !== END_FRAME_BYTES) throw new StreamFormatError('end frame has the wrong length');
      return { type: FrameType.End, frameCount: Number(p.readBigUInt64LE(0)) };
    }
    default:
      throw new StreamFormatError(`unknown frame type 0x${type.toString(16)}`);
  }
}

/** Pulls exact byte counts out of an async byte source without concatenating more than one frame at a time. */
class ByteReader {
  #parts: Buffer[] = [];
  #buffered = 0;
  readonly #source: AsyncIterator<Buffer | Uint8Array | string>;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  /** Resolves to exactly n bytes, or null at a clean end of input before any of them. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#buffered < n) {
      const next = await this.#source.next();
      if (next.done) {
        if (this.#buffered === 0) return null;
        throw new StreamFormatError(`stream truncated: needed ${n} bytes, got ${this.#buffered}`);
      }
      const part = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      this.#parts.push(part);
      this.#buffered += part.length;
    }
    const first = this.#parts[0];
    let out: Buffer;
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.#parts, this.#buffered);
      out = all.subarray(0, n);
      this.#parts = all.length > n ? [all.subarray(n)] : [];
    }
    this.#buffered -= n;
    return out;
  }
}

/**
 * Parses a frame stream. Yields frames as they complete (the caller applies back-pressure by awaiting),
 * and throws StreamFormatError on a bad header, an unknown frame, a truncated stream or a missing END.
 * Frame payloads are views: copy what must outlive the next iteration.
 */
export async function* readFrames(source: AsyncIterable<Buffer | Uint8Array | string>, maxFrameBytes = MAX_FRAME_BYTES): AsyncGenerator<Frame> {
  const reader = new ByteReader(source);
  const header = await reader.read(STREAM_HEADER_BYTES);
  if (!header) throw new StreamFormatError('empty stream: expected a Ferry frame stream header');
  if (!header.subarray(0, 4).equals(STREAM_MAGIC)) throw new StreamFormatError('not a Ferry frame stream (bad magic)');
  const version = header.readUInt16LE(4);
  if (version !== STREAM_VERSION) throw new StreamFormatError(`unsupported frame stream version ${version}`);
  let count = 0;
  for (;;) {
    const fh = await reader.read(FRAME_HEADER_BYTES);
    if (!fh) throw new StreamFormatError(`stream ended after ${count} frames without an END frame (truncated upload?)`);
    const type = fh.readUInt8(0);
    const length = fh.readUInt32LE(4);
    if (length > maxFrameBytes) throw new StreamFormatError(`frame of ${length} bytes exceeds the ${maxFrameBytes}-byte limit`);
    const payload = length === 0 ? Buffer.alloc(0) : await reader.read(length);
    if (!payload) throw new StreamFormatError('stream truncated inside a frame');
    const frame = decodeFrame(type, payload);
    if (frame.type === FrameType.End) {
      if (frame.frameCount !== count) throw new StreamFormatError(`END frame counts ${frame.frameCount} frames, stream had ${count}`);
      if ((await reader.read(1)) !== null) throw new StreamFormatError('bytes after the END frame');
      yield frame;
      return;
    }
    count++;
    yield frame;
  }
}
