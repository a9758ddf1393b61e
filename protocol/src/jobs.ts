import { z } from 'zod';

/**
 * Migration jobs: one per source, a full cycle first and then incremental cycles every interval.
 * The state machine is shared so the appliance enforces it and the UI shows only what applies.
 */
export const JOB_STATES = ['Ready', 'Syncing', 'Waiting', 'Paused', 'InError', 'Suspended', 'Completing', 'Completed', 'Cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** What a syncing job is doing: reading and hashing blocks that turn out unchanged, or sending changed ones. */
export const JOB_PHASES = ['Comparing', 'Transferring'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

export const TERMINAL_JOB_STATES: readonly JobState[] = ['Completed', 'Cancelled'];

export const JOB_ACTIONS = ['sync-now', 'pause', 'resume', 'retry', 'complete', 'cancel', 'settings'] as const;
export type JobAction = (typeof JOB_ACTIONS)[number];

const LIVE: JobState[] = ['Ready', 'Syncing', 'Waiting', 'Paused', 'InError', 'Suspended', 'Completing'];

/** The states each action applies to; anything else is refused with JOB_ACTION_INVALID. */
export const ACTION_STATES: Readonly<Record<JobAction, readonly JobState[]>> = {
  'sync-now': ['Waiting'],
  pause: ['Ready', 'Syncing', 'Waiting', 'InError', 'Suspended', 'Completing'],
  resume: ['Paused'],
  retry: ['InError'],
  complete: LIVE,
  cancel: LIVE,
  settings: LIVE,
};

export function actionsFor(state: JobState): JobAction[] {
  return JOB_ACTIONS.filter((a) => ACTION_STATES[a].includes(state));
}

export const MIN_INTERVAL_SECONDS = 3600;
export const MAX_INTERVAL_SECONDS = 7 * 24 * 3600;
export const MIN_MAX_POINTS = 1;
export const MAX_MAX_POINTS = 10;

export const IntervalSchema = z
  .number()
  .int()
  .refine((s) => s >= MIN_INTERVAL_SECONDS && s <= MAX_INTERVAL_SECONDS, {
    message: `the interval must be between 1 hour (${MIN_INTERVAL_SECONDS} s) and 7 days (${MAX_INTERVAL_SECONDS} s)`,
  });
export const MaxPointsSchema = z
  .number()
  .int()
  .refine((n) => n >= MIN_MAX_POINTS && n <= MAX_MAX_POINTS, { message: `max points must be between ${MIN_MAX_POINTS} and ${MAX_MAX_POINTS}` });

export const ThrottleSchema = z.strictObject({
  /** Network limit in Mbit/s; 0 means unlimited. */
  networkMbps: z.number().int().min(0).max(100_000),
  /** Share of wall time the source disk may spend on our reads, in percent (issue: storage throttle). */
  diskPercent: z.number().int().min(1).max(100),
  /** Reads in flight at once. */
  queueDepth: z.number().int().min(1).max(64),
});
export type Throttle = z.infer<typeof ThrottleSchema>;
export const DEFAULT_THROTTLE: Throttle = Object.freeze({ networkMbps: 300, diskPercent: 30, queueDepth: 4 });

/**
 * Paths on the source whose files' blocks are not copied (big dynamic directories: caches, spool, temp).
 * Absolute, no `..`; a directory excludes everything under it.
 */
export const ExclusionsSchema = z
  .array(
    z
      .string()
      .max(4096)
      .regex(/^\/[^\0]*$/, 'an exclusion is an absolute path on the source, such as /var/cache')
      .refine((p) => !p.split('/').includes('..'), 'an exclusion may not contain ..'),
  )
  .max(256);

/**
 * Commands run on the source (as the agent's user, by /bin/sh) around the final cycle only: `pre` before its
 * disks are read (e.g. stop the database), `post` after it ends, whether it succeeded or not.
 */
export const HooksSchema = z.strictObject({
  pre: z.string().min(1).max(4096).nullable().default(null),
  post: z.string().min(1).max(4096).nullable().default(null),
});
export type Hooks = z.infer<typeof HooksSchema>;

export const CreateJobRequestSchema = z.strictObject({
  sourceId: z.number().int().positive(),
  intervalSeconds: IntervalSchema,
  maxPoints: MaxPointsSchema,
  throttle: ThrottleSchema.partial().optional(),
  exclusions: ExclusionsSchema.optional(),
  hooks: HooksSchema.optional(),
  /** Create the job Paused: no cycle starts (not even the full one) until it is resumed. */
  startPaused: z.boolean().optional(),
});
export type CreateJobRequest = z.infer<typeof CreateJobRequestSchema>;

export const JobSettingsRequestSchema = z
  .strictObject({
    intervalSeconds: IntervalSchema.optional(),
    maxPoints: MaxPointsSchema.optional(),
    throttle: ThrottleSchema.partial().optional(),
    exclusions: ExclusionsSchema.optional(),
    hooks: HooksSchema.optional(),
  })
  .refine((s) => Object.values(s).some((v) => v !== undefined), {
    message: 'give at least one of intervalSeconds, maxPoints, throttle, exclusions, hooks',
  });
export type JobSettingsRequest = z.infer<typeof JobSettingsRequestSchema>;

export const CompleteJobRequestSchema = z.strictObject({
  /** Run one more cycle first (after the source's services were stopped), then complete. */
  lastCycle: z.boolean(),
});
export type CompleteJobRequest = z.infer<typeof CompleteJobRequestSchema>;

export const CancelJobRequestSchema = z.strictObject({
  /** Points (ids) to keep; every other point and everything else the job created is deleted. */
  keepPoints: z.array(z.number().int().positive()).max(10).default([]),
});
export type CancelJobRequest = z.infer<typeof CancelJobRequestSchema>;

export interface DiskProgress {
  slot: number;
  key: string;
  blocksDone: number;
  blockCount: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Live progress of a job's running cycle, as shown in the UI. */
export interface JobProgress {
  jobId: number;
  cycleId: number;
  phase: JobPhase;
  /** Used bytes read so far / to read in this run of the cycle (a resumed cycle counts from where it resumed). */
  bytesDone: number;
  bytesTotal: number;
  bytesChanged: number;
  bytesSent: number;
  /** Bytes per second over the last seconds; null until measured. */
  rate: number | null;
  etaSeconds: number | null;
  resumed: boolean;
  throttle: Throttle;
  disks: DiskProgress[];
  updatedAt: string;
}

export interface JobView {
  id: number;
  sourceId: number;
  sourceName: string;
  state: JobState;
  phase: JobPhase | null;
  intervalSeconds: number;
  /** An interval change waiting for the next cycle to complete. */
  pendingIntervalSeconds: number | null;
  maxPoints: number;
  throttle: Throttle;
  /** Paths on the source whose blocks are not copied. */
  exclusions: string[];
  /** Commands around the final cycle. */
  hooks: Hooks;
  /** Completing: a last cycle was asked for; Completed follows it. */
  lastCycle: boolean;
  nextRunAt: string | null;
  lastCompletedAt: string | null;
  createdAt: string;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
  agentOnline: boolean;
  lastSeen: string | null;
  pointCount: number;
  progress: JobProgress | null;
  allowedActions: JobAction[];
  /**
   * Grows every time the appliance builds a view of a job, also across restarts: of two views of one job, the one
   * with the higher revision is the newer. A client that gets both a reply and a live event keeps the higher.
   */
  revision: number;
}

export interface JobTransition {
  id: number;
  at: string;
  from: JobState | null;
  to: JobState;
  cause: string;
  code: string | null;
}

export interface JobLogEntry {
  id: number;
  jobId: number;
  at: string;
  level: 'info' | 'warn' | 'error';
  code: string | null;
  message: string;
}

export interface JobPoint {
  id: number;
  name: string;
  createdAt: string;
  startedAt: string;
  /** Bytes of all data blocks the point names (its full size as an image, without zero and unused blocks). */
  sizeBytes: number;
  bytesChanged: number;
  bytesSent: number;
  bytesStored: number;
  seconds: number;
  pinned: boolean;
}

/** The reply of every job action: the job as it is now, and what the action means for it. */
export interface JobActionResult {
  job: JobView;
  message: string;
}
