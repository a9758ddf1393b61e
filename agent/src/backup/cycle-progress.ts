import type { CycleProgressReport, DiskProgress, JobPhase } from '@ferry/protocol';

/** What runCycle reports while it runs; the daemon adds the job id and forwards it as 'cycle.progress'. */
export type CycleProgress = Omit<CycleProgressReport, 'jobId'>;

export const PROGRESS_INTERVAL_MS = 1000;

/**
 * Rate-limits progress reports of one run of a cycle: one at start, then at most one a second, one at each
 * phase change, and one at the end. Per disk, blocksDone counts from block 0 (a resumed cycle starts part
 * way), while bytesDone/bytesTotal count the used bytes read in this run.
 */
export class CycleReporter {
  readonly #emit: (p: CycleProgress) => void;
  readonly #now: () => number;
  readonly #base: Pick<CycleProgress, 'cycleId' | 'resumed' | 'bytesTotal'>;
  readonly #disks: DiskProgress[];
  #phase: JobPhase = 'Comparing';
  #sentPhase: JobPhase | null = null;
  #sentAt = Number.NEGATIVE_INFINITY;

  constructor(
    emit: (p: CycleProgress) => void,
    base: Pick<CycleProgress, 'cycleId' | 'resumed'>,
    disks: DiskProgress[],
    now: () => number = Date.now,
  ) {
    this.#emit = emit;
    this.#now = now;
    this.#disks = disks.map((d) => ({ ...d }));
    this.#base = { ...base, bytesTotal: disks.reduce((n, d) => n + d.bytesTotal, 0) };
  }

  set phase(phase: JobPhase) {
    this.#phase = phase;
  }

  /** Records that block `blockNo` of disk `slot` is done and `bytesRead` used bytes of it were read. */
  block(slot: number, blockNo: number, bytesRead: number): void {
    const d = this.#disks.find((x) => x.slot === slot);
    if (!d) return;
    d.blocksDone = blockNo + 1;
    d.bytesDone += bytesRead;
  }

  /** Reports if a second has passed or the phase changed; `force` reports regardless (start, end). */
  update(counters: { bytesRead: number; bytesChanged: number; bytesSent: number }, force = false): void {
    const t = this.#now();
    if (!force && this.#phase === this.#sentPhase && t - this.#sentAt < PROGRESS_INTERVAL_MS) return;
    this.#sentAt = t;
    this.#sentPhase = this.#phase;
    this.#emit({
      ...this.#base,
      phase: this.#phase,
      bytesDone: counters.bytesRead,
      bytesChanged: counters.bytesChanged,
      bytesSent: counters.bytesSent,
      disks: this.#disks.map((d) => ({ ...d })),
    });
  }
}
