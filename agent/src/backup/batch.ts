import {
  encodeBlockFrame,
  encodeChunkFrame,
  encodeEndFrame,
  encodeStreamHeader,
  type BlockKind,
  type Codec,
} from '@ferry/protocol';

export interface PendingChunk {
  id: Buffer;
  codec: Codec;
  rawLength: number;
  payload: Buffer;
}

export interface PendingBlock {
  disk: number;
  blockNo: number;
  kind: BlockKind;
  xxh64: bigint;
  chunkId: Buffer;
}

/** One upload: the changed chunks (deduplicated within the batch) and every block's entry, in order. */
export class UploadBatch {
  readonly chunks = new Map<string, PendingChunk>();
  readonly blocks: PendingBlock[] = [];
  /** Read buffers that raw payloads live in, handed back to their pool once the batch is uploaded. */
  readonly buffers: Buffer[] = [];
  chunkBytes = 0;

  /** False when the batch already holds that chunk (the caller still owns the payload). */
  addChunk(hex: string, c: PendingChunk): boolean {
    if (this.chunks.has(hex)) return false;
    this.chunks.set(hex, c);
    this.chunkBytes += c.payload.length;
    return true;
  }

  get empty(): boolean {
    return this.blocks.length === 0;
  }

  /** The frame stream for this batch, sending only the chunks the appliance said it lacks. */
  *frames(missing: Set<string>): Generator<Buffer> {
    yield encodeStreamHeader();
    let count = 0;
    for (const [hex, c] of this.chunks) {
      if (!missing.has(hex)) continue;
      yield* encodeChunkFrame(c.id, c.codec, c.rawLength, c.payload);
      count++;
    }
    for (const b of this.blocks) {
      yield encodeBlockFrame(b);
      count++;
    }
    yield encodeEndFrame(count);
  }
}
