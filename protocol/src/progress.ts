import { formatBytes, formatDuration, formatRate } from './units.js';

export interface ProgressSink {
  isTTY?: boolean;
  write(s: string): unknown;
}

/**
 * One progress line for a long byte-counting operation: done/total, percent, rate and ETA. On a terminal it
 * redraws in place; elsewhere (logs, CI, SSH without a tty) it prints a full line every few seconds.
 * Rate is a moving average over the last ~10 s, so the ETA follows throttling and link changes.
 */
export class ProgressLine {
  readonly #sink: ProgressSink;
  readonly #label: string;
  readonly #total: number;
  readonly #start = Date.now();
  readonly #samples: { t: number; done: number }[] = [];
  #done = 0;
  #lastDraw = 0;
  readonly #interval: number;

  constructor(label: string, total: number, sink: ProgressSink = process.stderr) {
    this.#label = label;
    this.#total = total;
    this.#sink = sink;
    this.#interval = sink.isTTY ? 250 : 5000;
  }

  get done(): number {
    return this.#done;
  }

  update(done: number, detail = ''): void {
    this.#done = done;
    const t = Date.now();
    if (t - this.#lastDraw < this.#interval) return;
    this.#lastDraw = t;
    this.#samples.push({ t, done });
    while (this.#samples.length > 2 && t - this.#samples[0]!.t > 10_000) this.#samples.shift();
    this.#draw(detail, false);
  }

  finish(detail = ''): void {
    this.#draw(detail, true);
  }

  rate(): number {
    const first = this.#samples[0] ?? { t: this.#start, done: 0 };
    const dt = (Date.now() - first.t) / 1000;
    return dt > 0 ? (this.#done - first.done) / dt : 0;
  }

  #draw(detail: string, final: boolean): void {
    const pct = this.#total > 0 ? Math.min(100, (100 * this.#done) / this.#total) : 100;
    const elapsed = (Date.now() - this.#start) / 1000;
    const rate = final ? this.#done / Math.max(elapsed, 0.001) : this.rate();
    const eta = rate > 0 ? (this.#total - this.#done) / rate : Number.NaN;
    const timing = final ? `in ${formatDuration(elapsed)}` : `ETA ${formatDuration(eta)}`;
    const line = `${this.#label}: ${formatBytes(this.#done)} / ${formatBytes(this.#total)} (${pct.toFixed(1)}%) ${formatRate(rate)} ${timing}${detail ? ' ' + detail : ''}`;
    if (this.#sink.isTTY) this.#sink.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else this.#sink.write(`${line}\n`);
  }
}
