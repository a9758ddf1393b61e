import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import {
  BlockKind,
  chunkIdOf,
  Codec,
  encodeBlockFrame,
  encodeChunkFrame,
  encodeEndFrame,
  encodeStreamHeader,
  initHashing,
  xxh64,
  type CommitCycleRequest,
  type Reply,
  type RunCycleCommand,
  type StopCycleCommand,
  type Throttle,
} from '@ferry/protocol';
import { buildAppliance, type Appliance } from '../appliance.js';
import { loadConfig } from '../config.js';
import { ManualClock } from '../clock.js';
import type { AgentLink } from './service.js';

export const BLOCK = 64 * 1024;
export const SUSPEND_AFTER_S = 900;

/**
 * A scripted agent link for tests of job logic: it records the commands the appliance sends and answers
 * them. The real socket.io channel and agent are covered by test/integration/jobs.test.ts.
 */
export class ScriptedAgents implements AgentLink {
  readonly online_ = new Set<number>();
  readonly offline = new Map<number, number>();
  readonly sent: { sourceId: number; event: string; payload: RunCycleCommand | StopCycleCommand | Throttle }[] = [];

  constructor(private readonly clock: ManualClock) {}

  connect(sourceId: number): void {
    this.online_.add(sourceId);
  }
  disconnect(sourceId: number): void {
    this.online_.delete(sourceId);
    this.offline.set(sourceId, this.clock.now());
  }
  online(sourceId: number): boolean {
    return this.online_.has(sourceId);
  }
  offlineSince(sourceId: number): number {
    return this.offline.get(sourceId) ?? 0;
  }
  run(sourceId: number, cmd: RunCycleCommand): Promise<Reply<{ started: boolean }>> {
    this.sent.push({ sourceId, event: 'cycle.run', payload: cmd });
    return Promise.resolve({ ok: true, data: { started: true } });
  }
  stop(sourceId: number, cmd: StopCycleCommand): Promise<Reply<{ stopped: boolean }>> {
    this.sent.push({ sourceId, event: 'cycle.stop', payload: cmd });
    return Promise.resolve({ ok: true, data: { stopped: true } });
  }
  throttle(sourceId: number, throttle: Throttle): Promise<Reply<{ applied: boolean }>> {
    this.sent.push({ sourceId, event: 'throttle.set', payload: throttle });
    return Promise.resolve({ ok: true, data: { applied: true } });
  }
  runs(sourceId: number): RunCycleCommand[] {
    return this.sent.filter((s) => s.sourceId === sourceId && s.event === 'cycle.run').map((s) => s.payload as RunCycleCommand);
  }
}

export interface Harness {
  a: Appliance;
  clock: ManualClock;
  agents: ScriptedAgents;
  dir: string;
  close(): void;
}

export async function harness(): Promise<Harness> {
  await initHashing();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-jobs-'));
  const clock = new ManualClock();
  const agents = new ScriptedAgents(clock);
  const config = loadConfig({ data: dir, listen: '127.0.0.1:0', blockSize: String(BLOCK) }, {});
  const a = buildAppliance(config, pino({ level: 'silent' }), { clock, agentLink: agents });
  return {
    a,
    clock,
    agents,
    dir,
    close: () => {
      a.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function newSource(h: Harness, name: string): number {
  return h.a.auth.enroll({ token: h.a.auth.createEnrollToken(1).token, hostname: name }).sourceId;
}

/** A block filled with one byte value: blocks with the same fill share a chunk. */
export function block(fill: number): Buffer {
  return Buffer.alloc(BLOCK, fill);
}

async function* once(parts: Buffer[]): AsyncIterable<Buffer> {
  for (const p of parts) yield await Promise.resolve(p);
}

/**
 * Runs one cycle of a one-disk source the way an agent does (start, upload blocks, commit), sending every
 * chunk. `stopAfter` uploads only that many blocks and leaves the cycle running; `stats` is what the agent reports
 * at commit.
 */
export async function agentCycle(
  h: Harness,
  sourceId: number,
  blocks: Buffer[],
  stopAfter?: number,
  stats: CommitCycleRequest['stats'] = { bytesRead: 0, bytesCompared: 0, bytesChanged: 0, bytesSent: 0, seconds: 1 },
): Promise<{ cycleId: number; name?: string }> {
  const state = await h.a.cycles.start(sourceId, { disks: [{ key: '/dev/vdb', size: blocks.length * BLOCK }] });
  const disk = state.disks[0]!;
  const upTo = stopAfter ?? blocks.length;
  if (disk.nextBlock < upTo) {
    const frames: Buffer[] = [encodeStreamHeader()];
    let count = 0;
    for (let n = disk.nextBlock; n < upTo; n++) {
      const data = blocks[n]!;
      const id = chunkIdOf(data);
      frames.push(...encodeChunkFrame(id, Codec.None, data.length, data));
      frames.push(encodeBlockFrame({ disk: 0, blockNo: n, kind: BlockKind.Data, xxh64: xxh64(data), chunkId: id }));
      count += 2;
    }
    frames.push(encodeEndFrame(count));
    await h.a.cycles.ingest(state.id, once(frames));
  }
  if (stopAfter !== undefined) return { cycleId: state.id };
  const point = await h.a.cycles.commit(state.id, { stats });
  return { cycleId: state.id, name: point.name };
}
