/*
 * The contenders, each behind one interface: a fresh repository per run, then full backup, incremental backup
 * (tools without incrementals make a second full copy) and restore of the newest backup to a file.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { ApplianceClient, type Point } from '@ferry/protocol';
import path from 'node:path';
import { ROOT, enrollAgent, sh, startAppliance, type RunningAppliance } from '../lib/cli.js';
import { attach, detach } from '../lib/disk-image.js';
import type { BackupJson } from '../lib/fixture-data.js';
import { measure, storedBytes, watchProcess, type Measured } from './measure.js';

/** One measured step of one tool. */
export interface Phase {
  wallSeconds: number;
  cpuSeconds: number;
  /** Peak RSS by process, labelled for the report. */
  peakRss: Record<string, number>;
  /** Bytes that would cross the network to a backup server (for local repositories: what the repository grew by). */
  bytesSent: number;
  /** Size of the repository after the step (backup) or of the restored file's data (restore). */
  bytesStored: number;
}

export interface Tool {
  name: string;
  /** A real incremental (only changes stored); otherwise the incremental step is a second full copy. */
  incremental: boolean;
  /** How it is run, for the report. */
  commands: string[];
  setup(work: string): Promise<void>;
  full(source: string): Promise<Phase>;
  incr(source: string): Promise<Phase>;
  restore(target: string): Promise<Phase>;
  teardown(): Promise<void>;
}

const rssOf = (m: Measured, labels: Record<string, string>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [comm, bytes] of m.peakRss) {
    const label = labels[comm];
    if (label) out[label] = Math.max(out[label] ?? 0, bytes);
  }
  return out;
};

/**
 * A step's figures with the fsync of its output added: borg, restic and Ferry make their writes durable themselves;
 * for the tools that do not, `sync FILE` is part of the step, so every wall time ends with the data on disk.
 */
export function withSync(m: Measured, sync: Measured): Measured {
  return { ...m, wallSeconds: m.wallSeconds + sync.wallSeconds, cpuSeconds: m.cpuSeconds + sync.cpuSeconds };
}

/** Allocated bytes of a (sparse) file: what a restore wrote. */
async function allocated(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

// ---- Ferry -------------------------------------------------------------------------------------------------

export interface FerryOptions {
  agentBinary: string;
  /** Appliance block size (FERRY_BLOCK_SIZE); undefined = its default. */
  blockSize?: number;
}

/** Starts an appliance with FERRY_BLOCK_SIZE set for it alone (the child inherits this process's environment). */
export async function startBenchAppliance(dataDir: string, blockSize?: number): Promise<RunningAppliance> {
  const before = process.env.FERRY_BLOCK_SIZE;
  if (blockSize !== undefined) process.env.FERRY_BLOCK_SIZE = String(blockSize);
  try {
    return await startAppliance(dataDir);
  } finally {
    if (before === undefined) delete process.env.FERRY_BLOCK_SIZE;
    else process.env.FERRY_BLOCK_SIZE = before;
  }
}

export class FerryTool implements Tool {
  readonly name = 'ferry';
  readonly incremental = true;
  readonly commands = [
    'ferry-appliance serve --data DIR --listen 127.0.0.1:0   # one per run, fresh data directory',
    'ferry-agent backup --disk source.img --state STATE --json   # the agent executable (make agent-binary); full, then incremental',
    'ferry-restore --appliance URL --fingerprint FP --token T --point ID --target restored.img   # with read-back verify (the default)',
  ];
  appliance: RunningAppliance | null = null;
  #work = '';
  #state = '';
  lastPoint = 0;
  lastBackup: BackupJson | null = null;

  constructor(readonly opts: FerryOptions) {}

  async setup(work: string): Promise<void> {
    this.#work = work;
    this.#state = path.join(work, 'agent');
    await mkdir(work, { recursive: true });
    this.appliance = await startBenchAppliance(path.join(work, 'appliance'), this.opts.blockSize);
    await enrollAgent(this.appliance, this.#state, 'bench-source');
  }

  get dataDir(): string {
    return this.appliance!.dataDir;
  }

  async #backup(source: string): Promise<Phase> {
    const appliance = this.appliance!;
    const watch = await watchProcess(appliance.process.pid!);
    const m = await measure({ cmd: this.opts.agentBinary, args: ['backup', '--disk', source, '--state', this.#state, '--json'] });
    const a = watch();
    const result = JSON.parse(m.stdout) as BackupJson;
    this.lastPoint = result.point.id;
    this.lastBackup = result;
    return {
      wallSeconds: m.wallSeconds,
      cpuSeconds: m.cpuSeconds + a.cpuSeconds,
      peakRss: { ...rssOf(m, { 'ferry-agent': 'agent' }), appliance: a.peakRss },
      bytesSent: result.bytesSent,
      bytesStored: await storedBytes(appliance.dataDir),
    };
  }

  full(source: string): Promise<Phase> {
    return this.#backup(source);
  }

  incr(source: string): Promise<Phase> {
    return this.#backup(source);
  }

  async restore(target: string): Promise<Phase> {
    const appliance = this.appliance!;
    const watch = await watchProcess(appliance.process.pid!);
    const m = await measure({
      cmd: process.execPath,
      args: [`${ROOT}restore-pe/bin/ferry-restore.js`, '--appliance', appliance.url, '--fingerprint', appliance.fingerprint, '--token', appliance.adminToken, '--point', String(this.lastPoint), '--target', target],
    });
    const a = watch();
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds + a.cpuSeconds, peakRss: { ...rssOf(m, { node: 'ferry-restore' }), appliance: a.peakRss }, bytesSent: 0, bytesStored: await allocated(target) };
  }

  /** The newest point's block index (GET …/index: the stored file is sealed at rest), saved as `file`. */
  async newestIndex(file: string): Promise<string> {
    const a = this.appliance!;
    const client = new ApplianceClient(a.url, a.fingerprint, a.adminToken);
    try {
      const point = await client.json<Point>(`/api/v1/points/${this.lastPoint}`);
      const res = await client.download(`/api/v1/points/${this.lastPoint}/disks/${point.disks[0]!.diskId}/index`);
      await pipeline(res, createWriteStream(file));
      return file;
    } finally {
      client.close();
    }
  }

  async teardown(): Promise<void> {
    await this.appliance?.stop();
    this.appliance = null;
  }
}

// ---- borg --------------------------------------------------------------------------------------------------

export class BorgTool implements Tool {
  readonly name = 'borg';
  readonly incremental = true;
  readonly commands = [
    'borg init -e none REPO',
    'borg create -C lz4 --read-special REPO::full source.img   # then REPO::incr after the day of changes',
    'borg extract --sparse REPO::incr   # in an empty directory: restores source.img',
  ];
  #repo = '';
  #env: NodeJS.ProcessEnv = {};
  #archives = 0;
  #before = 0;
  #work = '';

  async setup(work: string): Promise<void> {
    this.#work = work;
    this.#repo = path.join(work, 'repo');
    await mkdir(work, { recursive: true });
    this.#env = { BORG_BASE_DIR: path.join(work, 'home'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
    this.#archives = 0;
    await measure({ cmd: 'borg', args: ['init', '-e', 'none', this.#repo], env: this.#env });
    this.#before = await storedBytes(this.#repo);
  }

  async #create(source: string): Promise<Phase> {
    const name = `a${++this.#archives}`;
    const m = await measure({ cmd: 'borg', args: ['create', '-C', 'lz4', '--read-special', `${this.#repo}::${name}`, source], env: this.#env });
    const after = await storedBytes(this.#repo);
    const sent = after - this.#before;
    this.#before = after;
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { borg: 'borg' }), bytesSent: sent, bytesStored: after };
  }

  full(source: string): Promise<Phase> {
    return this.#create(source);
  }

  incr(source: string): Promise<Phase> {
    return this.#create(source);
  }

  async restore(target: string): Promise<Phase> {
    const dir = path.join(this.#work, 'extract');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    const m = await measure({ cmd: 'borg', args: ['extract', '--sparse', `${this.#repo}::a${this.#archives}`], env: this.#env, cwd: dir });
    const out = (await sh('find', [dir, '-type', 'f'])).trim();
    await sh('mv', [out, target]);
    await rm(dir, { recursive: true, force: true });
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { borg: 'borg' }), bytesSent: 0, bytesStored: await allocated(target) };
  }

  async teardown(): Promise<void> {
    await rm(this.#work, { recursive: true, force: true });
  }
}

// ---- restic ------------------------------------------------------------------------------------------------

export class ResticTool implements Tool {
  readonly name = 'restic';
  readonly incremental = true;
  readonly commands = [
    'restic init --repository-version 2   # compressed repository format (zstd, --compression auto)',
    'restic backup --stdin --stdin-filename source.img < source.img',
    'restic dump latest source.img > restored.img',
  ];
  #env: NodeJS.ProcessEnv = {};
  #repo = '';
  #before = 0;
  #work = '';

  async setup(work: string): Promise<void> {
    this.#work = work;
    this.#repo = path.join(work, 'repo');
    await mkdir(work, { recursive: true });
    this.#env = { RESTIC_REPOSITORY: this.#repo, RESTIC_PASSWORD: 'ferry-bench', RESTIC_CACHE_DIR: path.join(work, 'cache') };
    await measure({ cmd: 'restic', args: ['init', '--repository-version', '2'], env: this.#env });
    this.#before = await storedBytes(this.#repo);
  }

  async #backup(source: string): Promise<Phase> {
    const m = await measure({ cmd: 'restic', args: ['backup', '-q', '--stdin', '--stdin-filename', 'source.img'], env: this.#env, stdinFile: source });
    const after = await storedBytes(this.#repo);
    const sent = after - this.#before;
    this.#before = after;
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { restic: 'restic' }), bytesSent: sent, bytesStored: after };
  }

  full(source: string): Promise<Phase> {
    return this.#backup(source);
  }

  incr(source: string): Promise<Phase> {
    return this.#backup(source);
  }

  async restore(target: string): Promise<Phase> {
    const m = await measure({ cmd: 'restic', args: ['dump', 'latest', 'source.img'], env: this.#env, stdoutFile: target });
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { restic: 'restic' }), bytesSent: 0, bytesStored: await allocated(target) };
  }

  async teardown(): Promise<void> {
    await rm(this.#work, { recursive: true, force: true });
  }
}

// ---- partclone | lz4 ---------------------------------------------------------------------------------------

export class PartcloneTool implements Tool {
  readonly name = 'partclone+lz4';
  readonly incremental = false;
  readonly commands = [
    'sfdisk -d source.img > table; partclone.ext4 -c -s /dev/loopNp1 -o - | lz4 -1 > p1.pcl.lz4   # the ext4 partition; swap is recreated empty',
    'truncate + sfdisk restored.img < table; lz4 -dc p1.pcl.lz4 | partclone.ext4 -r -s - -o /dev/loopMp1',
  ];
  #work = '';
  #copies = 0;
  #size = 0;

  async setup(work: string): Promise<void> {
    this.#work = work;
    this.#copies = 0;
    await mkdir(work, { recursive: true });
  }

  async #copy(source: string): Promise<Phase> {
    this.#size = (await stat(source)).size;
    const n = ++this.#copies;
    const out = path.join(this.#work, `copy${n}`);
    const dev = await attach(source, 1);
    try {
      let m = await measure({
        cmd: 'bash',
        args: ['-c', 'set -eo pipefail; sfdisk -d "$1" > "$3.table"; partclone.ext4 -c -q -s "$2" -o - 2>/dev/null | lz4 -1 -q > "$3.pcl.lz4"', 'bash', source, `${dev}p1`, out],
      });
      m = withSync(m, await measure({ cmd: 'sync', args: [`${out}.pcl.lz4`, `${out}.table`] }));
      const sent = await storedBytes(`${out}.pcl.lz4`);
      return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { 'partclone.ext4': 'partclone', lz4: 'lz4' }), bytesSent: sent, bytesStored: await storedBytes(this.#work) };
    } finally {
      await detach(dev);
    }
  }

  full(source: string): Promise<Phase> {
    return this.#copy(source);
  }

  incr(source: string): Promise<Phase> {
    return this.#copy(source);
  }

  async restore(target: string): Promise<Phase> {
    const copy = path.join(this.#work, `copy${this.#copies}`);
    await sh('truncate', ['-s', String(this.#size), target]);
    await sh('bash', ['-c', 'sfdisk -q "$1" < "$2"', 'bash', target, `${copy}.table`]);
    const dev = await attach(target, 1);
    let m: Measured;
    try {
      m = await measure({
        cmd: 'bash',
        args: ['-c', 'set -eo pipefail; lz4 -dc "$1" | partclone.ext4 -r -q -s - -o "$2" 2>/dev/null', 'bash', `${copy}.pcl.lz4`, `${dev}p1`],
      });
    } finally {
      await detach(dev);
    }
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { 'partclone.ext4': 'partclone', lz4: 'lz4' }), bytesSent: 0, bytesStored: await allocated(target) };
  }

  async teardown(): Promise<void> {
    await rm(this.#work, { recursive: true, force: true });
  }
}

// ---- plain lz4 ---------------------------------------------------------------------------------------------

export class Lz4Tool implements Tool {
  readonly name = 'lz4';
  readonly incremental = false;
  readonly commands = ['lz4 -1 source.img copy.lz4   # the whole image, zeros included', 'lz4 -d copy.lz4 restored.img   # writes sparse'];
  #work = '';
  #copies = 0;

  async setup(work: string): Promise<void> {
    this.#work = work;
    this.#copies = 0;
    await mkdir(work, { recursive: true });
  }

  async #copy(source: string): Promise<Phase> {
    const out = path.join(this.#work, `copy${++this.#copies}.lz4`);
    const m = withSync(await measure({ cmd: 'lz4', args: ['-1', '-q', '-f', source, out] }), await measure({ cmd: 'sync', args: [out] }));
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { lz4: 'lz4' }), bytesSent: await storedBytes(out), bytesStored: await storedBytes(this.#work) };
  }

  full(source: string): Promise<Phase> {
    return this.#copy(source);
  }

  incr(source: string): Promise<Phase> {
    return this.#copy(source);
  }

  async restore(target: string): Promise<Phase> {
    const m = await measure({ cmd: 'lz4', args: ['-d', '-q', '-f', path.join(this.#work, `copy${this.#copies}.lz4`), target] });
    return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { lz4: 'lz4' }), bytesSent: 0, bytesStored: await allocated(target) };
  }

  async teardown(): Promise<void> {
    await rm(this.#work, { recursive: true, force: true });
  }
}

/** The restore yardstick: dd of the newest source image to a file, zero blocks skipped as a restore skips them. */
export async function ddCopy(source: string, target: string): Promise<Phase> {
  const m = await measure({ cmd: 'dd', args: [`if=${source}`, `of=${target}`, 'bs=1M', 'conv=sparse', 'status=none'] });
  return { wallSeconds: m.wallSeconds, cpuSeconds: m.cpuSeconds, peakRss: rssOf(m, { dd: 'dd' }), bytesSent: 0, bytesStored: await allocated(target) };
}
