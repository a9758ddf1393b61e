import { io, type Socket } from 'socket.io-client';
import type { JobLogEntry, JobProgress, JobView, PassiveSourceView, RestoreView, ServerToUiEvents, SourceView, UiToServerEvents } from './types.ts';
import { csrfToken, get } from './api.ts';

/** Samples of a job's rate kept for its throughput chart. */
const RATE_SAMPLES = 240;
const LOG_ENTRIES = 1000;

export interface RateSample {
  at: number;
  rate: number;
}

/**
 * Jobs, restores and sources as the appliance pushes them over socket.io (/ui namespace, the session cookie is the
 * credential): pages read from here and never reload to see a change. After every (re)connection everything is
 * loaded again over REST, so what changed while the connection was down is not missed; nothing polls.
 */
class Live {
  jobs = $state<JobView[]>([]);
  restores = $state<RestoreView[]>([]);
  /** null until first loaded (pages that show sources call loadSources()). */
  sources = $state<SourceView[] | null>(null);
  /** Passive sources' SSH side, by source id, for those a page has loaded. */
  passive = $state<Record<number, PassiveSourceView>>({});
  progress = $state<Record<number, JobProgress>>({});
  rates = $state<Record<number, RateSample[]>>({});
  logs = $state<Record<number, JobLogEntry[]>>({});
  connected = $state(false);
  /** The last connection problem, for the banner. */
  problem = $state<string | null>(null);
  #socket: Socket<ServerToUiEvents, UiToServerEvents> | null = null;
  #passiveLoaded = false;
  /** Restores seen active during this session: the Restores page keeps them listed once they end. */
  #watched = new Set<number>();

  start(): void {
    if (this.#socket) return;
    const socket: Socket<ServerToUiEvents, UiToServerEvents> = io('/ui', {
      path: '/socket.io',
      transports: ['websocket'],
      withCredentials: true,
      // Asked at every (re)connection: the appliance checks the session's CSRF token on the handshake.
      auth: (cb) => cb({ csrf: csrfToken() }),
    });
    this.#socket = socket;
    socket.on('connect', () => {
      this.connected = true;
      this.problem = null;
      void this.refresh();
    });
    socket.on('disconnect', () => {
      this.connected = false;
    });
    socket.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      this.connected = false;
      this.problem = err.data?.code ?? err.message;
    });
    socket.on('job.updated', (job) => this.upsertJob(job));
    socket.on('job.progress', (p) => {
      this.progress[p.jobId] = p;
      const samples = (this.rates[p.jobId] ??= []);
      if (p.rate !== null) {
        // Arrival time, not updatedAt: the chart shows what this browser saw, whatever the appliance's clock says.
        samples.push({ at: Date.now(), rate: p.rate });
        if (samples.length > RATE_SAMPLES) samples.splice(0, samples.length - RATE_SAMPLES);
      }
    });
    socket.on('job.log', (entry) => {
      const list = this.logs[entry.jobId];
      if (!list) return; // only for jobs whose log a page has loaded
      if (list.some((e) => e.id === entry.id)) return;
      list.push(entry);
      if (list.length > LOG_ENTRIES) list.splice(0, list.length - LOG_ENTRIES);
    });
    socket.on('restore.updated', (r) => this.upsertRestore(r));
    socket.on('source.updated', (src) => this.upsertSource(src));
    socket.on('passive.updated', (p) => this.upsertPassive(p));
  }

  stop(): void {
    this.#socket?.disconnect();
    this.#socket = null;
    this.connected = false;
    // Another user may log in next: nothing of this session's view stays.
    this.sources = null;
    this.passive = {};
    this.#passiveLoaded = false;
    this.#watched.clear();
  }

  /** Loads the current state (after connecting and after any reconnect, so nothing missed stays stale). */
  async refresh(): Promise<void> {
    // What was shown when asking: a view that changed while the reply was on its way came from a live event and is
    // kept if it is the newer. Anything else is replaced (revisions seen before an appliance restart do not count).
    const asked = new Map(this.jobs.map((j) => [j.id, j.revision]));
    const [jobs, restores] = await Promise.all([get<JobView[]>('/jobs'), get<RestoreView[]>('/restores')]);
    this.jobs = jobs.map((j) => {
      const shown = this.job(j.id);
      return shown && shown.revision !== asked.get(j.id) && shown.revision > j.revision ? shown : j;
    });
    for (const r of restores) if (r.state === 'active') this.#watched.add(r.id);
    this.restores = restores;
    if (this.sources !== null) await this.loadSources();
    if (this.#passiveLoaded) await this.loadPassive();
  }

  /** Loads every source over REST; source.updated events keep the list current from then on. */
  async loadSources(): Promise<void> {
    this.sources = await get<SourceView[]>('/sources');
  }

  upsertSource(src: SourceView): void {
    if (this.sources === null) return; // loaded in full when a page first needs it
    const i = this.sources.findIndex((x) => x.id === src.id);
    if (i >= 0) this.sources[i] = src;
    else this.sources.push(src);
  }

  /** Loads every passive source's SSH side (the sources list marks those that need attention); passive.updated events follow. */
  async loadPassive(): Promise<void> {
    for (const p of await get<PassiveSourceView[]>('/passive-sources')) this.passive[p.sourceId] = p;
    this.#passiveLoaded = true;
  }

  upsertPassive(p: PassiveSourceView): void {
    // A reply that arrives after a newer live event (a PUT answered "connecting" after "running" came) is older news.
    const shown = this.passive[p.sourceId];
    if (shown && shown.updatedAt > p.updatedAt) return;
    this.passive[p.sourceId] = p;
  }

  source(id: number): SourceView | undefined {
    return this.sources?.find((x) => x.id === id);
  }

  upsertJob(job: JobView): void {
    const i = this.jobs.findIndex((j) => j.id === job.id);
    // A reply and a live event can arrive in either order: the reply to sync-now after the event that says the cycle
    // already failed. The older view is dropped.
    if (i >= 0 && this.jobs[i]!.revision > job.revision) return;
    if (i >= 0) this.jobs[i] = job;
    else this.jobs.push(job);
    if (job.state !== 'Syncing' && job.state !== 'Completing') delete this.progress[job.id];
  }

  upsertRestore(r: RestoreView): void {
    if (r.state === 'active') this.#watched.add(r.id);
    const i = this.restores.findIndex((x) => x.id === r.id);
    // The reply to creating a restore can come after the first progress its restore program reported.
    const shownAt = i >= 0 ? this.restores[i]!.updatedAt : null;
    if (shownAt !== null && (r.updatedAt === null || r.updatedAt < shownAt)) return;
    if (i >= 0) this.restores[i] = r;
    else this.restores.unshift(r);
  }

  /** Whether a restore was active at some time this session was open (it may have ended since). */
  watched(id: number): boolean {
    return this.#watched.has(id);
  }

  job(id: number): JobView | undefined {
    return this.jobs.find((j) => j.id === id);
  }

  progressOf(job: JobView): JobProgress | null {
    return this.progress[job.id] ?? job.progress;
  }

  setLog(jobId: number, entries: JobLogEntry[]): void {
    this.logs[jobId] = entries.slice(-LOG_ENTRIES);
  }
}

export const live = new Live();
