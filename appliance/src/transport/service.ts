import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError, formatBytes, type TransportStatus } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { CycleRepository } from '../cycles/repository.js';
import type { CycleService } from '../cycles/service.js';
import type { JobService } from '../jobs/service.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { IndexFiles } from '../store/index-file.js';
import { writeFileDurable } from '../store/durable.js';
import type { VerifyReport, VerifyService } from '../verify/service.js';
import type { DataKeys } from '../keys/data-keys.js';

export type { TransportPhase, TransportStatus } from '@ferry/protocol';

interface ManifestBody {
  format: 'ferry-transport-manifest';
  version: 1;
  createdAt: string;
  encrypted: boolean;
  points: { id: number; name: string; sourceId: number; disks: { diskId: number; key: string; indexSha256: string }[] }[];
  chunks: number;
  rootHash: string;
  verify: { ok: boolean; chunksChecked: number; bytesChecked: number; damagedChunks: number };
}

interface Manifest extends ManifestBody {
  signature: { algorithm: 'hmac-sha256'; key: string; value: string };
}

export interface TransportDeps {
  dir: string;
  cycles: CycleRepository;
  cycleService: CycleService;
  jobs: JobService;
  verify: VerifyService;
  chunks: ChunkStore;
  indexes: IndexFiles;
  /** null on an unencrypted appliance: the manifest is then only checksummed (integrity against accidents). */
  keys: DataKeys | null;
  /** Garbage collection: run before the manifest, so it lists the chunks that stay. */
  collectGarbage: () => Promise<unknown>;
  log: Logger;
}

const QUIET_WAIT_MS = 120_000;

/**
 * Prepare for transport and arrival check (docs/operator-guide.md). The manifest's root hash covers every
 * point's index files and the storage key of every chunk; its signature is an HMAC under a key derived from
 * the master secret, so it cannot be re-made without the passphrase.
 */
export class TransportService {
  #status: TransportStatus;
  #running: Promise<void> | null = null;
  #saving: Promise<void> = Promise.resolve();

  constructor(private readonly d: TransportDeps) {
    this.#status = this.#load();
    // An interrupted preparation or check is started again by the engineer; until then jobs stay refused.
    if (this.#status.phase === 'preparing' || this.#status.phase === 'arriving') {
      this.#status = { ...this.#status, phase: this.#status.phase === 'preparing' ? 'idle' : 'failed', message: `the ${this.#status.phase} step was interrupted by a restart: run it again` };
    }
    d.jobs.setGate(() => {
      if (!this.#status.jobsAllowed) {
        throw new FerryError('TRANSPORT_UNCHECKED', `the appliance was prepared for transport (${this.#status.phase}): run the arrival check before jobs resume`);
      }
    });
  }

  get #manifestPath(): string {
    return path.join(this.d.dir, 'manifest.json');
  }

  status(): TransportStatus {
    return { ...this.#status };
  }

  /** Starts the preparation in the background; poll status() until `powerOffSafe`. */
  prepare(): TransportStatus {
    this.#start('preparing', () => this.#prepare());
    return this.status();
  }

  /** Starts the arrival check in the background; `acceptDamage` lets jobs resume even when it finds damage. */
  arrival(acceptDamage = false): TransportStatus {
    if (!existsSync(this.#manifestPath)) {
      throw new FerryError('MANIFEST_INVALID', `${this.#manifestPath} does not exist: the appliance was not prepared for transport (POST /api/v1/transport/prepare)`);
    }
    this.#start('arriving', () => this.#arrive(acceptDamage));
    return this.status();
  }

  /** Resolves when the step under way (if any) has ended. */
  async settled(): Promise<TransportStatus> {
    await this.#running?.catch(() => undefined);
    await this.#saving;
    return this.status();
  }

  #start(phase: 'preparing' | 'arriving', run: () => Promise<void>): void {
    if (this.#running) throw new FerryError('TRANSPORT_BUSY', `the appliance is ${this.#status.phase} already`);
    this.#set({ phase, powerOffSafe: false, jobsAllowed: false, message: phase === 'preparing' ? 'pausing jobs' : 'verifying every chunk', startedAt: new Date().toISOString(), finishedAt: null, mismatches: [], damagedPoints: [] });
    this.#running = (async () => {
      try {
        await run();
      } catch (err) {
        this.d.log.error({ err, phase }, 'transport step failed');
        this.#set({ phase: phase === 'preparing' ? 'idle' : 'failed', jobsAllowed: phase === 'preparing', message: `${phase} failed: ${(err as Error).message}`, finishedAt: new Date().toISOString() });
      } finally {
        this.#running = null;
      }
    })();
  }

  async #prepare(): Promise<void> {
    const paused: number[] = [];
    for (const job of this.d.jobs.list()) {
      if (!job.allowedActions.includes('pause')) continue;
      await this.d.jobs.pause(job.id);
      paused.push(job.id);
    }
    this.#set({ pausedJobs: paused, message: 'waiting for uploads under way to stop' });
    const deadline = Date.now() + QUIET_WAIT_MS;
    while (this.d.cycleService.active > 0) {
      if (Date.now() > deadline) throw new FerryError('TRANSPORT_BUSY', `uploads are still under way after ${QUIET_WAIT_MS / 1000} s; stop the agents' manual backups and prepare again`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.#set({ message: 'collecting garbage' });
    // A failed collection (a damaged index) deletes nothing; the verify below reports the damage by point.
    await this.d.collectGarbage().catch((err: unknown) => this.d.log.warn({ err }, 'transport: garbage collection failed; going on'));
    this.#set({ message: 'verifying every chunk' });
    const report = await this.d.verify.run();
    this.#set({ message: 'writing the manifest' });
    const body = await this.#manifestBody(report);
    const manifest: Manifest = { ...body, signature: this.#sign(body) };
    await mkdir(this.d.dir, { recursive: true, mode: 0o750 });
    await writeFileDurable(this.#manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, 0o640);
    await writeFileDurable(path.join(this.d.dir, 'report.txt'), this.#report('Prepared for transport', manifest, report, []), 0o640);
    this.#set({
      phase: 'ready',
      powerOffSafe: true,
      jobsAllowed: false,
      rootHash: body.rootHash,
      damagedPoints: damaged(report),
      finishedAt: new Date().toISOString(),
      message: report.ok
        ? 'Ready: every point verified and the manifest written. The appliance can be powered off now.'
        : `Ready, WITH DAMAGE in ${damaged(report).length} point(s) (see report.txt). The appliance can be powered off now.`,
    });
    this.d.log.info({ rootHash: body.rootHash, paused }, 'prepared for transport');
  }

  async #arrive(acceptDamage: boolean): Promise<void> {
    const mismatches: string[] = [];
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(this.#manifestPath, 'utf8')) as Manifest;
    } catch (err) {
      throw new FerryError('MANIFEST_INVALID', `cannot read ${this.#manifestPath}: ${(err as Error).message}`);
    }
    const { signature, ...claimed } = manifest;
    const expected = this.#sign(claimed);
    const sigOk = typeof signature?.value === 'string' && signature.value.length === expected.value.length && timingSafeEqual(Buffer.from(signature.value), Buffer.from(expected.value));
    if (!sigOk) mismatches.push('the manifest signature does not verify: it was changed, or made by another appliance');
    const report = await this.d.verify.run();
    const now = await this.#manifestBody(report);
    if (now.rootHash !== claimed.rootHash) {
      mismatches.push(`root hash ${now.rootHash} differs from the manifest's ${claimed.rootHash}`);
      const before = new Map((claimed.points ?? []).flatMap((p) => p.disks.map((d) => [`${p.id}/${d.diskId}`, { name: p.name, sha: d.indexSha256 }] as const)));
      const after = new Map(now.points.flatMap((p) => p.disks.map((d) => [`${p.id}/${d.diskId}`, { name: p.name, sha: d.indexSha256 }] as const)));
      for (const [k, v] of before) {
        const a = after.get(k);
        if (!a) mismatches.push(`point ${v.name} (${k}) is missing`);
        else if (a.sha !== v.sha) mismatches.push(`the index of point ${v.name} disk ${k.split('/')[1]} changed`);
      }
      for (const [k, v] of after) if (!before.has(k)) mismatches.push(`point ${v.name} (${k}) was not in the manifest`);
      if (now.chunks !== claimed.chunks) mismatches.push(`${now.chunks} chunks on disk, the manifest counted ${claimed.chunks}`);
    }
    const passed = mismatches.length === 0 && report.ok;
    await writeFileDurable(path.join(this.d.dir, 'arrival-report.txt'), this.#report(passed ? 'Arrival check PASSED' : 'Arrival check FAILED', { ...now, signature: expected }, report, mismatches), 0o640);
    this.#set({
      phase: passed || acceptDamage ? 'arrived' : 'failed',
      powerOffSafe: true,
      jobsAllowed: passed || acceptDamage,
      rootHash: now.rootHash,
      damagedPoints: damaged(report),
      mismatches,
      finishedAt: new Date().toISOString(),
      message: passed
        ? 'Arrival check passed: every chunk verified and the root hash equals the manifest. Jobs may be resumed.'
        : `Arrival check found problems (${[...mismatches, ...damaged(report).map((p) => `point ${p.name} damaged`)].slice(0, 5).join('; ')})${acceptDamage ? '; accepted by the engineer: jobs may be resumed' : ''}.`,
    });
    this.d.log.info({ passed, acceptDamage, mismatches }, 'arrival check done');
  }

  /** Root hash = SHA-256 over the sorted lines `index <point> <disk> <sha256 of the stored index file>` then `chunk <storage key>`. */
  async #manifestBody(report: VerifyReport): Promise<ManifestBody> {
    const root = createHash('sha256');
    const points: ManifestBody['points'] = [];
    for (const c of this.d.cycles.points().sort((a, b) => a.id - b.id)) {
      const disks = [];
      for (const d of this.d.cycles.disks(c.id).sort((a, b) => a.disk_id - b.disk_id)) {
        let sha = 'missing';
        try {
          sha = createHash('sha256').update(await readFile(this.d.indexes.pathOf(c.id, d.disk_id))).digest('hex');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        disks.push({ diskId: d.disk_id, key: d.key, indexSha256: sha });
        root.update(`index ${c.id} ${d.disk_id} ${sha}\n`);
      }
      points.push({ id: c.id, name: c.point_name ?? '', sourceId: c.source_id, disks });
    }
    let chunks = 0;
    // keys() lists in sorted order (sorted directories, sorted names).
    for await (const key of this.d.chunks.keys()) {
      root.update(`chunk ${key}\n`);
      chunks++;
    }
    return {
      format: 'ferry-transport-manifest',
      version: 1,
      createdAt: new Date().toISOString(),
      encrypted: this.d.keys !== null,
      points,
      chunks,
      rootHash: root.digest('hex'),
      verify: { ok: report.ok, chunksChecked: report.chunksChecked, bytesChecked: report.bytesChecked, damagedChunks: report.damagedChunks.length },
    };
  }

  /** HMAC-SHA256 over the root hash and the points (not the time: a re-made body must sign the same). */
  #sign(body: ManifestBody): Manifest['signature'] {
    const key = this.#key('transport-manifest');
    const what = JSON.stringify({ rootHash: body.rootHash, points: body.points, chunks: body.chunks });
    return {
      algorithm: 'hmac-sha256',
      key: this.d.keys ? 'HKDF-SHA256(master secret, "ferry:transport-manifest")' : 'none (unencrypted appliance: a checksum, not a signature)',
      value: createHmac('sha256', key).update(what).digest('hex'),
    };
  }

  #report(title: string, m: Manifest, report: VerifyReport, mismatches: string[]): string {
    const lines = [
      `Ferry appliance — ${title}`,
      `Date: ${new Date().toISOString()}`,
      `Encrypted: ${m.encrypted ? 'yes' : 'NO'}`,
      `Root hash: ${m.rootHash}`,
      `Chunks: ${m.chunks} on disk, ${report.chunksChecked} verified (${formatBytes(report.bytesChecked)}), ${report.damagedChunks.length} damaged`,
      '',
      'Points:',
      ...report.points.map((p) => `  ${p.ok ? 'ok     ' : 'DAMAGED'} ${p.name} (point ${p.id}, source ${p.sourceId})${p.problems.length ? `\n            ${p.problems.join('\n            ')}` : ''}`),
      '',
      ...(mismatches.length ? ['Differences from the manifest:', ...mismatches.map((x) => `  ${x}`), ''] : []),
      report.ok && mismatches.length === 0 ? 'Result: everything verified.' : 'Result: PROBLEMS FOUND (see above).',
      '',
    ];
    return lines.join('\n');
  }

  #set(patch: Partial<TransportStatus>): void {
    this.#status = { ...this.#status, ...patch };
    // Persisted so a restart (power-on after transport) still knows the arrival check is due; sealed like the
    // manifest, so an edited file cannot let jobs resume without the check.
    const text = `${JSON.stringify({ ...this.#status, seal: this.#seal(this.#status) }, null, 2)}\n`;
    this.#saving = this.#saving
      .then(async () => {
        await mkdir(this.d.dir, { recursive: true, mode: 0o750 });
        await writeFileDurable(path.join(this.d.dir, 'state.json'), text, 0o640);
      })
      .catch((err: unknown) => this.d.log.error({ err }, 'cannot save the transport state'));
  }

  #seal(status: TransportStatus): string {
    return createHmac('sha256', this.#key('transport-state')).update(JSON.stringify(status)).digest('hex');
  }

  #key(purpose: 'transport-manifest' | 'transport-state'): Buffer {
    return this.d.keys ? this.d.keys.derive(purpose) : createHash('sha256').update(`ferry unencrypted appliance: integrity only (${purpose})`).digest();
  }

  /**
   * The saved state. Without a manifest nothing was prepared, so a missing file means idle. With a manifest,
   * a missing, unreadable or changed state file keeps jobs refused until the arrival check has passed.
   */
  #load(): TransportStatus {
    const idle: TransportStatus = {
      phase: 'idle',
      powerOffSafe: false,
      jobsAllowed: true,
      message: 'No transport under way.',
      startedAt: null,
      finishedAt: null,
      pausedJobs: [],
      rootHash: null,
      damagedPoints: [],
      mismatches: [],
    };
    const file = path.join(this.d.dir, 'state.json');
    const prepared = existsSync(this.#manifestPath);
    const untrusted = (why: string): TransportStatus => {
      this.d.log.warn({ file }, `transport state ${why}`);
      return prepared
        ? { ...idle, phase: 'failed', jobsAllowed: false, message: `${file} ${why}, and the appliance was prepared for transport: run the arrival check (Appliance page, or ferry-appliance transport arrival) before jobs resume` }
        : idle;
    };
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return untrusted((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(err as Error).message})`);
    }
    try {
      const { seal, ...saved } = JSON.parse(text) as TransportStatus & { seal?: unknown };
      const expected = this.#seal(saved);
      if (typeof seal !== 'string' || seal.length !== expected.length || !timingSafeEqual(Buffer.from(seal), Buffer.from(expected))) {
        return untrusted('was changed outside the appliance (its seal does not match)');
      }
      return { ...idle, ...saved };
    } catch (err) {
      return untrusted(`is damaged (${(err as Error).message})`);
    }
  }
}

function damaged(report: VerifyReport): TransportStatus['damagedPoints'] {
  return report.points.filter((p) => !p.ok).map((p) => ({ id: p.id, name: p.name, problems: p.problems }));
}
