/*
 * `make bench`: Ferry against the tools people would use instead, on the same disk in the same session, then the
 * agent's footprint, scaling to many agents and the block-size study. Not a test: it asserts nothing about speed.
 * Writes docs/benchmarks.md and docs/benchmarks.svg (regenerated, never hand-edited) and the raw figures to
 * test/out/bench-results.json. BENCH_QUICK=1: one run on a small image, for developing the bench.
 * BENCH_REPORT_ONLY=1: rewrite the report from test/out/bench-results.json without measuring; BENCH_ONLY=footprint|scaling|
 * blocksize: measure that section again into those results.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT, sh, type RunningAppliance } from '../lib/cli.js';
import { ensureAgentBinary } from '../lib/agent-binary.js';
import { fsckClean } from '../lib/disk-image.js';
import { agentFootprint, scalingLevel, type ScalingLevel } from './agents.js';
import { modelIncremental, trimmedCopy, type ModelResult } from './block-model.js';
import { footprintImage } from './disks.js';
import { measure } from './measure.js';
import { profileFullBackup } from './profile.js';
import { BorgTool, FerryTool, Lz4Tool, PartcloneTool, ResticTool, ddCopy, startBenchAppliance, type Phase, type Tool } from './peers.js';
import { writeReport, type BlockSizeResult, type PhaseName, type Results } from './report.js';
import { RECIPES, sourceImages } from './source-image.js';

const QUICK = process.env.BENCH_QUICK === '1';
const RESULTS = path.join(ROOT, 'test/out/bench-results.json');
const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

/** cp keeps the sparse layout; copying over the same path keeps the disk's identity for Ferry (its key is the path). */
const place = (from: string, to: string): Promise<string> => sh('cp', ['--sparse=always', from, to]);

async function versions(): Promise<Record<string, string>> {
  const first = async (cmd: string, args: string[]): Promise<string> => {
    const r = await sh('bash', ['-c', `${cmd} ${args.join(' ')} 2>&1 | head -n 1`]).catch(() => '?');
    return r.trim();
  };
  const pkg = (name: string): string => (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    node: process.version,
    'ferry (lz4 addon, xxhash-wasm, better-sqlite3)': `${pkg('lz4')}, ${pkg('xxhash-wasm')}, ${pkg('better-sqlite3')}`,
    borg: await first('borg', ['--version']),
    restic: await first('restic', ['version']),
    partclone: await first('partclone.ext4', ['-v']),
    lz4: await first('lz4', ['--version']),
    dd: await first('dd', ['--version']),
    kernel: (await sh('uname', ['-r'])).trim(),
  };
}

const BLOCK_SIZES = [65536, 262144, 1048576, 4194304];

async function blockSizeStudy(agentBinary: string, base: string, changed: string, work: string): Promise<BlockSizeResult[]> {
  const out: BlockSizeResult[] = [];
  for (const blockSize of BLOCK_SIZES) {
    log(`block-size study: ${blockSize / 1024} KiB…`);
    const dir = path.join(work, `bs-${blockSize}`);
    await mkdir(dir, { recursive: true });
    const source = path.join(dir, 'source.img');
    await place(base, source);
    const ferry = new FerryTool({ agentBinary, blockSize });
    try {
      await ferry.setup(dir);
      await sh('sync', []);
      const full = await ferry.full(source);
      const fullStats = ferry.lastBackup!;
      await place(changed, source);
      await sh('sync', []);
      const incr = await ferry.incr(source);
      const incrStats = ferry.lastBackup!;
      out.push({ blockSize, full, incr, fullStats, incrStats, indexBytes: (await stat(await ferry.newestIndex(path.join(dir, 'newest.fidx')))).size });
    } catch (err) {
      // A block size the product cannot handle is a finding for the report, not a reason to lose the other figures.
      log(`block size ${blockSize} failed: ${(err as Error).message}`);
      out.push({ blockSize, error: errorGist((err as Error).message) });
    } finally {
      await ferry.teardown();
      await rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}

/** 1, 5 and 20 agents at once into one appliance; a level that fails is a failure in the report. */
async function scalingRun(agentBinary: string, appliance: RunningAppliance, work: string, failures: Results['failures']): Promise<ScalingLevel[]> {
  const out: ScalingLevel[] = [];
  for (const agents of [1, 5, 20]) {
    log(`scaling: ${agents} agents…`);
    try {
      await sh('sync', []);
      out.push(await scalingLevel(agentBinary, appliance, work, agents, QUICK ? 64 : 384, QUICK ? 24 : 192));
    } catch (err) {
      failures.push({ tool: 'ferry', phase: `scaling with ${agents} agents`, run: 0, message: errorGist((err as Error).message) });
    }
    await sh('bash', ['-c', `rm -f ${work}/scale-*.img`]);
  }
  return out;
}

/** The block-size model's figures for every studied size (test/bench/block-model.ts). */
async function blockModelRun(base: string, changed: string, work: string): Promise<ModelResult[]> {
  log('block-size model…');
  const [trimmedBase, trimmedChanged] = [path.join(work, 'model-base.img'), path.join(work, 'model-changed.img')];
  await trimmedCopy(base, trimmedBase);
  await trimmedCopy(changed, trimmedChanged);
  const out: ModelResult[] = [];
  for (const size of BLOCK_SIZES) out.push(await modelIncremental(trimmedBase, trimmedChanged, size));
  await rm(trimmedBase);
  await rm(trimmedChanged);
  return out;
}

async function main(): Promise<void> {
  if (process.env.BENCH_REPORT_ONLY === '1') {
    await writeReport(JSON.parse(await readFile(RESULTS, 'utf8')) as Results);
    return;
  }
  const only = process.env.BENCH_ONLY;
  if (only === 'blocksize') {
    // The block-size study alone, into the existing results (it needs only the agent and the two cached images).
    const r = JSON.parse(await readFile(RESULTS, 'utf8')) as Results;
    const images = await sourceImages(RECIPES.full);
    const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
    try {
      r.blockSizes = await blockSizeStudy(await ensureAgentBinary(), images.base, images.changed, work);
      r.blockModel = await blockModelRun(images.base, images.changed, work);
      r.blockSizesMeasuredAt = new Date().toISOString();
      await writeFile(RESULTS, JSON.stringify(r, null, 1));
      await writeReport(r);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return;
  }
  if (only === 'footprint' || only === 'scaling') {
    // Re-measures one section alone into the existing results (e.g. after it failed for an outside reason).
    const r = JSON.parse(await readFile(RESULTS, 'utf8')) as Results;
    const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
    const appliance = await startBenchAppliance(path.join(work, `${only}-appliance`));
    try {
      const agentBinary = await ensureAgentBinary();
      if (only === 'footprint') {
        r.failures = r.failures.filter((f) => f.phase !== 'footprint');
        r.footprint = await agentFootprint(agentBinary, appliance, await footprintImage(RECIPES.full), path.join(work, 'footprint-agent'), 300);
        r.footprintMeasuredAt = new Date().toISOString();
      } else {
        r.failures = r.failures.filter((f) => !f.phase.startsWith('scaling'));
        r.scaling = await scalingRun(agentBinary, appliance, work, r.failures);
        r.machine.loadAfter = os.loadavg();
        r.scalingMeasuredAt = new Date().toISOString();
      }
      await writeFile(RESULTS, JSON.stringify(r, null, 1));
      await writeReport(r);
    } finally {
      await appliance.stop();
      await rm(work, { recursive: true, force: true });
    }
    return;
  }
  const recipe = QUICK ? RECIPES.quick : RECIPES.full;
  const runs = QUICK ? 1 : Number(process.env.BENCH_RUNS ?? 3);
  const loadBefore = os.loadavg();
  const startedAt = Date.now();
  const agentBinary = await ensureAgentBinary();
  const images = await sourceImages(recipe);
  const fpImage = await footprintImage(recipe);
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  const tools: Tool[] = [new FerryTool({ agentBinary }), new BorgTool(), new ResticTool(), new PartcloneTool(), new Lz4Tool()];
  const samples: Results['samples'] = {};
  const ferryStats: Results['ferryStats'] = { full: [], incr: [] };
  const readHash: Results['readHash'] = [];
  const orders: string[][] = [];
  const checks: string[] = [];
  const failures: Results['failures'] = [];
  /** Runs one step; a failure is recorded for the report and the tool sits out the rest of the run. */
  const step = async (tool: string, phase: PhaseName, run: number, failed: Set<string>, fn: () => Promise<Phase>): Promise<boolean> => {
    if (failed.has(tool)) return false;
    log(`  ${phase}: ${tool}`);
    try {
      // Nothing another step left dirty in the page cache may be flushed on this step's time (an fsync waits for it).
      await sh('sync', []);
      const p = await fn();
      samples[tool] ??= { full: [], incr: [], restore: [] };
      samples[tool][phase].push(p);
      return true;
    } catch (err) {
      const message = (err as Error).message;
      log(`  ${tool} ${phase} FAILED: ${message}`);
      failures.push({ tool, phase, run, message: errorGist(message) });
      failed.add(tool);
      return false;
    }
  };
  try {
    const source = path.join(work, 'source.img');
    const target = path.join(work, 'restored.img');
    for (let run = 0; run < runs; run++) {
      // Alternating order: every other run is the previous one reversed (first goes last), and each pair is rotated
      // by one, so no tool always goes first or last.
      const rotated = tools.map((_, i) => tools[(i + Math.floor(run / 2)) % tools.length]!);
      const order = run % 2 === 1 ? rotated.reverse() : rotated;
      orders.push(order.map((t) => t.name));
      log(`run ${run + 1}/${runs}, order ${orders.at(-1)!.join(', ')}`);
      const failed = new Set<string>();
      await place(images.base, source);
      for (const t of order) {
        await t.setup(path.join(work, `run${run}`, t.name.replace(/\W/g, '_')));
        if ((await step(t.name, 'full', run, failed, () => t.full(source))) && t instanceof FerryTool) ferryStats.full.push(t.lastBackup!);
      }
      await place(images.changed, source);
      for (const t of order) {
        if ((await step(t.name, 'incr', run, failed, () => t.incr(source))) && t instanceof FerryTool) {
          ferryStats.incr.push(t.lastBackup!);
          const m = await measure({ cmd: process.execPath, args: ['--conditions=development', '--import', 'tsx', path.join(ROOT, 'test/bench/read-hash.ts'), source, await t.newestIndex(path.join(work, 'newest.fidx'))] });
          readHash.push(JSON.parse(m.stdout) as { bytes: number; seconds: number });
        }
      }
      const restorers: [string, (target: string) => Promise<Phase>][] = [...order.map((t): [string, (x: string) => Promise<Phase>] => [t.name, (x) => t.restore(x)]), ['dd', (x) => ddCopy(source, x)]];
      for (const [name, restore] of run % 2 === 1 ? restorers.reverse() : restorers) {
        await rm(target, { force: true });
        // Every restore ends with the target's fsync in its time (Ferry's restore syncs itself; dd, lz4 and the others do not).
        const synced = async (): Promise<Phase> => {
          const p = await restore(target);
          const sync = await measure({ cmd: 'sync', args: [target] });
          return { ...p, wallSeconds: p.wallSeconds + sync.wallSeconds, cpuSeconds: p.cpuSeconds + sync.cpuSeconds };
        };
        if ((await step(name, 'restore', run, failed, synced)) && run === 0) checks.push(await checkRestore(name, source, target));
        await rm(target, { force: true });
      }
      for (const t of order) await t.teardown();
    }

    log('agent footprint at 300 Mbit/s…');
    const appliance = await startBenchAppliance(path.join(work, 'agents-appliance'));
    let footprint: Results['footprint'];
    const scaling: Results['scaling'] = [];
    try {
      await sh('sync', []);
      footprint = await agentFootprint(agentBinary, appliance, fpImage, path.join(work, 'footprint-agent'), 300).catch((err: Error) => {
        failures.push({ tool: 'ferry', phase: 'footprint', run: 0, message: errorGist(err.message) });
        return null;
      });
      scaling.push(...(await scalingRun(agentBinary, appliance, work, failures)));
    } finally {
      await appliance.stop();
    }
    const blockSizes = await blockSizeStudy(agentBinary, images.base, images.changed, work);
    const blockModel = await blockModelRun(images.base, images.changed, work);
    log('profile of a full backup (node --cpu-prof)…');
    await place(images.base, source);
    const profile = await profileFullBackup(path.join(work, 'profile'), source).catch((err: Error) => {
      failures.push({ tool: 'ferry', phase: 'profile', run: 0, message: errorGist(err.message) });
      return null;
    });

    const results: Results = {
      quick: QUICK,
      date: new Date().toISOString(),
      minutes: (Date.now() - startedAt) / 60_000,
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown CPU', memGiB: os.totalmem() / 2 ** 30, loadBefore, loadAfter: os.loadavg() },
      versions: await versions(),
      image: { recipe, diskBytes: statSync(images.base).size, dataFiles: images.dataFiles, dataBytes: images.dataBytes, changes: images.changes },
      footprintImage: { diskBytes: statSync(fpImage).size, dataMiB: recipe.footprintDataMiB },
      runs,
      orders,
      commands: Object.fromEntries(tools.map((t) => [t.name, t.commands])),
      incremental: Object.fromEntries(tools.map((t) => [t.name, t.incremental])),
      samples,
      ferryStats,
      readHash,
      checks,
      footprint,
      scaling,
      blockSizes,
      blockModel,
      profile,
      failures,
    };
    await mkdir(path.dirname(RESULTS), { recursive: true });
    await writeFile(RESULTS, JSON.stringify(results, null, 1));
    await writeReport(results);
  } finally {
    for (const t of tools) await t.teardown().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

/** The lines of a failed command's error that say what went wrong (a Ferry program's message and code). */
export function errorGist(message: string): string {
  const lines = message.split('\n').map((l) => l.trim());
  const ferry = lines.filter((l) => /^ferry-[a-z]+:|\(error [A-Z_]+\)$/.test(l));
  return (ferry.length > 0 ? ferry.join(' ') : lines.filter(Boolean).slice(0, 3).join(' ')).slice(0, 400);
}

/** The first run checks each restore: byte-equal for whole-image tools, a clean fsck for the used-blocks ones. */
async function checkRestore(name: string, source: string, target: string): Promise<string> {
  if (name === 'ferry' || name === 'partclone+lz4') {
    // Both leave unused blocks zero (or unwritten), so the image differs from the source where files were deleted.
    await fsckClean(target, 1);
    return `${name}: restored image's ext4 passes e2fsck -fn`;
  }
  const [a, b] = await Promise.all([sh('sha256sum', [source]), sh('sha256sum', [target])]);
  if (a.split(' ')[0] !== b.split(' ')[0]) throw new Error(`${name}: the restored image differs from the source`);
  return `${name}: restored image is byte-equal to the source (SHA-256)`;
}

await main();
