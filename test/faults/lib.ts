import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplianceClient, API_PREFIX, type CycleState } from '@ferry/protocol';
import { ferry, ferryOk, sh, startAppliance, type RunningAppliance } from '../lib/cli.js';

/*
 * Shared by the fault suite (docs/reliability.md): the seed, an appliance that dies at a named point, and the
 * checks every scenario ends with (catalog integrity, verify, restores byte-equal).
 */

/** The suite's seed: FERRY_FAULT_SEED, or a fresh one; printed so a failing run can be repeated. */
export function faultSeed(scenario: string): number {
  const given = process.env.FERRY_FAULT_SEED;
  const seed = given ? Number(given) : randomInt(1, 2 ** 31);
  assert.ok(Number.isSafeInteger(seed) && seed > 0, `FERRY_FAULT_SEED="${given}" is not a positive integer`);
  process.stdout.write(`# ${scenario}: FERRY_FAULT_SEED=${seed}\n`);
  return seed;
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same images and kill moments. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) b.writeUInt32LE(Math.floor(this.next() * 4294967296), i);
    return b;
  }
}

export const MIB = 1024 * 1024;

/**
 * Rewrites `blocks` random 1 MiB blocks of a raw image: random bytes (incompressible), a repeat of another
 * block (deduplicated), or zeros. A raw image has no file system, so the agent sends every block and the
 * restore must equal the whole file.
 */
export async function scribble(image: string, rng: Rng, blocks: number): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    const { size } = await fh.stat();
    const count = size / MIB;
    for (let i = 0; i < blocks; i++) {
      const at = rng.int(count) * MIB;
      const kind = rng.int(4);
      const data = kind === 0 ? Buffer.alloc(MIB) : rng.bytes(MIB);
      if (kind === 1) await fh.read(data, 0, MIB, rng.int(count) * MIB);
      await fh.write(data, 0, MIB, at);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Starts `ferry-appliance serve` (encrypted, unlocked with the passphrase file) with FERRY_FAULT armed or not. */
export async function startFaulty(dataDir: string, fault?: string): Promise<RunningAppliance> {
  // startAppliance spawns synchronously from process.env: set the fault for that spawn only.
  if (fault) process.env.FERRY_FAULT = fault;
  const started = startAppliance(dataDir);
  delete process.env.FERRY_FAULT;
  return started;
}

/** Resolves when the appliance process has exited; returns the signal that ended it. */
export function exited(a: RunningAppliance): Promise<NodeJS.Signals | null> {
  if (a.process.exitCode !== null || a.process.signalCode !== null) return Promise.resolve(a.process.signalCode);
  return new Promise((resolve) => a.process.once('exit', (_code, signal) => resolve(signal)));
}

/** Kills the appliance with SIGKILL (if it still runs) and waits for it. */
export async function kill9(a: RunningAppliance): Promise<void> {
  const done = exited(a);
  if (a.process.exitCode === null && a.process.signalCode === null) a.process.kill('SIGKILL');
  await done;
}

/** Points the enrolled agent at the appliance's new address (every restart listens on a new ephemeral port). */
export async function repoint(stateDir: string, url: string): Promise<void> {
  const file = path.join(stateDir, 'agent.json');
  const state = JSON.parse(await readFile(file, 'utf8')) as { appliance: string };
  await writeFile(file, JSON.stringify({ ...state, appliance: url }), { mode: 0o600 });
}

export interface BackupRun {
  code: number | null;
  stdout: string;
  stderr: string;
  pointId?: number;
  bytesSent?: number;
}

/** `ferry-agent backup --json` of one image, or of several (one disk each, in this order). */
export async function backup(stateDir: string, images: string | string[]): Promise<BackupRun> {
  const r = await ferry('agent', ['backup', '--disk', ...[images].flat(), '--state', stateDir, '--json']);
  if (r.code !== 0) return r;
  const j = JSON.parse(r.stdout) as { point: { id: number }; bytesSent: number };
  return { ...r, pointId: j.point.id, bytesSent: j.bytesSent };
}

/** SQLite's own check of the catalog. */
export async function catalogIntegrity(dataDir: string): Promise<void> {
  const out = (await sh('sqlite3', [path.join(dataDir, 'catalog.sqlite'), 'PRAGMA integrity_check;'])).trim();
  assert.equal(out, 'ok', `PRAGMA integrity_check: ${out}`);
}

export interface VerifyReport {
  ok: boolean;
  points: { id: number; ok: boolean; problems: string[] }[];
  damagedChunks: { id: string; points: string[] }[];
}

/** `ferry-appliance verify --json` (with the test passphrase). */
export async function verify(dataDir: string): Promise<{ code: number | null; report: VerifyReport; stderr: string }> {
  const r = await ferry('appliance', ['verify', '--data', dataDir, '--json']);
  let report: VerifyReport;
  try {
    report = JSON.parse(r.stdout) as VerifyReport;
  } catch {
    throw new Error(`ferry-appliance verify exited ${r.code} without a JSON report:\n${r.stderr}\n${r.stdout}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

export async function verifyClean(dataDir: string): Promise<VerifyReport> {
  const v = await verify(dataDir);
  assert.equal(v.code, 0, `verify is clean: ${JSON.stringify(v.report.points.filter((p) => !p.ok))} ${v.stderr}`);
  assert.equal(v.report.ok, true);
  return v.report;
}

/** Restores a point with `ferry-restore` into a file; returns its exit code and output. */
export async function restoreTo(a: RunningAppliance, pointId: number, target: string, size: number): Promise<{ code: number | null; output: string }> {
  await sh('truncate', ['-s', String(size), target]);
  const r = await ferry('restore', ['--appliance', a.url, '--fingerprint', a.fingerprint, '--token', a.adminToken, '--point', String(pointId), '--target', target]);
  return { code: r.code, output: r.stderr + r.stdout };
}

/** Restores a point and checks each disk equals its `expected` image byte for byte. */
export async function restoreEqual(a: RunningAppliance, pointId: number, expected: string | string[], work: string): Promise<void> {
  const images = [expected].flat();
  const targets = images.map((_, i) => path.join(work, `restore-${pointId}-${i}.img`));
  try {
    for (const [i, img] of images.entries()) await sh('truncate', ['-s', String((await stat(img)).size), targets[i]!]);
    const r = await ferry('restore', ['--appliance', a.url, '--fingerprint', a.fingerprint, '--token', a.adminToken, '--point', String(pointId), '--target', targets.join(',')]);
    assert.equal(r.code, 0, `restore of point ${pointId}: ${r.stderr}${r.stdout}`);
    for (const [i, img] of images.entries()) {
      assert.ok((await readFile(targets[i]!)).equals(await readFile(img)), `point ${pointId} disk ${i} restores byte-equal to ${img}`);
    }
  } finally {
    for (const t of targets) await rm(t, { force: true });
  }
}

/** The state of a cycle as the appliance reports it (admin token). */
export async function cycleState(a: RunningAppliance, cycleId: number): Promise<CycleState> {
  const client = new ApplianceClient(a.url, a.fingerprint, a.adminToken);
  try {
    return await client.json<CycleState>(`${API_PREFIX}/cycles/${cycleId}`);
  } finally {
    client.close();
  }
}

export { ferryOk };
