import {
  API_PREFIX,
  BlockIndex,
  BlockKind,
  blockLength,
  chunkIdOf,
  decompressInto,
  FerryError,
  FrameType,
  ProgressLine,
  readFrames,
  gptEntryArrayBytes,
  parseGptHeader,
  relocateGptBackup,
  xxh64,
  type ApplianceClient,
  type Point,
  type PointDisk,
  type ProgressSink,
} from '@ferry/protocol';
import { dropDeviceCache, openTarget, probeTarget, readAt, writeAt, type Target } from './target.js';

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal: number;
  disk: string;
}

export interface RestoreOptions {
  client: ApplianceClient;
  pointId: number;
  targets: string[];
  verify: boolean;
  progress?: ProgressSink | undefined;
  log?: (line: string) => void;
  /** Per source disk slot, the first block not yet written and verified: a resumed restore starts there. */
  resumeFrom?: { slot: number; nextBlock: number }[];
  /** Called after each range of blocks is written and read back, with every disk's position. */
  onVerified?: (verified: { slot: number; nextBlock: number }[]) => Promise<void>;
  /** Called about once a second with the bytes done over all disks. */
  onProgress?: (p: RestoreProgress) => void;
}

export interface RestoreResult {
  point: { id: number; name: string };
  disks: { source: string; target: string; bytesWritten: number; blocksWritten: number; verified: boolean; gptRelocated: boolean; resumedAt: number }[];
  seconds: number;
}

/**
 * Blocks per streamed request, and per read-back verification: an interrupted restore resumes at the end of
 * the last verified range, so at most this much (64 MiB at 1 MiB blocks) is written again.
 */
const RANGE_BLOCKS = 64;

/** Every check before the first byte is written: a refusal leaves every target untouched. */
async function checkTargets(point: Point, targets: string[]): Promise<void> {
  if (targets.length !== point.disks.length) {
    throw new FerryError(
      'TARGET_COUNT_MISMATCH',
      `point ${point.name} has ${point.disks.length} disk(s) (${point.disks.map((d) => `${d.key} ${d.size} bytes`).join(', ')}) but ${targets.length} target(s) were given; disks map one to one`,
    );
  }
  if (new Set(targets).size !== targets.length) throw new FerryError('TARGET_COUNT_MISMATCH', 'the same target is given twice; disks map one to one');
  for (const [i, path] of targets.entries()) {
    const src = point.disks[i]!;
    const t = await probeTarget(path);
    if (t.exists && t.size < src.size) {
      throw new FerryError(
        'TARGET_TOO_SMALL',
        `target ${path} holds ${t.size} bytes but source disk ${src.key} needs ${src.size} bytes (${src.size - t.size} more); nothing was written`,
      );
    }
  }
}

function isGpt(d: PointDisk): boolean {
  const layout = d.layout as { table?: { type?: string } } | null;
  return layout?.table?.type === 'gpt';
}

interface Counters {
  bytes: number;
  blocks: number;
}

/** Writes the data and zero blocks in [from, to) of one disk. */
async function writeRange(client: ApplianceClient, pointId: number, d: PointDisk, index: BlockIndex, t: Target, zeroed: boolean, from: number, to: number, written: Counters): Promise<number> {
  const plain = Buffer.allocUnsafe(d.blockSize);
  const zero = Buffer.alloc(d.blockSize);
  let dataInRange = 0;
  let dataBytes = 0;
  for (let n = from; n < to; n++) {
    const kind = index.kind(n);
    if (kind === BlockKind.Data) dataInRange++;
    else if (kind === BlockKind.Zero && !zeroed) {
      const len = blockLength(index.header, n);
      await writeAt(t, zero, len, n * d.blockSize);
      written.bytes += len;
      written.blocks++;
    }
  }
  if (dataInRange === 0) return 0;
  const res = await client.download(`${API_PREFIX}/points/${pointId}/disks/${d.diskId}/blocks?from=${from}&to=${to}`);
  let expectBlock = -1;
  let got = 0;
  for await (const f of readFrames(res)) {
    if (f.type === FrameType.Block) {
      expectBlock = f.blockNo;
      if (expectBlock < from || expectBlock >= to || index.kind(expectBlock) !== BlockKind.Data || index.xxh64(expectBlock) !== f.xxh64) {
        throw new FerryError('STREAM_INVALID', `the appliance sent block ${expectBlock}, which the index does not name as that data`);
      }
    } else if (f.type === FrameType.Chunk) {
      const n = expectBlock;
      const len = blockLength(index.header, n);
      if (n < 0 || f.rawLength !== len || index.chunkIdHex(n) !== f.id.toString('hex')) {
        throw new FerryError('STREAM_INVALID', `unexpected chunk ${f.id.toString('hex')} after block ${n}`);
      }
      const out = plain.subarray(0, len);
      try {
        decompressInto(f.codec, f.payload, out);
      } catch (err) {
        throw new FerryError('CHUNK_DAMAGED', `block ${n} of ${d.key}: chunk does not decode (${(err as Error).message}); the point is damaged`);
      }
      if (!chunkIdOf(out).equals(f.id) || xxh64(out) !== index.xxh64(n)) {
        throw new FerryError('CHUNK_DAMAGED', `block ${n} of ${d.key}: chunk ${f.id.toString('hex')} does not match its id; the point is damaged`);
      }
      await writeAt(t, out, len, n * d.blockSize);
      written.bytes += len;
      written.blocks++;
      dataBytes += len;
      got++;
      expectBlock = -1;
    }
  }
  if (got !== dataInRange) {
    throw new FerryError('STREAM_INVALID', `blocks ${from}–${to - 1} of ${d.key}: got ${got} of ${dataInRange} data blocks`);
  }
  return dataBytes;
}

/** Reads back the data and zero blocks in [from, to) from the medium and checks them against the index. */
async function verifyRange(d: PointDisk, index: BlockIndex, t: Target, from: number, to: number): Promise<void> {
  await dropDeviceCache(t);
  const buf = Buffer.allocUnsafe(d.blockSize);
  for (let n = from; n < to; n++) {
    const kind = index.kind(n);
    if (kind !== BlockKind.Data && kind !== BlockKind.Zero) continue;
    const len = blockLength(index.header, n);
    const view = buf.subarray(0, len);
    await readAt(t, view, len, n * d.blockSize);
    const ok = kind === BlockKind.Data ? xxh64(view) === index.xxh64(n) : view.every((b) => b === 0);
    if (!ok) throw new FerryError('VERIFY_FAILED', `block ${n} of target ${t.path} reads back different data than was written`);
  }
}

function dataBytesBelow(index: BlockIndex, end: number): number {
  let bytes = 0;
  for (let n = 0; n < end; n++) if (index.kind(n) === BlockKind.Data) bytes += blockLength(index.header, n);
  return bytes;
}

/** A larger GPT target: move the backup header and entries to its real end, and grow the protective MBR. */
async function relocateGpt(t: Target, sourceSize: number): Promise<boolean> {
  if (t.size <= sourceSize) return false;
  const head = Buffer.alloc(512 * 34);
  await readAt(t, head, head.length, 0);
  const header = head.subarray(512, 1024);
  const parsed = parseGptHeader(header, { source: t.path, lba: 1 });
  const entries = Buffer.alloc(gptEntryArrayBytes(parsed));
  await readAt(t, entries, entries.length, parsed.partitionEntryLba * 512);
  const writes = relocateGptBackup(header, entries, Math.floor(t.size / 512), 512, head.subarray(0, 512));
  // The old backup header sits inside the target now; left there, tools would see two disagreeing tables.
  await writeAt(t, Buffer.alloc(512), 512, sourceSize - 512);
  for (const w of writes) await writeAt(t, w.data, w.data.length, w.offset);
  return true;
}

/**
 * Restores a point onto its targets, range by range: each range is written, synced, read back from the medium
 * and checked before the next, and its end is reported (onVerified), so an interrupted restore resumes from the
 * last verified block instead of from zero.
 */
export async function restorePoint(opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const point = await opts.client.json<Point>(`${API_PREFIX}/points/${opts.pointId}`);
  await checkTargets(point, opts.targets);
  const indexes: BlockIndex[] = [];
  for (const d of point.disks) {
    indexes.push(BlockIndex.parse(await opts.client.bytes(`${API_PREFIX}/points/${point.id}/disks/${d.diskId}/index`)));
  }
  const positions = point.disks.map((d, slot) => ({ slot, nextBlock: Math.min(opts.resumeFrom?.find((r) => r.slot === slot)?.nextBlock ?? 0, indexes[slot]!.header.blockCount) }));
  const dataBytes = indexes.reduce((n, index) => n + dataBytesBelow(index, index.header.blockCount), 0);
  const result: RestoreResult = { point: { id: point.id, name: point.name }, disks: [], seconds: 0 };
  const done = { bytes: indexes.reduce((n, index, i) => n + dataBytesBelow(index, positions[i]!.nextBlock), 0) };
  const resumed = done.bytes > 0 || positions.some((p) => p.nextBlock > 0);
  const progress = opts.progress ? new ProgressLine(`${resumed ? 'resuming restore of' : 'restore'} ${point.name}`, dataBytes, opts.progress) : null;
  let lastReport = 0;
  const report = (disk: string, force = false): void => {
    progress?.update(done.bytes);
    if (opts.onProgress && (force || Date.now() - lastReport >= 1000)) {
      lastReport = Date.now();
      opts.onProgress({ bytesDone: done.bytes, bytesTotal: dataBytes, disk });
    }
  };
  for (const [i, d] of point.disks.entries()) {
    const index = indexes[i]!;
    const start = positions[i]!.nextBlock;
    if (start > 0) log(`${opts.targets[i]!}: resuming at block ${start} of ${index.header.blockCount} (everything before it was written and verified)`);
    const { target, zeroed, note } = await openTarget(opts.targets[i]!, d.size, { keep: resumed });
    try {
      if (note) log(note);
      const written: Counters = { bytes: 0, blocks: 0 };
      for (let from = start; from < index.header.blockCount; from += RANGE_BLOCKS) {
        const to = Math.min(from + RANGE_BLOCKS, index.header.blockCount);
        done.bytes += await writeRange(opts.client, point.id, d, index, target, zeroed, from, to, written);
        await target.file.sync();
        if (opts.verify) await verifyRange(d, index, target, from, to);
        positions[i]!.nextBlock = to;
        report(d.key);
        await opts.onVerified?.(positions.map((p) => ({ ...p })));
      }
      // Relocated after verification: relocation rewrites block 0 and the old end of the table.
      const gptRelocated = isGpt(d) ? await relocateGpt(target, d.size) : false;
      if (gptRelocated) log(`${target.path}: GPT backup header moved to the end of the larger target`);
      await target.file.sync();
      result.disks.push({ source: d.key, target: target.path, bytesWritten: written.bytes, blocksWritten: written.blocks, verified: opts.verify, gptRelocated, resumedAt: start });
    } finally {
      await target.file.close();
    }
  }
  report('', true);
  progress?.finish();
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}
