/** Something that can be closed from the server side: a socket.io socket. */
interface Closable {
  disconnect(close: boolean): unknown;
}

/** How often open sockets are checked for sessions that timed out (idle or absolute) while connected. */
const SWEEP_MS = 30_000;

/**
 * The open /ui socket.io connections by web UI session, so a session that ends (logout, password set, user
 * deleted, timeout) loses its live channel at once, not at the next reconnect.
 */
export class SessionSockets {
  readonly #bySession = new Map<number, Set<Closable>>();
  #lastSweep = 0;

  add(sessionId: number, socket: Closable): void {
    let set = this.#bySession.get(sessionId);
    if (!set) this.#bySession.set(sessionId, (set = new Set()));
    set.add(socket);
  }

  remove(sessionId: number, socket: Closable): void {
    const set = this.#bySession.get(sessionId);
    set?.delete(socket);
    if (set?.size === 0) this.#bySession.delete(sessionId);
  }

  end(sessionIds: number[]): void {
    for (const id of sessionIds) {
      const set = this.#bySession.get(id);
      this.#bySession.delete(id);
      for (const s of set ?? []) s.disconnect(true);
    }
  }

  /** Closes the sockets of sessions that are no longer alive; does the work at most every SWEEP_MS. */
  sweep(alive: (sessionId: number) => boolean, now = Date.now()): void {
    if (now - this.#lastSweep < SWEEP_MS) return;
    this.#lastSweep = now;
    this.end([...this.#bySession.keys()].filter((id) => !alive(id)));
  }
}
