import {
  BlockKind,
  type BlockIndex,
  blockCountFor,
  chunkIdOf,
  CodecError,
  decompressInto,
  encodeIndexEntry,
  FerryError,
  FrameType,
  readFrames,
  StreamFormatError,
  type CommitCycleRequest,
  type CycleState,
  type StartCycleRequest,
  type UploadResponse,
  xxh64,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import type { ChunkStore, StagedChunk } from '../store/chunk-store.js';
import type { IndexFiles } from '../store/index-file.js';
import type { ChunkGuard } from '../gc/guard.js';
import type { SourceRepository } from '../sources/repository.js';
import type { CycleDiskRow, CycleRepository, CycleRow } from './repository.js';
import { KeyedLock } from '../keyed-lock.js';
import { diskFullOr, faultPoint } from '../faults.js';

/** Bound on one upload request's staged data, so a client cannot make the appliance buffer without limit. */
const MAX_STAGED_BYTES = 512 * 1024 * 1024;

interface DiskCursor {
  row: CycleDiskRow;
  next: number;
  first: number;
  entries: Buffer[];
}

/** What jobs need to know about cycles (implemented by the job service). */
export interface CycleHooks {
  /** Refuses a cycle the source's job does not allow; returns the job the cycle belongs to, or null. */
  beforeCycleStart(sourceId: number): number | null;
  cycleStarted(jobId: number, cycleId: number, resumed: boolean): void;
  cycleCommitted(jobId: number, cycleId: number, pointName: string): Promise<void>;
}

export class CycleService {
  readonly #lock = new KeyedLock();
  /** Chunk ids known present per cycle (its previous points' chunks plus what it stored), to skip a stat per block. */
  readonly #known = new Map<number, Set<string>>();
  #active = 0;

  constructor(
    private readonly cycles: CycleRepository,
    private readonly sources: SourceRepository,
    private readonly chunks: ChunkStore,
    private readonly indexes: IndexFiles,
    private readonly defaultBlockSize: number,
    private readonly log: Logger,
    private readonly hooks: CycleHooks,
    private readonly guard: ChunkGuard,
  ) {
    // Cycles left running by the last process: protected as if they started now (nothing older is remembered).
    for (const id of cycles.runningIds()) guard.cycleStarted(id);
  }

  state(cycleId: number): CycleState {
    const c = this.#get(cycleId);
    return this.#toState(c, false);
  }

  sourceOf(cycleId: number): number {
    return this.#get(cycleId).source_id;
  }

  /**
   * Starts a cycle, or resumes the source's running one when it covers the same disks (a crashed agent or a
   * dropped link continues from the last acknowledged block instead of starting over).
   */
  async start(sourceId: number, req: StartCycleRequest): Promise<CycleState> {
    const blockSize = req.blockSize ?? this.defaultBlockSize;
    if (new Set(req.disks.map((d) => d.key)).size !== req.disks.length) {
      throw new FerryError('DISK_INVALID', 'the same disk is listed twice in one cycle');
    }
    const jobId = this.hooks.beforeCycleStart(sourceId);
    const diskIds = req.disks.map((d) => this.sources.upsertDisk(sourceId, d));
    const running = this.cycles.running(sourceId);
    if (running) {
      const disks = this.cycles.disks(running.id);
      const same =
        disks.length === req.disks.length &&
        disks.every((d, i) => d.disk_id === diskIds[i] && d.size === req.disks[i]!.size && d.block_size === blockSize);
      const intact = same && (await Promise.all(disks.map((d) => this.indexes.exists(running.id, d.disk_id)))).every(Boolean);
      if (same && !intact) this.log.warn({ cycle: running.id }, 'running cycle has no index files (crash at its start): starting anew');
      if (intact) {
        this.log.info({ cycle: running.id, sourceId }, 'resuming running cycle');
        this.guard.cycleStarted(running.id);
        if (jobId !== null) this.hooks.cycleStarted(jobId, running.id, true);
        return this.#toState(running, true);
      }
      this.log.info({ cycle: running.id, sourceId }, 'abandoning running cycle: the disk set changed');
      this.cycles.abandon(running.id);
      this.#known.delete(running.id);
      this.guard.cycleEnded(running.id);
    }
    const disks = req.disks.map((d, i) => ({
      diskId: diskIds[i]!,
      size: d.size,
      blockSize,
      blockCount: blockCountFor(d.size, blockSize),
      previousCycleId: this.cycles.previousPointFor(sourceId, diskIds[i]!, blockSize),
      layout: d.layout ? JSON.stringify(d.layout) : null,
    }));
    const id = this.cycles.create(sourceId, disks);
    this.guard.cycleStarted(id);
    for (const d of disks) {
      await this.indexes.create(id, d.diskId, { blockSize, diskSize: d.size, blockCount: d.blockCount });
    }
    this.log.info({ cycle: id, sourceId, disks: disks.length }, 'cycle started');
    if (jobId !== null) this.hooks.cycleStarted(jobId, id, false);
    return this.#toState(this.#get(id), false);
  }

  async missing(ids: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const id of ids) {
      // Touched first: the agent will name a chunk reported present without sending it (see ChunkGuard).
      this.guard.touch(this.chunks.keyOf(id));
      if (!(await this.chunks.has(id))) out.push(id);
    }
    return out;
  }

  /**
   * Ingests one frame stream. Chunks are verified (decompressed, re-hashed) and staged; blocks must arrive in
   * order per disk and name a chunk that is stored or in this stream. At END: chunks fsynced and renamed,
   * then index entries written and fsynced, then the new positions committed in SQLite — only then is the
   * batch acknowledged. Any error discards the whole batch: nothing of it is stored or acknowledged.
   */
  ingest(cycleId: number, body: AsyncIterable<Buffer>): Promise<UploadResponse> {
    return this.#counted(() => this.#ingest(cycleId, body));
  }

  /** Uploads and commits under way (transport preparation waits for none). */
  get active(): number {
    return this.#active;
  }

  async #counted<T>(fn: () => Promise<T>): Promise<T> {
    this.#active++;
    try {
      return await fn();
    } catch (err) {
      throw diskFullOr(err);
    } finally {
      this.#active--;
    }
  }

  #ingest(cycleId: number, body: AsyncIterable<Buffer>): Promise<UploadResponse> {
    return this.#lock.run(cycleId, async () => {
      const cycle = this.#running(cycleId);
      const rows = this.cycles.disks(cycleId);
      const known = await this.#knownChunks(cycle, rows);
      const cursors = rows.map((row): DiskCursor => ({ row, next: row.next_block, first: row.next_block, entries: [] }));
      const maxRaw = Math.max(...rows.map((r) => r.block_size));
      const scratch = Buffer.allocUnsafe(maxRaw);
      const staged = new Map<string, StagedChunk>();
      const stagedShape = new Map<string, { rawLength: number; xxh64: bigint }>();
      let stagedBytes = 0;
      let deduplicated = 0;
      try {
        for await (const frame of readFrames(body)) {
          if (frame.type === FrameType.Chunk) {
            const id = frame.id.toString('hex');
            if (frame.rawLength === 0 || frame.rawLength > maxRaw) {
              throw new FerryError('STREAM_INVALID', `chunk ${id} has raw length ${frame.rawLength}; blocks of this cycle are at most ${maxRaw} bytes`);
            }
            const plain = scratch.subarray(0, frame.rawLength);
            try {
              decompressInto(frame.codec, frame.payload, plain);
            } catch (err) {
              throw new FerryError('CHUNK_MISMATCH', `chunk ${id} does not decode: ${(err as CodecError).message}; nothing of this batch was stored`);
            }
            if (!chunkIdOf(plain).equals(frame.id)) {
              throw new FerryError('CHUNK_MISMATCH', `chunk ${id} does not hash to its id; nothing of this batch was stored`);
            }
            // Dedupe against the disk, not against what earlier points name: a chunk that vanished must be storable again.
            this.guard.touch(this.chunks.keyOf(id));
            if (staged.has(id) || (await this.chunks.has(id))) {
              deduplicated++;
              known.add(id);
              continue;
            }
            stagedShape.set(id, { rawLength: frame.rawLength, xxh64: xxh64(plain) });
            const s = await this.chunks.stage(frame.id, frame.codec, frame.rawLength, frame.payload);
            staged.set(id, s);
            stagedBytes += s.bytes;
            if (stagedBytes > MAX_STAGED_BYTES) throw new FerryError('PAYLOAD_TOO_LARGE', `one upload may stage at most ${MAX_STAGED_BYTES} bytes`);
          } else if (frame.type === FrameType.Block) {
            const cur = cursors[frame.disk];
            if (!cur) throw new FerryError('STREAM_INVALID', `block frame names disk slot ${frame.disk}; this cycle has ${cursors.length}`);
            if (frame.blockNo !== cur.next) {
              throw new FerryError(
                'BLOCK_OUT_OF_ORDER',
                `disk slot ${frame.disk}: got block ${frame.blockNo}, expected block ${cur.next} (the next unacknowledged one)`,
              );
            }
            if (frame.blockNo >= cur.row.block_count) {
              throw new FerryError('STREAM_INVALID', `disk slot ${frame.disk} has ${cur.row.block_count} blocks; got block ${frame.blockNo}`);
            }
            if (frame.kind === BlockKind.Pending) throw new FerryError('STREAM_INVALID', `block ${frame.blockNo}: kind Pending cannot be sent`);
            if (frame.kind === BlockKind.Data) {
              const id = frame.chunkId.toString('hex');
              const shape = stagedShape.get(id);
              const length = Math.min(cur.row.block_size, cur.row.size - frame.blockNo * cur.row.block_size);
              if (shape && (shape.rawLength !== length || shape.xxh64 !== frame.xxh64)) {
                throw new FerryError('STREAM_INVALID', `disk slot ${frame.disk} block ${frame.blockNo} names chunk ${id}, whose length or xxh64 does not fit that block`);
              }
              if (!staged.has(id) && !known.has(id)) {
                this.guard.touch(this.chunks.keyOf(id));
                if (!(await this.chunks.has(id))) {
                  throw new FerryError('CHUNK_MISSING', `disk slot ${frame.disk} block ${frame.blockNo} names chunk ${id}, which the appliance does not hold`);
                }
                known.add(id);
              }
            }
            cur.entries.push(encodeIndexEntry({ kind: frame.kind, xxh64: frame.xxh64, chunkId: frame.chunkId }));
            cur.next++;
          }
        }
      } catch (err) {
        await this.chunks.discard([...staged.values()]);
        if (err instanceof StreamFormatError) throw new FerryError('STREAM_INVALID', err.message, { cause: err });
        throw err;
      }
      // Write ordering: chunk files durable → index entries durable → positions committed.
      try {
        // Touched again just before they become visible to a collection's sweep.
        for (const s of staged.values()) this.guard.touch(s.key);
        await this.chunks.commitStaged([...staged.values()]);
        for (const cur of cursors) {
          if (cur.entries.length > 0) await this.indexes.writeEntries(cycleId, cur.row.disk_id, cur.first, Buffer.concat(cur.entries));
        }
      } catch (err) {
        // Nothing of this batch is acknowledged; renamed chunks stay (complete, unreferenced until resent).
        await this.chunks.discard([...staged.values()]);
        throw err;
      }
      for (const id of staged.keys()) known.add(id);
      const bytesStored = [...staged.values()].reduce((n, s) => n + s.bytes, 0);
      const progress = cursors.map((c) => ({ slot: c.row.slot, nextBlock: c.next }));
      this.cycles.acknowledge(cycleId, progress, staged.size, bytesStored);
      faultPoint('before-ack');
      return { chunksStored: staged.size, chunksDeduplicated: deduplicated, bytesStored, disks: progress };
    });
  }

  /** Seals every disk's index and commits the point, after checking that every named chunk is on disk. */
  commit(cycleId: number, req: CommitCycleRequest): Promise<{ pointId: number; name: string }> {
    return this.#counted(() => this.#commit(cycleId, req));
  }

  #commit(cycleId: number, req: CommitCycleRequest): Promise<{ pointId: number; name: string }> {
    return this.#lock.run(cycleId, async () => {
      this.#running(cycleId);
      const rows = this.cycles.disks(cycleId);
      for (const r of rows) {
        if (r.next_block !== r.block_count) {
          throw new FerryError('CYCLE_INCOMPLETE', `disk ${r.key} has ${r.next_block} of ${r.block_count} blocks acknowledged`);
        }
      }
      const counts: { slot: number; data: number; zero: number; unused: number }[] = [];
      const loaded: BlockIndex[] = [];
      const rewind: { slot: number; nextBlock: number }[] = [];
      let missingCount = 0;
      let firstMissing = '';
      for (const r of rows) {
        const index = await this.indexes.loadForCommit(cycleId, r.disk_id);
        loaded.push(index);
        const k = { slot: r.slot, data: 0, zero: 0, unused: 0 };
        const present = new Map<string, boolean>();
        let firstBad = -1;
        for (let n = 0; n < index.header.blockCount; n++) {
          const kind = index.kind(n);
          if (kind === BlockKind.Zero) k.zero++;
          else if (kind === BlockKind.Unused) k.unused++;
          else if (kind === BlockKind.Pending) throw new FerryError('CYCLE_INCOMPLETE', `disk ${r.key} block ${n} was never recorded`);
          else {
            k.data++;
            // A committed point never names a missing chunk: check them all on disk, not from memory.
            const id = index.chunkIdHex(n);
            let ok = present.get(id);
            if (ok === undefined) {
              ok = await this.chunks.has(id);
              present.set(id, ok);
              if (!ok) {
                missingCount++;
                firstMissing ||= id;
              }
            }
            if (!ok && firstBad < 0) firstBad = n;
          }
        }
        if (firstBad >= 0) rewind.push({ slot: r.slot, nextBlock: firstBad });
        counts.push(k);
      }
      if (rewind.length > 0) {
        // Un-acknowledge from the first block whose chunk vanished, so the next run sends those blocks again.
        this.cycles.acknowledge(cycleId, rewind, 0, 0);
        this.#known.delete(cycleId);
        throw new FerryError(
          'CHUNK_MISSING',
          `${missingCount} chunk(s) named by this cycle are no longer on the appliance (first: ${firstMissing}); the point was not committed. ` +
            `Run the backup again: it resumes from block ${Math.min(...rewind.map((x) => x.nextBlock))}`,
        );
      }
      for (const [i, r] of rows.entries()) await this.indexes.seal(cycleId, r.disk_id, loaded[i]!);
      const name = this.cycles.commit(cycleId, counts, req.stats);
      faultPoint('catalog-committed');
      this.guard.cycleEnded(cycleId);
      this.#known.delete(cycleId);
      this.log.info({ cycle: cycleId, name }, 'point committed');
      const jobId = this.cycles.get(cycleId)?.job_id ?? null;
      if (jobId !== null) {
        // The point is committed whatever the job does next; a failure there is logged, not sent to the agent.
        await this.hooks.cycleCommitted(jobId, cycleId, name).catch((err: unknown) => this.log.error({ err, cycle: cycleId, jobId }, 'job update after commit failed'));
      }
      return { pointId: cycleId, name };
    });
  }

  /** Abandons a running cycle (its job was cancelled or completed); its index files are left to GC. */
  abandon(cycleId: number): void {
    this.cycles.abandon(cycleId);
    this.guard.cycleEnded(cycleId);
    this.#known.delete(cycleId);
  }

  #get(cycleId: number): CycleRow {
    const c = this.cycles.get(cycleId);
    if (!c) throw new FerryError('CYCLE_NOT_FOUND', `cycle ${cycleId} does not exist`);
    return c;
  }

  #running(cycleId: number): CycleRow {
    const c = this.#get(cycleId);
    if (c.state !== 'running') throw new FerryError('CYCLE_NOT_RUNNING', `cycle ${cycleId} is ${c.state}`);
    return c;
  }

  async #knownChunks(cycle: CycleRow, rows: CycleDiskRow[]): Promise<Set<string>> {
    let known = this.#known.get(cycle.id);
    if (known) return known;
    known = new Set();
    for (const r of rows) {
      if (r.previous_cycle_id === null) continue;
      const prev = await this.indexes.load(r.previous_cycle_id, r.disk_id);
      for (let n = 0; n < prev.header.blockCount; n++) if (prev.kind(n) === BlockKind.Data) known.add(prev.chunkIdHex(n));
    }
    this.#known.set(cycle.id, known);
    return known;
  }

  #toState(c: CycleRow, resumed: boolean): CycleState {
    return {
      id: c.id,
      sourceId: c.source_id,
      state: c.state,
      resumed,
      disks: this.cycles.disks(c.id).map((d) => ({
        slot: d.slot,
        diskId: d.disk_id,
        key: d.key,
        size: d.size,
        blockSize: d.block_size,
        blockCount: d.block_count,
        nextBlock: d.next_block,
        previousPointId: d.previous_cycle_id,
      })),
    };
  }
}
