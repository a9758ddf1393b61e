import type { Point, SourceSummary, SourceView } from '@ferry/protocol';
import type { SourceRepository } from './repository.js';

export type { SourceDiskView, SourceView } from '@ferry/protocol';

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
