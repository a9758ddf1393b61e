import type { Socket as NetSocket } from 'node:net';
import type { Socket } from 'socket.io';
import {
  FerryError,
  type AgentToServerEvents,
  type Reply,
  type RunCycleCommand,
  type ServerToAgentEvents,
  type StopCycleCommand,
  type Throttle,
} from '@ferry/protocol';
import type { Clock } from '../clock.js';
import type { AgentLink } from '../jobs/service.js';

export interface AgentSocketData {
  sourceId: number;
  agentId: number;
}

export type AgentSocket = Socket<AgentToServerEvents, ServerToAgentEvents, Record<string, never>, AgentSocketData>;

/** The control connections of active-mode agents, one per source, and the commands sent over them. */
export class AgentHub implements AgentLink {
  readonly #sockets = new Map<number, AgentSocket>();
  readonly #offlineSince = new Map<number, number>();
  /** Connections carrying an agent's REST requests right now (uploads can run for minutes), by source. */
  readonly #requests = new Map<number, Set<NetSocket>>();
  readonly #startedAt: number;

  constructor(
    private readonly clock: Clock,
    private readonly commandTimeoutMs = 15_000,
  ) {
    this.#startedAt = clock.now();
  }

  /** Registers a connection; returns the source's previous one (a restarted agent whose old link has not timed out yet). */
  attach(socket: AgentSocket): AgentSocket | undefined {
    const previous = this.#sockets.get(socket.data.sourceId);
    this.#sockets.set(socket.data.sourceId, socket);
    this.#offlineSince.delete(socket.data.sourceId);
    return previous === socket ? undefined : previous;
  }

  /** Forgets a connection; false when a newer one of the same source already replaced it. */
  detach(socket: AgentSocket): boolean {
    if (this.#sockets.get(socket.data.sourceId) !== socket) return false;
    this.#sockets.delete(socket.data.sourceId);
    this.#offlineSince.set(socket.data.sourceId, this.clock.now());
    return true;
  }

  /** Cuts a source's agent off (its credential was revoked, or the appliance stops): control channel and requests in flight. */
  disconnect(sourceId: number): void {
    this.#sockets.get(sourceId)?.disconnect(true);
    for (const conn of this.#requests.get(sourceId) ?? []) conn.destroy();
    this.#requests.delete(sourceId);
  }

  /** Remembers the connection of an authenticated agent request until it closes, so disconnect() can cut it. */
  trackRequest(sourceId: number, conn: NetSocket): void {
    let set = this.#requests.get(sourceId);
    if (!set) this.#requests.set(sourceId, (set = new Set()));
    if (set.has(conn)) return;
    set.add(conn);
    conn.once('close', () => {
      set.delete(conn);
      if (set.size === 0 && this.#requests.get(sourceId) === set) this.#requests.delete(sourceId);
    });
  }

  online(sourceId: number): boolean {
    return this.#sockets.has(sourceId);
  }

  offlineSince(sourceId: number): number {
    return this.#offlineSince.get(sourceId) ?? this.#startedAt;
  }

  async run(sourceId: number, cmd: RunCycleCommand): Promise<Reply<{ started: boolean }>> {
    return this.#socket(sourceId).timeout(this.commandTimeoutMs).emitWithAck('cycle.run', cmd);
  }

  async stop(sourceId: number, cmd: StopCycleCommand): Promise<Reply<{ stopped: boolean }>> {
    return this.#socket(sourceId).timeout(this.commandTimeoutMs).emitWithAck('cycle.stop', cmd);
  }

  async throttle(sourceId: number, throttle: Throttle): Promise<Reply<{ applied: boolean }>> {
    return this.#socket(sourceId).timeout(this.commandTimeoutMs).emitWithAck('throttle.set', throttle);
  }

  #socket(sourceId: number): AgentSocket {
    const s = this.#sockets.get(sourceId);
    if (!s) throw new FerryError('APPLIANCE_UNREACHABLE', `the agent of source ${sourceId} is not connected`);
    return s;
  }
}
