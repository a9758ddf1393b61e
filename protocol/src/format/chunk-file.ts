import { CHUNK_ID_BYTES, CHUNK_MAGIC } from '../constants.js';
import { Codec, isCodec } from '../codec.js';
import { xxh64 } from '../hash.js';

/** Chunk file v1: a 64-byte header followed by the (possibly compressed) payload. Spec: docs/spec/chunk-file.md */
export const CHUNK_FILE_VERSION = 1;
export const CHUNK_HEADER_BYTES = 64;
export const MAX_CHUNK_RAW_BYTES = 64 * 1024 * 1024;

export interface ChunkHeader {
  codec: Codec;
  rawLength: number;
  payloadLength: number;
  payloadXxh64: bigint;
  id: Buffer;
}

export class ChunkFormatError extends Error {}

export function encodeChunkHeader(id: Buffer, codec: Codec, rawLength: number, payload: Buffer): Buffer {
  if (id.length !== CHUNK_ID_BYTES) throw new ChunkFormatError(`chunk id must be ${CHUNK_ID_BYTES} bytes`);
  const h = Buffer.alloc(CHUNK_HEADER_BYTES);
  CHUNK_MAGIC.copy(h, 0);
  h.writeUInt8(CHUNK_FILE_VERSION, 4);
  h.writeUInt8(codec, 5);
  h.writeUInt32LE(rawLength, 8);
  h.writeUInt32LE(payload.length, 12);
  h.writeBigUInt64LE(xxh64(payload), 16);
  id.copy(h, 24);
  return h;
}

export function decodeChunkHeader(h: Buffer): ChunkHeader {
  if (h.length < CHUNK_HEADER_BYTES) throw new ChunkFormatError(`chunk file is truncated: ${h.length} header bytes`);
  if (!h.subarray(0, 4).equals(CHUNK_MAGIC)) throw new ChunkFormatError('not a Ferry chunk file (bad magic)');
  const version = h.readUInt8(4);
  if (version !== CHUNK_FILE_VERSION) throw new ChunkFormatError(`unsupported chunk file version ${version}`);
  const codec = h.readUInt8(5);
  if (!isCodec(codec)) throw new ChunkFormatError(`unknown codec ${codec}`);
  const rawLength = h.readUInt32LE(8);
  const payloadLength = h.readUInt32LE(12);
  if (rawLength > MAX_CHUNK_RAW_BYTES || payloadLength > MAX_CHUNK_RAW_BYTES) {
    throw new ChunkFormatError(`chunk lengths out of range (raw ${rawLength}, payload ${payloadLength})`);
  }
  return {
    codec,
    rawLength,
    payloadLength,
    payloadXxh64: h.readBigUInt64LE(16),
    id: Buffer.from(h.subarray(24, 24 + CHUNK_ID_BYTES)),
  };
}
