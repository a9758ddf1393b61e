import {
  API_PREFIX,
  BlockKind,
  chunkIdOf,
  Codec,
  Compressor,
  FerryError,
  ProgressLine,
  xxh64,
  type ApplianceClient,
  type CycleDiskState,
  type CycleState,
  type MissingChunksResponse,
  type PointStats,
  type ProgressSink,
  type UploadResponse,
} from '@ferry/protocol';
import type { SourceDisk } from '../disk/source.js';
import { DIRECT_IO_SLACK } from '../disk/block-reader.js';
import { UploadBatch } from './batch.js';
import { PreviousIndex } from './previous-index.js';
import { CycleReporter, PROGRESS_INTERVAL_MS, type CycleProgress } from './cycle-progress.js';
import type { LiveThrottle, StorageThrottle } from './throttle.js';

export type { SourceDisk };
export type { CycleProgress };

export interface CycleOptions {
  client: ApplianceClient;
  disks: SourceDisk[];
  progress?: ProgressSink | undefined;
  /** Compressed bytes per upload batch; one batch uploads while the next is read. */
  batchBytes?: number;
  /** Reads in flight at once (queue depth); with a throttle, its current queue depth applies instead. */
  readAhead?: number;
  /**
   * Stops the cycle between blocks, before an upload and between the frames of one: it then throws
   * FerryError CYCLE_STOPPED. Blocks the appliance acknowledged stay there; the next run resumes the cycle.
   */
  signal?: AbortSignal | undefined;
  /** Network pace of the upload frames and share of disk time for reads; may change while the cycle runs. */
  throttle?: LiveThrottle | undefined;
  /** Called at start, about once a second, at each phase change and when every block is done. */
  onProgress?: ((p: CycleProgress) => void) | undefined;
}

export interface CycleResult extends PointStats {
  point: { id: number; name: string };
  resumed: boolean;
}

const MAX_BATCH_BLOCKS = 8192;
const MAX_BATCH_CHUNKS = 1024;

type Counters = Omit<PointStats, 'seconds'>;

/** What every disk of one attempt at a cycle shares. */
interface Run {
  client: ApplianceClient;
  cycleId: number;
  c: Counters;
  progress: ProgressLine | null;
  reporter: CycleReporter | null;
  batchBytes: number;
  /** Read live: a throttle change of the queue depth applies to the next reads. */
  readAhead: () => number;
  trustPrevious: boolean;
  throttle: LiveThrottle | undefined;
  signal: AbortSignal | undefined;
  /** The phase stays Transferring while the batch flushed last, which had chunks, may still be uploading. */
  lastBatchHadChunks: boolean;
}

function throwIfStopped(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const why = typeof signal.reason === 'string' ? ` (${signal.reason})` : '';
  throw new FerryError(
    'CYCLE_STOPPED',
    `the cycle was stopped${why}; blocks the appliance acknowledged are kept and the next run of the cycle continues from them`,
  );
}

interface ReadBlock {
  n: number;
  /** The block with bytes outside used extents zeroed, or null when no byte of it is in use. */
  data: Buffer | null;
  /** The pool buffer `data` lives in, to hand back once the block is done with (null: not from the pool). */
  pooled: Buffer | null;
  bytesRead: number;
}

/**
 * Block-sized read buffers, reused: reading a disk must not leave a megabyte per block to the garbage
 * collector, which lets tens of them pile up before it runs (the agent's footprint, docs/benchmarks.md).
 */
export class BlockBuffers {
  readonly #free: Buffer[] = [];

  constructor(
    readonly size: number,
    /** At most this many idle buffers are kept; more are left to the collector. */
    readonly keep: number,
  ) {}

  take(): Buffer {
    // The slack lets the disk read straight into the buffer from an aligned address (O_DIRECT).
    return this.#free.pop() ?? Buffer.allocUnsafe(this.size + DIRECT_IO_SLACK);
  }

  give(b: Buffer | null): void {
    if (b?.length === this.size + DIRECT_IO_SLACK && this.#free.length < this.keep) this.#free.push(b);
  }
}

/**
 * Reads the used bytes of block n. Bytes the filesystem does not use are zeroed before hashing: blocks
 * dedupe and compress better, and deleted data never leaves the source.
 */
async function readBlock(d: SourceDisk, n: number, pool: BlockBuffers, storage: StorageThrottle | undefined, signal: AbortSignal | undefined): Promise<ReadBlock> {
  const start = n * pool.size;
  const end = Math.min(start + pool.size, d.disk.size);
  const extents = d.usage.extentsIn(start, end);
  const first = extents[0];
  const last = extents[extents.length - 1];
  if (!first || !last) return { n, data: null, pooled: null, bytesRead: 0 };
  const base = pool.take();
  const length = last.end - first.start;
  const read = (): Promise<Buffer> => d.disk.read(first.start, length, base);
  let span: Buffer;
  try {
    span = await (storage ? storage.read(read, signal) : read());
  } catch (err) {
    pool.give(base);
    throw err;
  }
  // A disk may return its own buffer (a snapshot stitches several reads) rather than fill ours.
  const inBase = span.buffer === base.buffer;
  let data: Buffer;
  if (first.start === start && last.end === end) {
    data = span;
  } else {
    data = base.subarray(0, end - start);
    const at = first.start - start;
    if (inBase) base.copyWithin(at, span.byteOffset - base.byteOffset, span.byteOffset - base.byteOffset + length);
    else span.copy(data, at);
    data.fill(0, 0, at);
    data.fill(0, last.end - start);
  }
  for (let i = 1; i < extents.length; i++) data.fill(0, extents[i - 1]!.end - start, extents[i]!.start - start);
  const usesBase = data.buffer === base.buffer;
  if (!usesBase) pool.give(base);
  return { n, data, pooled: usesBase ? base : null, bytesRead: length };
}

/**
 * Where a batch's compressed payloads are copied (the compressor's output is a view into its scratch buffer).
 * Two arenas take turns, one per batch: the one filling and the one uploading; neither becomes garbage.
 */
class PayloadArena {
  readonly #buf: Buffer;
  #used = 0;

  constructor(bytes: number) {
    this.#buf = Buffer.allocUnsafe(bytes);
  }

  /** A copy of `src` inside the arena, or a fresh copy when the arena is full (a batch past its budget). */
  copy(src: Buffer): Buffer {
    if (this.#used + src.length > this.#buf.length) return Buffer.from(src);
    const view = this.#buf.subarray(this.#used, this.#used + src.length);
    src.copy(view);
    this.#used += src.length;
    return view;
  }

  reset(): void {
    this.#used = 0;
  }
}

const ZEROES = Buffer.alloc(64 * 1024);

/**
 * Compressed chunk bytes per upload. One batch uploads while the next fills, so twice this (plus a block) is in
 * memory. Measured on a 4 GiB disk: 16 MiB batches peaked at 150 MiB RSS, 2 MiB at 93 MiB, at the same speed
 * (docs/benchmarks.md). The next batch's missing-chunks query overlaps the current upload, so small batches
 * cost no idle round trip for it.
 */
export const DEFAULT_BATCH_BYTES = 2 * 1024 * 1024;

function isAllZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZEROES.length) {
    const part = b.subarray(at, Math.min(b.length, at + ZEROES.length));
    if (!part.equals(ZEROES.subarray(0, part.length))) return false;
  }
  return true;
}

/** The frames of one upload, paced by the network throttle; a stop ends the stream (and so the request). */
async function* paced(frames: Iterable<Buffer>, run: Run): AsyncGenerator<Buffer> {
  for (const frame of frames) {
    await run.throttle?.network.take(frame.length, run.signal);
    throwIfStopped(run.signal);
    run.c.bytesSent += frame.length;
    yield frame;
  }
}

/** Which of the batch's chunks the appliance lacks (only those are sent). */
async function missingChunks(run: Run, batch: UploadBatch): Promise<Set<string>> {
  throwIfStopped(run.signal);
  const ids = [...batch.chunks.keys()];
  const missing = new Set<string>();
  for (let i = 0; i < ids.length; i += 4096) {
    const r = await run.client.json<MissingChunksResponse>(`${API_PREFIX}/chunks/missing`, { method: 'POST', body: { ids: ids.slice(i, i + 4096) } });
    for (const id of r.missing) missing.add(id);
  }
  return missing;
}

async function upload(run: Run, batch: UploadBatch, missing: Set<string>): Promise<UploadResponse> {
  throwIfStopped(run.signal);
  const r = await run.client.json<UploadResponse>(`${API_PREFIX}/cycles/${run.cycleId}/stream`, { method: 'POST', stream: paced(batch.frames(missing), run) });
  run.c.bytesStored += r.bytesStored;
  return r;
}

async function backupDisk(run: Run, d: SourceDisk, state: CycleDiskState): Promise<void> {
  const { client, c, progress, reporter, batchBytes, trustPrevious } = run;
  // Read range by range as the blocks go by, never held whole (previous-index.ts); not at all when every block
  // of the disk was acknowledged already (a resumed cycle).
  const prev =
    state.previousPointId === null || !trustPrevious || state.nextBlock >= state.blockCount ? null : await PreviousIndex.open(client, state.previousPointId, state.diskId);
  const compressor = new Compressor();
  const { blockSize, blockCount } = state;
  let batch = new UploadBatch();
  // A batch is flushed once its payloads reach batchBytes, so one more block always fits.
  const arenas = [new PayloadArena(batchBytes + blockSize), new PayloadArena(batchBytes + blockSize)];
  let arena = 0;
  // Held in an object: the flush closure reassigns it, which control-flow narrowing cannot follow.
  const uploading: { inFlight: Promise<UploadResponse> | null } = { inFlight: null };
  const flush = async (): Promise<void> => {
    if (batch.empty) {
      if (uploading.inFlight) await uploading.inFlight;
      return;
    }
    const sent = batch;
    batch = new UploadBatch();
    // The new batch takes the arena of the upload before `sent`, which is over once this flush returns.
    arena ^= 1;
    // Asked while the previous batch is still streaming, so a link with a long round trip does not idle between
    // batches. A chunk that the previous batch is sending right now is then sent twice; the appliance keeps one.
    const missing = missingChunks(run, sent);
    missing.catch(() => undefined);
    if (uploading.inFlight) await uploading.inFlight;
    arenas[arena]!.reset();
    run.lastBatchHadChunks = sent.chunks.size > 0;
    const expectNext = sent.blocks[sent.blocks.length - 1]!.blockNo + 1;
    const inFlight = missing.then((m) => upload(run, sent, m)).finally(() => {
      for (const b of sent.buffers) pool.give(b);
    }).then((r) => {
      const ack = r.disks.find((x) => x.slot === state.slot);
      if (ack?.nextBlock !== expectNext) {
        throw new FerryError('BLOCK_OUT_OF_ORDER', `appliance acknowledged up to block ${ack?.nextBlock} of disk ${d.key}, expected ${expectNext}`);
      }
      return r;
    });
    // Surface an upload failure at the next flush rather than as an unhandled rejection.
    inFlight.catch(() => undefined);
    uploading.inFlight = inFlight;
  };

  // As many idle buffers as reads in flight; a raw (incompressible) block's buffer is its payload and comes back
  // once its batch is uploaded.
  const pool = new BlockBuffers(blockSize, run.readAhead());
  const reads: Promise<ReadBlock>[] = [];
  let nextRead = state.nextBlock;
  const fill = (): void => {
    while (reads.length < run.readAhead() && nextRead < blockCount) reads.push(readBlock(d, nextRead++, pool, run.throttle?.storage, run.signal));
  };
  try {
    fill();
    while (reads.length > 0) {
      throwIfStopped(run.signal);
      const { n, data, pooled, bytesRead } = await reads.shift()!;
      let keep = false;
      fill();
      c.bytesRead += bytesRead;
      let kind: BlockKind = BlockKind.Unused;
      let hash = 0n;
      let chunkId: Buffer = Buffer.alloc(32);
      if (data && !isAllZero(data)) {
        kind = BlockKind.Data;
        hash = xxh64(data);
        c.bytesCompared += data.length;
        const before = prev ? await prev.entry(n) : null;
        if (before?.kind === BlockKind.Data && before.xxh64 === hash) {
          chunkId = before.chunkId;
        } else {
          c.bytesChanged += data.length;
          chunkId = chunkIdOf(data);
          const { codec, payload } = compressor.compress(data);
          // A compressed payload is a view into the compressor's scratch buffer: copy it into the batch's arena. A
          // raw one is the block just read, which nothing else holds: keep it (its buffer returns to the pool).
          const added = batch.addChunk(chunkId.toString('hex'), { id: chunkId, codec, rawLength: data.length, payload: codec === Codec.None ? payload : arenas[arena]!.copy(payload) });
          keep = added && codec === Codec.None;
          if (keep && pooled) batch.buffers.push(pooled);
        }
      } else if (data) {
        kind = BlockKind.Zero;
      }
      if (!keep) pool.give(pooled);
      batch.blocks.push({ disk: state.slot, blockNo: n, kind, xxh64: hash, chunkId });
      if (batch.chunkBytes >= batchBytes || batch.blocks.length >= MAX_BATCH_BLOCKS || batch.chunks.size >= MAX_BATCH_CHUNKS) await flush();
      reporter?.block(state.slot, n, bytesRead);
      if (reporter) reporter.phase = batch.chunks.size > 0 || run.lastBatchHadChunks ? 'Transferring' : 'Comparing';
      progress?.update(c.bytesRead, `changed ${Math.round(c.bytesChanged / 1048576)} MiB`);
      reporter?.update(c);
    }
    // The rest of the previous index (a disk that shrank) and its end are checked before the last batch goes.
    await prev?.finish();
    await flush();
    if (uploading.inFlight) await uploading.inFlight;
  } finally {
    // Nothing of this disk outlives the attempt: a stopped or failed cycle must not read or upload behind the
    // next one, nor read a disk the caller is about to close.
    await Promise.allSettled(reads);
    await uploading.inFlight?.catch(() => undefined);
    await prev?.close();
  }
}

/**
 * One backup cycle: full when the appliance has no previous point for a disk, otherwise incremental.
 * If the commit finds that a chunk named by the previous point vanished from the appliance (bit rot, a
 * deleted file), the appliance rewinds the cycle to that block; the agent then resumes once without trusting
 * the previous point, so every block's chunk is checked against the store and missing ones are sent again.
 * The same when the previous point's index arrives damaged (PREVIOUS_INDEX_DAMAGED, previous-index.ts): no block
 * was compared against a damaged entry, and the rest of the cycle compares against nothing.
 */
export async function runCycle(opts: CycleOptions): Promise<CycleResult> {
  try {
    return await attemptCycle(opts, true);
  } catch (err) {
    if (!(err instanceof FerryError && (err.code === 'CHUNK_MISSING' || err.code === 'PREVIOUS_INDEX_DAMAGED'))) throw err;
    const from = err.code === 'CHUNK_MISSING' ? 'the rewound block' : 'the last acknowledged block';
    opts.progress?.write(`${err.message}\nresending from ${from} without trusting the previous point\n`);
    return attemptCycle(opts, false);
  }
}

async function attemptCycle(opts: CycleOptions, trustPrevious: boolean): Promise<CycleResult> {
  const t0 = Date.now();
  const { client, disks } = opts;
  throwIfStopped(opts.signal);
  const cycle = await client.json<CycleState>(`${API_PREFIX}/cycles`, {
    method: 'POST',
    body: { disks: disks.map((d) => ({ key: d.key, size: d.disk.size, layout: d.layout, usedBytes: d.usage.usedBytes() })) },
  });
  const c: Counters = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, bytesStored: 0 };
  const perDisk = cycle.disks.map((s) => {
    const d = disks[s.slot]!;
    const bytesTotal = d.usage.extentsIn(s.nextBlock * s.blockSize, d.disk.size).reduce((n, e) => n + e.end - e.start, 0);
    return { slot: s.slot, key: d.key, blocksDone: s.nextBlock, blockCount: s.blockCount, bytesDone: 0, bytesTotal };
  });
  const remaining = perDisk.reduce((sum, d) => sum + d.bytesTotal, 0);
  const progress = opts.progress ? new ProgressLine(cycle.resumed ? `resuming cycle ${cycle.id}` : `cycle ${cycle.id}`, remaining, opts.progress) : null;
  const reporter = opts.onProgress ? new CycleReporter(opts.onProgress, { cycleId: cycle.id, resumed: cycle.resumed }, perDisk) : null;
  reporter?.update(c, true);
  const { throttle, signal } = opts;
  const run: Run = {
    client,
    cycleId: cycle.id,
    c,
    progress,
    reporter,
    batchBytes: opts.batchBytes ?? DEFAULT_BATCH_BYTES,
    readAhead: () => throttle?.storage.queueDepth ?? opts.readAhead ?? 4,
    trustPrevious,
    throttle,
    signal,
    lastBatchHadChunks: false,
  };
  // Also while reading waits for an upload to drain: the bytes sent keep moving, and so must the progress.
  const ticker = reporter ? setInterval(() => reporter.update(c), PROGRESS_INTERVAL_MS) : null;
  ticker?.unref();
  try {
    for (const s of cycle.disks) await backupDisk(run, disks[s.slot]!, s);
  } finally {
    if (ticker) clearInterval(ticker);
  }
  reporter?.update(c, true);
  // A stop that arrives after the last block still prevents the point: a cancelled job must not gain one.
  throwIfStopped(signal);
  const seconds = (Date.now() - t0) / 1000;
  const { bytesStored, ...sentStats } = c;
  const point = await client.json<{ pointId: number; name: string }>(`${API_PREFIX}/cycles/${cycle.id}/commit`, {
    method: 'POST',
    body: { stats: { ...sentStats, seconds } },
  });
  progress?.finish(`→ ${point.name}`);
  return { point: { id: point.pointId, name: point.name }, resumed: cycle.resumed, ...c, bytesStored, seconds };
}
