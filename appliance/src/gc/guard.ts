/** Milliseconds on a clock that never goes backwards. */
export type MonotonicClock = () => number;

/** What garbage collection may not delete, fixed when the collection starts. */
export interface GuardSnapshot {
  /** A chunk touched at or after this time is protected. */
  readonly protectFrom: number;
  isProtected(id: string): boolean;
  /** Lets the guard forget touches only this snapshot still needed; call once, when the collection ends. */
  release(): void;
}

/**
 * In-memory protection for chunks that running cycles may reference before their index says so: the ids an
 * agent was told are present (it will name them without sending them), chunks found present while ingesting,
 * and chunks being renamed into the store. CycleService touches an id before it asks the store about it.
 *
 * A collection protects every id touched at or after min(its start, the start of every cycle running then).
 * Any chunk a running cycle names was either touched while that cycle ran, or is named by its previous point,
 * which the collection marks. Fixing the bound at the start means a cycle that commits during the collection
 * keeps the protection of what it touched before its index entries were written.
 *
 * Touches are kept by the first 52 bits of the id (a double holds them exactly): two ids sharing them only
 * protect a garbage chunk for one more collection. Memory is bounded by what running cycles touched.
 */
export class ChunkGuard {
  /** Running cycle id → when it started (for cycles already running at process start: the process start). */
  readonly #cycles = new Map<number, number>();
  readonly #touched = new Map<number, number>();
  readonly #holds = new Set<{ protectFrom: number }>();

  constructor(private readonly now: MonotonicClock = () => performance.now()) {}

  cycleStarted(cycleId: number): void {
    // A resumed cycle keeps its first start: what it touched before then is still protected.
    if (!this.#cycles.has(cycleId)) this.#cycles.set(cycleId, this.now());
  }

  cycleEnded(cycleId: number): void {
    if (this.#cycles.delete(cycleId)) this.#prune();
  }

  isRunning(cycleId: number): boolean {
    return this.#cycles.has(cycleId);
  }

  touch(id: string): void {
    // With no cycle running and no collection under way, every future bound lies after now: nothing to keep.
    if (this.#cycles.size === 0 && this.#holds.size === 0) return;
    this.#touched.set(keyOf(id), this.now());
  }

  /** Number of touches remembered (to check that memory stays bounded). */
  get remembered(): number {
    return this.#touched.size;
  }

  snapshot(): GuardSnapshot {
    let protectFrom = this.now();
    for (const start of this.#cycles.values()) protectFrom = Math.min(protectFrom, start);
    const hold = { protectFrom };
    this.#holds.add(hold);
    return {
      protectFrom,
      isProtected: (id) => (this.#touched.get(keyOf(id)) ?? -Infinity) >= protectFrom,
      release: () => {
        if (this.#holds.delete(hold)) this.#prune();
      },
    };
  }

  /** Forgets touches older than any bound a present or future snapshot can have. */
  #prune(): void {
    let keepFrom = Infinity;
    for (const start of this.#cycles.values()) keepFrom = Math.min(keepFrom, start);
    for (const h of this.#holds) keepFrom = Math.min(keepFrom, h.protectFrom);
    if (keepFrom === Infinity) {
      this.#touched.clear();
      return;
    }
    for (const [key, at] of this.#touched) if (at < keepFrom) this.#touched.delete(key);
  }
}

function keyOf(id: string): number {
  return parseInt(id.slice(0, 13), 16);
}
