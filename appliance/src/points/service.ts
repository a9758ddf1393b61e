import {
  BlockKind,
  decodeIndexEntry,
  encodeBlockFrame,
  encodeChunkFrame,
  encodeEndFrame,
  encodeIndexHeader,
  encodeStreamHeader,
  FerryError,
  INDEX_ENTRY_BYTES,
  type Point,
  type PointStats,
} from '@ferry/protocol';
import type { CycleRepository, CycleRow } from '../cycles/repository.js';
import { now } from '../catalog/catalog.js';
import type { PointRepository } from './repository.js';
import type { SourceRepository } from '../sources/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { IndexFiles } from '../store/index-file.js';

/** Blocks per restore stream request at most; the client asks range after range. */
export const MAX_STREAM_BLOCKS = 4096;
/** Index entries per ranged index request at most (3 MiB); the agent asks range after range. */
export const MAX_INDEX_RANGE_ENTRIES = 65_536;
/** Payload bytes read before the first byte of a restore stream is sent (the restore ISO asks 64 blocks at a time). */
const READ_AHEAD_BYTES = 96 * 1024 * 1024;

export class PointService {
  constructor(
    private readonly cycles: CycleRepository,
    private readonly sources: SourceRepository,
    private readonly chunks: ChunkStore,
    private readonly indexes: IndexFiles,
    private readonly pointRepo: PointRepository,
  ) {}

  exists(pointId: number): boolean {
    return this.cycles.get(pointId)?.state === 'committed';
  }

  /** Why the point cannot be deleted now ('restore' or 'running cycle'), or null. */
  inUse(pointId: number): string | null {
    return this.pointRepo.inUse(pointId);
  }

  /**
   * Deletes a point: first its catalog row (so nothing names it any more), then its index files. Its chunks
   * stay until garbage collection finds no other point or running cycle using them.
   */
  async delete(pointId: number): Promise<void> {
    const c = this.#committed(pointId);
    const use = this.pointRepo.inUse(pointId);
    if (use) throw new FerryError('POINT_IN_USE', `${c.point_name ?? `point ${pointId}`} is in use by a ${use}`);
    if (!this.pointRepo.markDeleted(pointId, now())) throw new FerryError('POINT_NOT_FOUND', `point ${pointId} does not exist`);
    await this.indexes.removeCycle(pointId);
  }

  list(sourceId?: number): Point[] {
    return this.cycles.points(sourceId).map((c) => this.#toPoint(c));
  }

  get(pointId: number): Point {
    return this.#toPoint(this.#committed(pointId));
  }

  sourceOf(pointId: number): number {
    return this.#committed(pointId).source_id;
  }

  /** The sealed index file of one disk of a point, checked against its checksum before it is served. */
  async index(pointId: number, diskId: number): Promise<Buffer> {
    this.#disk(pointId, diskId);
    return (await this.indexes.loadWithFile(pointId, diskId)).file;
  }

  /**
   * The header and entries [from, to) of a point's index, read without the rest of the file: the agent compares
   * against the previous point's index range by range instead of holding it whole. Only the header is checked
   * here (the whole index is checked when a cycle starts against it); the agent checks the entries it received
   * against the header's entries checksum once it has them all.
   */
  async indexRange(pointId: number, diskId: number, from: number, to: number): Promise<Buffer> {
    const disk = this.#disk(pointId, diskId);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from || to > disk.block_count || to - from > MAX_INDEX_RANGE_ENTRIES) {
      throw new FerryError('BAD_REQUEST', `entry range [${from}, ${to}) is not within the index's ${disk.block_count} entries (at most ${MAX_INDEX_RANGE_ENTRIES} per request)`);
    }
    const { header, entries } = await this.indexes.readEntries(pointId, diskId, from, to - from);
    return Buffer.concat([encodeIndexHeader(header), entries]);
  }

  /**
   * Streams the data blocks in [from, to) of a point's disk as BLOCK + CHUNK frame pairs (stored payloads as
   * they are; the client decompresses and checks each plaintext against its id). `write` resolves when the
   * consumer wants more, which carries back-pressure to the disk reads.
   *
   * Chunks are read ahead up to READ_AHEAD_BYTES before anything is written: a damaged chunk within that window
   * (a whole restore request of the ISO's size) fails the request with a CHUNK_DAMAGED reply naming the block,
   * instead of a stream cut off midway that the client can only call truncated.
   */
  async streamBlocks(pointId: number, diskId: number, from: number, to: number, write: (b: Buffer) => Promise<void>): Promise<void> {
    const disk = this.#disk(pointId, diskId);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from || to > disk.block_count || to - from > MAX_STREAM_BLOCKS) {
      throw new FerryError('BAD_REQUEST', `block range [${from}, ${to}) is not within the disk's ${disk.block_count} blocks (at most ${MAX_STREAM_BLOCKS} per request)`);
    }
    const { entries } = await this.indexes.readEntries(pointId, diskId, from, to - from);
    let pending: Buffer[] = [encodeStreamHeader()];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      for (const b of pending) await write(b);
      pending = [];
      pendingBytes = 0;
    };
    let frames = 0;
    for (let i = 0; i < to - from; i++) {
      const e = decodeIndexEntry(entries, i * INDEX_ENTRY_BYTES);
      if (e.kind !== BlockKind.Data) continue;
      const id = e.chunkId.toString('hex');
      let chunk: Awaited<ReturnType<ChunkStore['readRaw']>>;
      try {
        chunk = await this.chunks.readRaw(id);
      } catch (err) {
        if (!(err instanceof FerryError && err.code === 'CHUNK_DAMAGED')) throw err;
        throw new FerryError('CHUNK_DAMAGED', `point ${pointId} disk ${disk.key} block ${from + i}: ${err.message}; this point cannot be restored (run \`ferry-appliance verify\`)`, { cause: err });
      }
      pending.push(encodeBlockFrame({ disk: 0, kind: e.kind, blockNo: from + i, xxh64: e.xxh64, chunkId: e.chunkId }));
      pending.push(...encodeChunkFrame(e.chunkId, chunk.header.codec, chunk.header.rawLength, chunk.payload));
      pendingBytes += chunk.payload.length;
      frames += 2;
      if (pendingBytes >= READ_AHEAD_BYTES) await flush();
    }
    pending.push(encodeEndFrame(frames));
    await flush();
  }

  #committed(pointId: number): CycleRow {
    const c = this.cycles.get(pointId);
    if (!c || c.state !== 'committed') throw new FerryError('POINT_NOT_FOUND', `point ${pointId} does not exist`);
    return c;
  }

  #disk(pointId: number, diskId: number) {
    this.#committed(pointId);
    const d = this.cycles.disks(pointId).find((r) => r.disk_id === diskId);
    if (!d) throw new FerryError('DISK_NOT_FOUND', `point ${pointId} has no disk ${diskId}`);
    return d;
  }

  #toPoint(c: CycleRow): Point {
    const stats = c.stats ? (JSON.parse(c.stats) as Omit<PointStats, 'bytesStored'>) : { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 0 };
    return {
      id: c.id,
      name: c.point_name ?? '',
      sourceId: c.source_id,
      sourceName: this.sources.name(c.source_id),
      createdAt: c.finished_at ?? c.started_at,
      stats: { ...stats, bytesStored: c.bytes_stored },
      disks: this.cycles.disks(c.id).map((d) => ({
        diskId: d.disk_id,
        key: d.key,
        size: d.size,
        blockSize: d.block_size,
        blockCount: d.block_count,
        layout: d.layout ? (JSON.parse(d.layout) as unknown) : null,
        dataBlocks: d.data_blocks,
        zeroBlocks: d.zero_blocks,
        unusedBlocks: d.unused_blocks,
      })),
    };
  }
}
