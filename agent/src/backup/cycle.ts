import {
  API_PREFIX,
  BlockIndex,
  BlockKind,
  chunkIdOf,
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
import type { Disk } from '../disk/block-reader.js';
import type { UsageMap } from '../disk/usage-map.js';
import { UploadBatch } from './batch.js';

export interface SourceDisk {
  key: string;
  disk: Disk;
  layout: unknown;
  usage: UsageMap;
}

export interface CycleOptions {
  client: ApplianceClient;
  disks: SourceDisk[];
  progress?: ProgressSink | undefined;
  /** Compressed bytes per upload batch; one batch uploads while the next is read. */
  batchBytes?: number;
  /** Reads in flight at once (queue depth). */
  readAhead?: number;
}

export interface CycleResult extends PointStats {
  point: { id: number; name: string };
  resumed: boolean;
}

const MAX_BATCH_BLOCKS = 8192;
const MAX_BATCH_CHUNKS = 1024;

type Counters = Omit<PointStats, 'seconds'>;

interface ReadBlock {
  n: number;
  /** The block with bytes outside used extents zeroed, or null when no byte of it is in use. */
  data: Buffer | null;
  bytesRead: number;
}

/**
 * Reads the used bytes of block n. Bytes the filesystem does not use are zeroed before hashing: blocks
 * dedupe and compress better, and deleted data never leaves the source.
 */
async function readBlock(d: SourceDisk, n: number, blockSize: number): Promise<ReadBlock> {
  const start = n * blockSize;
  const end = Math.min(start + blockSize, d.disk.size);
  const extents = d.usage.extentsIn(start, end);
  const first = extents[0];
  const last = extents[extents.length - 1];
  if (!first || !last) return { n, data: null, bytesRead: 0 };
  const span = await d.disk.read(first.start, last.end - first.start);
  let data: Buffer;
  if (first.start === start && last.end === end) {
    data = span;
  } else {
    data = Buffer.alloc(end - start);
    span.copy(data, first.start - start);
  }
  for (let i = 1; i < extents.length; i++) data.fill(0, extents[i - 1]!.end - start, extents[i]!.start - start);
  return { n, data, bytesRead: last.end - first.start };
}

const ZEROES = Buffer.alloc(16 * 1024 * 1024);

function isAllZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZEROES.length) {
    const part = b.subarray(at, Math.min(b.length, at + ZEROES.length));
    if (!part.equals(ZEROES.subarray(0, part.length))) return false;
  }
  return true;
}

async function upload(client: ApplianceClient, cycleId: number, batch: UploadBatch, c: Counters): Promise<UploadResponse> {
  const ids = [...batch.chunks.keys()];
  const missing = new Set<string>();
  for (let i = 0; i < ids.length; i += 4096) {
    const r = await client.json<MissingChunksResponse>(`${API_PREFIX}/chunks/missing`, { method: 'POST', body: { ids: ids.slice(i, i + 4096) } });
    for (const id of r.missing) missing.add(id);
  }
  const frames = [...batch.frames(missing)];
  c.bytesSent += frames.reduce((n, f) => n + f.length, 0);
  const r = await client.json<UploadResponse>(`${API_PREFIX}/cycles/${cycleId}/stream`, { method: 'POST', stream: frames });
  c.bytesStored += r.bytesStored;
  return r;
}

async function backupDisk(
  client: ApplianceClient,
  cycleId: number,
  d: SourceDisk,
  state: CycleDiskState,
  c: Counters,
  progress: ProgressLine | null,
  batchBytes: number,
  readAhead: number,
  trustPrevious: boolean,
): Promise<void> {
  const prev =
    state.previousPointId === null || !trustPrevious ? null : BlockIndex.parse(await client.bytes(`${API_PREFIX}/points/${state.previousPointId}/disks/${state.diskId}/index`));
  const compressor = new Compressor();
  const { blockSize, blockCount } = state;
  let batch = new UploadBatch();
  // Held in an object: the flush closure reassigns it, which control-flow narrowing cannot follow.
  const uploading: { inFlight: Promise<UploadResponse> | null } = { inFlight: null };
  const flush = async (): Promise<void> => {
    if (uploading.inFlight) await uploading.inFlight;
    if (batch.empty) return;
    const sent = batch;
    batch = new UploadBatch();
    const expectNext = sent.blocks[sent.blocks.length - 1]!.blockNo + 1;
    const inFlight = upload(client, cycleId, sent, c).then((r) => {
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

  const reads: Promise<ReadBlock>[] = [];
  let nextRead = state.nextBlock;
  const fill = (): void => {
    while (reads.length < readAhead && nextRead < blockCount) reads.push(readBlock(d, nextRead++, blockSize));
  };
  fill();
  while (reads.length > 0) {
    const { n, data, bytesRead } = await reads.shift()!;
    fill();
    c.bytesRead += bytesRead;
    let kind: BlockKind = BlockKind.Unused;
    let hash = 0n;
    let chunkId: Buffer = Buffer.alloc(32);
    if (data && !isAllZero(data)) {
      kind = BlockKind.Data;
      hash = xxh64(data);
      c.bytesCompared += data.length;
      if (prev && n < prev.header.blockCount && prev.kind(n) === BlockKind.Data && prev.xxh64(n) === hash) {
        chunkId = prev.entry(n).chunkId;
      } else {
        c.bytesChanged += data.length;
        chunkId = chunkIdOf(data);
        const { codec, payload } = compressor.compress(data);
        batch.addChunk(chunkId.toString('hex'), { id: chunkId, codec, rawLength: data.length, payload: Buffer.from(payload) });
      }
    } else if (data) {
      kind = BlockKind.Zero;
    }
    batch.blocks.push({ disk: state.slot, blockNo: n, kind, xxh64: hash, chunkId });
    if (batch.chunkBytes >= batchBytes || batch.blocks.length >= MAX_BATCH_BLOCKS || batch.chunks.size >= MAX_BATCH_CHUNKS) await flush();
    progress?.update(c.bytesRead, `changed ${Math.round(c.bytesChanged / 1048576)} MiB`);
  }
  await flush();
  if (uploading.inFlight) await uploading.inFlight;
}

/**
 * One backup cycle: full when the appliance has no previous point for a disk, otherwise incremental.
 * If the commit finds that a chunk named by the previous point vanished from the appliance (bit rot, a
 * deleted file), the appliance rewinds the cycle to that block; the agent then resumes once without trusting
 * the previous point, so every block's chunk is checked against the store and missing ones are sent again.
 */
export async function runCycle(opts: CycleOptions): Promise<CycleResult> {
  try {
    return await attemptCycle(opts, true);
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'CHUNK_MISSING')) throw err;
    opts.progress?.write(`${err.message}\nresending from the rewound block without trusting the previous point\n`);
    return attemptCycle(opts, false);
  }
}

async function attemptCycle(opts: CycleOptions, trustPrevious: boolean): Promise<CycleResult> {
  const t0 = Date.now();
  const { client, disks } = opts;
  const cycle = await client.json<CycleState>(`${API_PREFIX}/cycles`, {
    method: 'POST',
    body: { disks: disks.map((d) => ({ key: d.key, size: d.disk.size, layout: d.layout, usedBytes: d.usage.usedBytes() })) },
  });
  const c: Counters = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, bytesStored: 0 };
  const remaining = cycle.disks.reduce((sum, s) => {
    const d = disks[s.slot]!;
    return sum + d.usage.extentsIn(s.nextBlock * s.blockSize, d.disk.size).reduce((n, e) => n + e.end - e.start, 0);
  }, 0);
  const progress = opts.progress ? new ProgressLine(cycle.resumed ? `resuming cycle ${cycle.id}` : `cycle ${cycle.id}`, remaining, opts.progress) : null;
  for (const s of cycle.disks) {
    await backupDisk(client, cycle.id, disks[s.slot]!, s, c, progress, opts.batchBytes ?? 16 * 1024 * 1024, opts.readAhead ?? 4, trustPrevious);
  }
  const seconds = (Date.now() - t0) / 1000;
  const { bytesStored, ...sentStats } = c;
  const point = await client.json<{ pointId: number; name: string }>(`${API_PREFIX}/cycles/${cycle.id}/commit`, {
    method: 'POST',
    body: { stats: { ...sentStats, seconds } },
  });
  progress?.finish(`→ ${point.name}`);
  return { point: { id: point.pointId, name: point.name }, resumed: cycle.resumed, ...c, bytesStored, seconds };
}
