/**
 * Runs a task one at a time. A call while a run is under way gets one more run after it (what it asks may
 * have changed after the current run looked), and every call that arrives meanwhile shares that run.
 */
export class SerialRuns<T, P> {
  #active: Promise<T> | undefined;
  #queued: { listeners: ((p: P) => void)[]; promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } | undefined;

  constructor(private readonly task: (progress: (p: P) => void) => Promise<T>) {}

  run(onProgress?: (p: P) => void): Promise<T> {
    if (!this.#active) return this.#start(onProgress ? [onProgress] : []);
    if (!this.#queued) {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#queued = { listeners: [], promise, resolve, reject };
    }
    if (onProgress) this.#queued.listeners.push(onProgress);
    return this.#queued.promise;
  }

  #start(listeners: ((p: P) => void)[]): Promise<T> {
    const run = this.task((p) => {
      for (const l of listeners) l(p);
    });
    this.#active = run;
    // Registered before any caller's own reaction, so the next run starts before a caller can call again.
    const next = (): void => {
      this.#active = undefined;
      const q = this.#queued;
      this.#queued = undefined;
      if (q) this.#start(q.listeners).then(q.resolve, q.reject);
    };
    run.then(next, next);
    return run;
  }
}
