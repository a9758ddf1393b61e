import { BlockKind, FerryError } from '@ferry/protocol';
import type { CycleRepository } from '../cycles/repository.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { IndexFiles } from '../store/index-file.js';

export interface VerifyProgress {
  chunksChecked: number;
  chunksTotal: number;
  bytesChecked: number;
}

export interface VerifyReport {
  ok: boolean;
  points: { id: number; name: string; sourceId: number; ok: boolean; problems: string[] }[];
  chunksChecked: number;
  bytesChecked: number;
  damagedChunks: { id: string; problem: string; points: string[] }[];
  /** Chunks on disk that no point names (left by abandoned cycles and deleted points until garbage collection removes them). */
  unreferencedChunks: number;
}

/**
 * Re-reads every chunk that a point names (payload checksum, decompression, SHA-256 against the id) and every
 * point's index (checksum, every block recorded), and reports damage by point.
 */
export class VerifyService {
  constructor(
    private readonly cycles: CycleRepository,
    private readonly chunks: ChunkStore,
    private readonly indexes: IndexFiles,
  ) {}

  async run(onProgress: (p: VerifyProgress) => void = () => undefined): Promise<VerifyReport> {
    const users = new Map<string, Set<number>>();
    const points = this.cycles.points().map((c) => ({ id: c.id, name: c.point_name ?? '', sourceId: c.source_id, ok: true, problems: [] as string[] }));
    for (const p of points) {
      for (const d of this.cycles.disks(p.id)) {
        try {
          const index = await this.indexes.load(p.id, d.disk_id);
          if (!index.header.sealed) throw new FerryError('INDEX_DAMAGED', `index of disk ${d.key} is not sealed`);
          for (let n = 0; n < index.header.blockCount; n++) {
            const kind = index.kind(n);
            if (kind === BlockKind.Pending) throw new FerryError('INDEX_DAMAGED', `index of disk ${d.key} has unrecorded block ${n}`);
            if (kind !== BlockKind.Data) continue;
            const id = index.chunkIdHex(n);
            let set = users.get(id);
            if (!set) users.set(id, (set = new Set()));
            set.add(p.id);
          }
        } catch (err) {
          p.ok = false;
          p.problems.push((err as Error).message);
        }
      }
    }
    const byId = new Map(points.map((p) => [p.id, p]));
    const report: VerifyReport = { ok: true, points, chunksChecked: 0, bytesChecked: 0, damagedChunks: [], unreferencedChunks: 0 };
    const total = users.size;
    let lastReport = 0;
    for (const [id, pointIds] of users) {
      try {
        report.bytesChecked += await this.chunks.verify(id);
      } catch (err) {
        const names: string[] = [];
        for (const pid of pointIds) {
          const p = byId.get(pid)!;
          p.ok = false;
          p.problems.push(`chunk ${id}: ${(err as Error).message}`);
          names.push(`${p.name} (point ${p.id})`);
        }
        report.damagedChunks.push({ id, problem: (err as Error).message, points: names });
      }
      report.chunksChecked++;
      if (Date.now() - lastReport > 500) {
        lastReport = Date.now();
        onProgress({ chunksChecked: report.chunksChecked, chunksTotal: total, bytesChecked: report.bytesChecked });
      }
    }
    onProgress({ chunksChecked: report.chunksChecked, chunksTotal: total, bytesChecked: report.bytesChecked });
    const named = new Set([...users.keys()].map((id) => this.chunks.keyOf(id)));
    for await (const key of this.chunks.keys()) if (!named.has(key)) report.unreferencedChunks++;
    report.ok = points.every((p) => p.ok);
    return report;
  }
}
