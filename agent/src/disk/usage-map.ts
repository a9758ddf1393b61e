/** A half-open byte range [start, end). */
export interface Extent {
  start: number;
  end: number;
}

/**
 * Sorted, disjoint, merged byte extents: the parts of a disk that must be read.
 * Lookups are binary searches because the backup loop asks about every 1 MiB
 * block of multi-terabyte disks.
 */
export class UsageMap {
  // Parallel arrays rather than objects: millions of extents on a fragmented filesystem.
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private total = 0;

  /** Marks [start, end) as used, merging with touching or overlapping extents. */
  add(start: number, end: number): void {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end)) || start < 0) {
      throw new Error(`invalid extent [${start}, ${end})`);
    }
    if (end <= start) return;
    const n = this.starts.length;
    const lastEnd = this.ends[n - 1];
    // Filesystem bitmaps are walked in disk order, so appends are the common case.
    if (lastEnd === undefined || start > lastEnd) {
      this.starts.push(start);
      this.ends.push(end);
      this.total += end - start;
      return;
    }
    // First extent whose end reaches start (touching counts), last whose start is within end.
    const first = this.firstEndingAtOrAfter(start);
    // Already covered: common when metadata is added on top of bitmap runs.
    if ((this.starts[first] ?? Infinity) <= start && (this.ends[first] ?? -Infinity) >= end) return;
    let last = first;
    while (last < n && (this.starts[last] ?? Infinity) <= end) last++;
    if (first === last) {
      this.starts.splice(first, 0, start);
      this.ends.splice(first, 0, end);
      this.total += end - start;
      return;
    }
    const mergedStart = Math.min(start, this.starts[first] ?? start);
    const mergedEnd = Math.max(end, this.ends[last - 1] ?? end);
    for (let i = first; i < last; i++) this.total -= (this.ends[i] ?? 0) - (this.starts[i] ?? 0);
    this.starts.splice(first, last - first, mergedStart);
    this.ends.splice(first, last - first, mergedEnd);
    this.total += mergedEnd - mergedStart;
  }

  /** The used extents inside the window [start, end), clipped to it. */
  extentsIn(start: number, end: number): Extent[] {
    const out: Extent[] = [];
    for (let i = this.firstEndingAfter(start); i < this.starts.length; i++) {
      const s = this.starts[i] ?? Infinity;
      if (s >= end) break;
      out.push({ start: Math.max(s, start), end: Math.min(this.ends[i] ?? 0, end) });
    }
    return out;
  }

  /** True when any byte of [start, end) is used. */
  overlaps(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    return end > start && i < this.starts.length && (this.starts[i] ?? Infinity) < end;
  }

  usedBytes(): number {
    return this.total;
  }

  get count(): number {
    return this.starts.length;
  }

  extents(): Extent[] {
    return this.starts.map((start, i) => ({ start, end: this.ends[i] ?? start }));
  }

  /** Adds every extent of `other`, moved by `delta`. */
  addAll(other: UsageMap, delta = 0): void {
    for (const e of other.extents()) this.add(e.start + delta, e.end + delta);
  }

  private firstEndingAfter(offset: number): number {
    return this.lowerBound((end) => end > offset);
  }

  private firstEndingAtOrAfter(offset: number): number {
    return this.lowerBound((end) => end >= offset);
  }

  // Ends are sorted, so the predicate flips from false to true exactly once.
  private lowerBound(pred: (end: number) => boolean): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pred(this.ends[mid] ?? Infinity)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
