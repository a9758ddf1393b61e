import { FerryError, type RestoreView } from '@ferry/protocol';
import { iso, type Clock } from '../clock.js';
import type { RestoreRepository, RestoreRow } from './repository.js';

/**
 * Restores of points. For now a restore records that a point is in use (retention keeps it); the restore ISO's
 * session with the appliance builds on it.
 */
export class RestoreService {
  constructor(
    private readonly repo: RestoreRepository,
    private readonly pointExists: (pointId: number) => boolean,
    private readonly clock: Clock,
  ) {}

  create(pointId: number): RestoreView {
    if (!this.pointExists(pointId)) throw new FerryError('POINT_NOT_FOUND', `point ${pointId} does not exist`);
    return this.get(this.repo.create(pointId, iso(this.clock.now())));
  }

  list(): RestoreView[] {
    return this.repo.list().map(toView);
  }

  get(id: number): RestoreView {
    const r = this.repo.get(id);
    if (!r) throw new FerryError('RESTORE_NOT_FOUND', `restore ${id} does not exist`);
    return toView(r);
  }

  finish(id: number, state: 'finished' | 'cancelled'): RestoreView {
    const r = this.get(id);
    if (r.state !== 'active') throw new FerryError('BAD_REQUEST', `restore ${id} is already ${r.state}`);
    this.repo.finish(id, state, iso(this.clock.now()));
    return this.get(id);
  }
}

function toView(r: RestoreRow): RestoreView {
  return { id: r.id, pointId: r.point_id, state: r.state, createdAt: r.created_at, finishedAt: r.finished_at };
}
