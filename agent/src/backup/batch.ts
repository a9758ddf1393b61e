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
  chunkBytes = 0;

  addChunk(hex: string, c: PendingChunk): void {
    if (this.chunks.has(hex)) return;
    this.chunks.set(hex, c);
    this.chunkBytes += c.payload.length;
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
