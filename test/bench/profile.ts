/*
 * One full backup with V8's sampling profiler on both sides: the agent run from its node entry point with
 * `node --cpu-prof` (the executable's bundle is the same code), the appliance through cpu-profile-preload.ts. Summarised as
 * self time per function, so the report can say where a full backup's CPU goes.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, enrollAgent } from '../lib/cli.js';
import { measure } from './measure.js';
import { startBenchAppliance } from './peers.js';

export interface ProfileLine {
  fn: string;
  where: string;
  percent: number;
}

export interface Profiles {
  agent: ProfileLine[];
  appliance: ProfileLine[];
  agentCpuSeconds: number;
  wallSeconds: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
}

/** Self time by function, the top `n`, in % of the samples where the process was busy (not idle). */
export function summarise(profile: CpuProfile, n = 12): ProfileLine[] {
  const byFn = new Map<string, { fn: string; where: string; hits: number }>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    total += hits;
    const where = url ? `${url.replace(/^file:\/\//, '').replace(ROOT, '').replace(/.*node_modules\//, 'node_modules/')}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const entry = byFn.get(key) ?? { fn: functionName || '(anonymous)', where, hits: 0 };
    entry.hits += hits;
    byFn.set(key, entry);
  }
  return [...byFn.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, n)
    .map((e) => ({ fn: e.fn, where: e.where, percent: (100 * e.hits) / Math.max(1, total) }));
}

async function largestProfile(dir: string): Promise<CpuProfile> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  let best = '';
  let size = -1;
  for (const f of files) {
    const s = (await stat(path.join(dir, f))).size;
    if (s > size) [best, size] = [f, s];
  }
  if (!best) throw new Error(`no CPU profile was written in ${dir}`);
  return JSON.parse(await readFile(path.join(dir, best), 'utf8')) as CpuProfile;
}

const PRELOAD = path.join(ROOT, 'test/bench/cpu-profile-preload.ts');

export async function profileFullBackup(work: string, image: string): Promise<Profiles> {
  const agentDir = path.join(work, 'agent-prof');
  const applianceProfile = path.join(work, 'appliance.cpuprofile');
  await mkdir(agentDir, { recursive: true });
  const saved = { NODE_OPTIONS: process.env.NODE_OPTIONS, FERRY_BENCH_CPU_PROFILE: process.env.FERRY_BENCH_CPU_PROFILE };
  process.env.NODE_OPTIONS = `${saved.NODE_OPTIONS ?? ''} --import tsx --import ${PRELOAD}`.trim();
  process.env.FERRY_BENCH_CPU_PROFILE = applianceProfile;
  let appliance;
  try {
    appliance = await startBenchAppliance(path.join(work, 'appliance'));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  try {
    const state = path.join(work, 'state');
    await enrollAgent(appliance, state, 'profiled-source');
    appliance.process.kill('SIGUSR2');
    const m = await measure({
      cmd: process.execPath,
      args: ['--cpu-prof', `--cpu-prof-dir=${agentDir}`, path.join(ROOT, 'agent/bin/ferry-agent.js'), 'backup', '--disk', image, '--state', state, '--json'],
    });
    appliance.process.kill('SIGUSR2');
    for (let i = 0; i < 100 && !existsSync(applianceProfile); i++) await new Promise((r) => setTimeout(r, 100));
    const applianceSummary = summarise(JSON.parse(await readFile(applianceProfile, 'utf8')) as CpuProfile);
    return { agent: summarise(await largestProfile(agentDir)), appliance: applianceSummary, agentCpuSeconds: m.cpuSeconds, wallSeconds: m.wallSeconds };
  } finally {
    await appliance.stop();
  }
}
