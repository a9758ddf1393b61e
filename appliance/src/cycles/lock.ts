/** Serialises work per key (one upload or commit at a time per cycle) without blocking other keys. */
export class KeyedLock {
  readonly #tails = new Map<number, Promise<unknown>>();

  async run<T>(key: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
