import type { PassiveSourceView } from './passive.js';
import { z } from 'zod';
import type { Reply } from './errors.js';
import type { RestoreView } from './api.js';
import type { SourceView } from './views.js';
import { ExclusionsSchema, HooksSchema, JOB_PHASES, ThrottleSchema, type Hooks, type JobLogEntry, type JobPhase, type JobProgress, type JobView, type Throttle } from './jobs.js';

/**
 * Socket.io event maps. Agents connect to AGENT_NAMESPACE with their credential (`auth: { token }`); browsers
 * connect to UI_NAMESPACE. Every event that expects an answer takes an acknowledgement callback with the one
 * reply shape, `Reply<T>`; the appliance and the agent build it with one wrapper, never a try/catch per handler.
 */
export const AGENT_NAMESPACE = '/agent';
export const UI_NAMESPACE = '/ui';
export const SOCKET_PATH = '/socket.io';

export type Ack<T> = (reply: Reply<T>) => void;

/** Sent by the appliance to tell the agent to run (or resume) a cycle of a job. */
export interface RunCycleCommand {
  jobId: number;
  /** Why it runs: "scheduled", "sync-now", "retry", "resume", "last cycle", "reconnected"… (for the agent's log). */
  reason: string;
  throttle: Throttle;
  /** Paths whose files' blocks are not read or sent (absent: none). */
  exclusions?: string[];
  /** Set for the final cycle only: commands to run before reading and after the cycle. */
  hooks?: Hooks;
}

export interface StopCycleCommand {
  jobId: number;
  reason: 'pause' | 'cancel' | 'complete';
}

export interface AgentHello {
  version: string;
  hostname: string;
  /** The job whose cycle this agent is running right now, if any (after a reconnect). */
  busyJobId: number | null;
}

/** Progress of the agent's running cycle; sent about once a second and at each phase change. */
export interface CycleProgressReport {
  jobId: number;
  cycleId: number;
  phase: JobPhase;
  resumed: boolean;
  bytesDone: number;
  bytesTotal: number;
  bytesChanged: number;
  bytesSent: number;
  disks: { slot: number; key: string; blocksDone: number; blockCount: number; bytesDone: number; bytesTotal: number }[];
}

export interface CycleFailedReport {
  jobId: number;
  cycleId: number | null;
  code: string;
  message: string;
}

export interface CycleStoppedReport {
  jobId: number;
  cycleId: number | null;
  reason: StopCycleCommand['reason'];
}

/** A line for the job log from the agent: how the disks are read (snapshot or live), exclusions, hooks. */
export interface CycleLogReport {
  jobId: number;
  level: 'info' | 'warn';
  message: string;
}

export interface ServerToAgentEvents {
  'cycle.run': (cmd: RunCycleCommand, ack: Ack<{ started: boolean }>) => void;
  'cycle.stop': (cmd: StopCycleCommand, ack: Ack<{ stopped: boolean }>) => void;
  'throttle.set': (throttle: Throttle, ack: Ack<{ applied: boolean }>) => void;
}

export interface AgentToServerEvents {
  'agent.hello': (hello: AgentHello, ack: Ack<{ sourceId: number }>) => void;
  'cycle.progress': (report: CycleProgressReport) => void;
  'cycle.failed': (report: CycleFailedReport, ack: Ack<null>) => void;
  'cycle.stopped': (report: CycleStoppedReport, ack: Ack<null>) => void;
  'cycle.log': (report: CycleLogReport) => void;
}

export interface ServerToUiEvents {
  'job.updated': (job: JobView) => void;
  'job.progress': (progress: JobProgress) => void;
  'job.log': (entry: JobLogEntry) => void;
  'restore.updated': (restore: RestoreView) => void;
  /** A passive source's SSH connection or deployment changed state. */
  'passive.updated': (source: PassiveSourceView) => void;
  /** A source was enrolled or added, came online or went offline, reported its disks, or got a new point. */
  'source.updated': (source: SourceView) => void;
}

export interface UiToServerEvents {
  'jobs.list': (ack: Ack<JobView[]>) => void;
}

/* What agents send is checked against these before the appliance uses it. */
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const JobId = z.number().int().positive();

export const AgentHelloSchema = z.strictObject({
  version: z.string().max(100),
  hostname: z.string().max(253),
  busyJobId: JobId.nullable(),
});

export const CycleProgressReportSchema = z.strictObject({
  jobId: JobId,
  cycleId: JobId,
  phase: z.enum(JOB_PHASES),
  resumed: z.boolean(),
  bytesDone: Count,
  bytesTotal: Count,
  bytesChanged: Count,
  bytesSent: Count,
  disks: z
    .array(z.strictObject({ slot: Count, key: z.string().max(4096), blocksDone: Count, blockCount: Count, bytesDone: Count, bytesTotal: Count }))
    .max(64),
});

export const CycleFailedReportSchema = z.strictObject({
  jobId: JobId,
  cycleId: JobId.nullable(),
  code: z.string().max(64),
  message: z.string().max(4000),
});

export const CycleStoppedReportSchema = z.strictObject({
  jobId: JobId,
  cycleId: JobId.nullable(),
  reason: z.enum(['pause', 'cancel', 'complete']),
});

export const CycleLogReportSchema = z.strictObject({
  jobId: JobId,
  level: z.enum(['info', 'warn']),
  message: z.string().max(4000),
});

/* Commands the agent receives, checked the same way. Loose objects: a newer appliance may add fields. */
export const RunCycleCommandSchema = z.looseObject({
  jobId: JobId,
  reason: z.string().max(200),
  throttle: ThrottleSchema,
  exclusions: ExclusionsSchema.optional(),
  hooks: HooksSchema.optional(),
}) satisfies z.ZodType<RunCycleCommand>;
export const StopCycleCommandSchema = z.looseObject({ jobId: JobId, reason: z.enum(['pause', 'cancel', 'complete']) }) satisfies z.ZodType<StopCycleCommand>;
