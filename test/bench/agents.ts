/*
 * The agent on its own: its footprint at the default network throttle, and many agents against one appliance
 * (aggregate throughput, and the latency of the UI's API calls while they run).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ApplianceClient } from '@ferry/protocol';
import { enrollAgent, sh, type RunningAppliance } from '../lib/cli.js';
import type { BackupJson } from '../lib/fixture-data.js';
import { smallImage } from './disks.js';
import { measure, vmHwm, watchProcess } from './measure.js';

export interface Footprint {
  networkMbps: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** CPU time over wall time over the machine's CPUs, in %. */
  machineCpuPercent: number;
  peakRss: number;
  applianceCpuSeconds: number;
  backup: BackupJson;
}

/** The runtime setting the systemd unit and passive mode give the agent (a 1 MiB young generation). */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=1';

/** One full backup of `image` by the agent executable at `networkMbps`. */
export async function agentFootprint(agentBinary: string, appliance: RunningAppliance, image: string, state: string, networkMbps: number): Promise<Footprint> {
  await enrollAgent(appliance, state, 'footprint-source');
  const watch = await watchProcess(appliance.process.pid!);
  // As the agent runs when installed (agent/systemd/ferry-agent.service) or started by passive mode.
  const m = await measure({ cmd: agentBinary, args: ['backup', '--disk', image, '--state', state, '--json', '--network-mbps', String(networkMbps)], env: { NODE_OPTIONS: AGENT_NODE_OPTIONS } });
  const a = watch();
  return {
    networkMbps,
    wallSeconds: m.wallSeconds,
    cpuSeconds: m.cpuSeconds,
    machineCpuPercent: (100 * m.cpuSeconds) / m.wallSeconds / os.cpus().length,
    peakRss: m.peakRss.get('ferry-agent') ?? 0,
    applianceCpuSeconds: a.cpuSeconds,
    backup: JSON.parse(m.stdout) as BackupJson,
  };
}

export interface ScalingLevel {
  agents: number;
  diskMiB: number;
  dataMiB: number;
  wallSeconds: number;
  bytesRead: number;
  bytesSent: number;
  /** Bytes read by all agents over the wall time from the first start to the last commit, MB/s. */
  aggregateMBps: number;
  api: Record<string, { count: number; p50: number; p99: number; max: number }>;
  peakAgentRss: number;
  applianceCpuSeconds: number;
  appliancePeakRss: number;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** Runs an agent to completion, tracking its peak RSS; resolves with its JSON result. */
function runAgent(binary: string, args: string[]): Promise<{ result: BackupJson; peakRss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let peak = 0;
    const timer = setInterval(() => {
      // Its own high-water mark only, not a sampler over its tree: twenty samplers would cost more CPU than they measure.
      peak = Math.max(peak, vmHwm(child.pid!));
    }, 250);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
    child.once('error', reject);
    child.once('close', (code) => {
      clearInterval(timer);
      if (code !== 0) reject(new Error(`agent ${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ result: JSON.parse(out) as BackupJson, peakRss: peak });
    });
  });
}

/** N agents, each with its own small disk, back up at once into one appliance while the UI's calls are timed. */
export async function scalingLevel(agentBinary: string, appliance: RunningAppliance, work: string, agents: number, diskMiB: number, dataMiB: number): Promise<ScalingLevel> {
  const states: string[] = [];
  const images: string[] = [];
  for (let i = 0; i < agents; i++) {
    const image = path.join(work, `scale-${agents}-${i}.img`);
    await smallImage(image, diskMiB, dataMiB, agents * 100 + i);
    images.push(image);
    states.push(path.join(work, `scale-${agents}-${i}-state`));
  }
  // Enrollment is not part of the measurement: a few at a time, it is node start-up mostly.
  for (let i = 0; i < agents; i += 5) {
    await Promise.all(states.slice(i, i + 5).map((s, k) => enrollAgent(appliance, s, `scale-${agents}-${i + k}`)));
  }
  // The images were just written: flush them now, not on the appliance's fsyncs during the run.
  await sh('sync', []);
  const client = new ApplianceClient(appliance.url, appliance.fingerprint, appliance.adminToken);
  const latencies: Record<string, number[]> = { 'GET /api/v1/jobs': [], 'GET /api/v1/sources': [] };
  let running = true;
  const poller = (async () => {
    while (running) {
      for (const [label, list] of Object.entries(latencies)) {
        const t = performance.now();
        await client.json(label.slice(4));
        list.push(performance.now() - t);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const watch = await watchProcess(appliance.process.pid!);
  const started = performance.now();
  try {
    const results = await Promise.all(images.map((image, i) => runAgent(agentBinary, ['backup', '--disk', image, '--state', states[i]!, '--json'])));
    const wallSeconds = (performance.now() - started) / 1000;
    const a = watch();
    running = false;
    await poller;
    const bytesRead = results.reduce((s, r) => s + r.result.bytesRead, 0);
    const api: ScalingLevel['api'] = {};
    for (const [label, list] of Object.entries(latencies)) {
      const sorted = [...list].sort((x, y) => x - y);
      api[label] = { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
    }
    return {
      agents,
      diskMiB,
      dataMiB,
      wallSeconds,
      bytesRead,
      bytesSent: results.reduce((s, r) => s + r.result.bytesSent, 0),
      aggregateMBps: bytesRead / 1e6 / wallSeconds,
      api,
      peakAgentRss: Math.max(...results.map((r) => r.peakRss)),
      applianceCpuSeconds: a.cpuSeconds,
      appliancePeakRss: a.peakRss,
    };
  } finally {
    running = false;
    await poller.catch(() => undefined);
    client.close();
  }
}
