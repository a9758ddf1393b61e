import type { DiskInfo } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import type { Clock } from '../clock.js';
import { AgentHub, type AgentSocket } from '../agents/hub.js';
import { SourceRepository } from '../sources/repository.js';

/** Told which source changed; it reads the source's new state itself (later, after the change is committed). */
export type SourceChanged = (sourceId: number) => void;

/*
 * What browsers see of a source (SourceView) changes in two places: its catalog rows and its agent's control
 * connection. These two subclasses, made once in buildAppliance, say so after each change; the repository and the
 * hub themselves stay free of events, and nothing that uses them changes.
 */

/** The sources' rows: a new source (enrolled, or added as passive), its last-seen time, its disks. */
export class WatchedSourceRepository extends SourceRepository {
  constructor(
    db: Catalog,
    private readonly changed: SourceChanged,
  ) {
    super(db);
  }

  override create(hostname: string, os: string | null): number {
    const id = super.create(hostname, os);
    this.changed(id);
    return id;
  }

  override touch(sourceId: number): void {
    super.touch(sourceId);
    this.changed(sourceId);
  }

  override upsertDisk(sourceId: number, d: DiskInfo): number {
    const id = super.upsertDisk(sourceId, d);
    this.changed(sourceId);
    return id;
  }
}

/** The agents' control connections: a source comes online or goes offline. */
export class WatchedAgentHub extends AgentHub {
  constructor(
    clock: Clock,
    private readonly changed: SourceChanged,
  ) {
    super(clock);
  }

  override attach(socket: AgentSocket): AgentSocket | undefined {
    const previous = super.attach(socket);
    this.changed(socket.data.sourceId);
    return previous;
  }

  override detach(socket: AgentSocket): boolean {
    const gone = super.detach(socket);
    if (gone) this.changed(socket.data.sourceId);
    return gone;
  }
}
