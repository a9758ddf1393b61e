import type { Point, PointDisk, SourceSummary } from '@ferry/protocol';
import type { SourceDiskDetail, SourceRepository } from './repository.js';

/** A disk as the agent last reported it: partition table and filesystems (layout) and used bytes. */
export interface SourceDiskView extends SourceDiskDetail {
  id: number;
  key: string;
  size: number;
}

/** What the web UI shows of a source: the summary plus mode, online state and its newest point's disks. */
export interface SourceView extends SourceSummary {
  mode: 'active' | 'passive';
  /** Its agent holds a control connection now. */
  online: boolean;
  disks: SourceDiskView[];
  lastPoint: { id: number; name: string; createdAt: string; disks: PointDisk[] } | null;
}

export interface SourceViewDeps {
  sources: SourceRepository;
  online: (sourceId: number) => boolean;
  points: (sourceId: number) => Point[];
}

export class SourceViews {
  constructor(private readonly deps: SourceViewDeps) {}

  list(): SourceView[] {
    return this.deps.sources.list().map((s) => this.#view(s));
  }

  get(sourceId: number): SourceView | undefined {
    const s = this.deps.sources.list().find((x) => x.id === sourceId);
    return s ? this.#view(s) : undefined;
  }

  #view(s: SourceSummary): SourceView {
    const details = new Map(this.deps.sources.diskDetails(s.id).map((d) => [d.id, d]));
    const points = this.deps.points(s.id);
    const last = points.reduce<Point | null>((a, p) => (a === null || p.id > a.id ? p : a), null);
    return {
      ...s,
      mode: this.deps.sources.mode(s.id),
      online: this.deps.online(s.id),
      disks: s.disks.map((d) => ({ ...d, layout: details.get(d.id)?.layout ?? null, usedBytes: details.get(d.id)?.usedBytes ?? null, updatedAt: details.get(d.id)?.updatedAt ?? null })),
      lastPoint: last ? { id: last.id, name: last.name, createdAt: last.createdAt, disks: last.disks } : null,
    };
  }
}
