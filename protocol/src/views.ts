import type { Throttle } from './jobs.js';
import type { PointDisk, SourceSummary } from './api.js';

/*
 * Shapes of the web UI's own routes (users, sessions, audit, dashboard, settings, verify, sources, transport):
 * the appliance builds them, the browser reads them (web imports protocol's types only), docs/api.md and the
 * appliance's openapi.ts describe them.
 */

/**
 * Web UI roles, weakest first. viewer reads; operator also runs jobs, restores and source actions; admin also
 * manages users, settings, agent credentials, transport and reads the audit log. API tokens are admin.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserView {
  id: number;
  username: string;
  role: Role;
  createdAt: string;
  lastLoginAt: string | null;
}

/** What the browser learns before and after logging in. */
export interface SessionInfo {
  /** No admin exists yet: the UI shows the first-start screen. */
  setupRequired: boolean;
  /** The logged-in user of this browser, or null. */
  user: UserView | null;
  /** Send as the X-Ferry-CSRF header with every state-changing request (and socket.io auth.csrf); null when logged out. */
  csrfToken: string | null;
}

/** One state-changing request, as the audit log keeps it. */
export interface AuditEntry {
  id: number;
  at: string;
  /** `user:NAME`, `token:ID`, `agent:ID`, `login:NAME` (a login attempt), `enroll-token` or `anonymous`. */
  actor: string;
  role: string | null;
  address: string;
  action: string;
  outcome: 'ok' | 'refused' | 'failed';
  status: number;
  code: string | null;
}

export interface ApplianceSettings {
  /** Prefilled in the job form; a job created without a throttle still gets DEFAULT_THROTTLE. */
  defaultThrottle: Throttle;
}

export type AlertLevel = 'error' | 'warning';
export interface DashboardAlert {
  level: AlertLevel;
  kind: 'job-error' | 'job-suspended' | 'restore-failed' | 'storage-low' | 'source-failed';
  message: string;
  jobId: number | null;
  restoreId: number | null;
  /** A passive source the appliance cannot log in to or deploy on (source-failed). */
  sourceId: number | null;
}

export interface DashboardSummary {
  storage: {
    /**
     * Of the filesystem that holds the data directory, as `df` shows it: used is df's Used (blocks − free blocks),
     * free is df's Avail, and total is their sum (df's Size without the blocks reserved for root), so the bar is
     * df's Use%.
     */
    totalBytes: number;
    usedBytes: number;
    freeBytes: number;
    /** Bytes of chunk files written by the cycles of live points. */
    storedBytes: number;
    /** Bytes the live points describe (data blocks × block size): what restoring each would write. */
    logicalBytes: number;
    /** Changed bytes (before compression) that the cycles of live points carried. */
    changedBytes: number;
    /**
     * Bytes, before compression, of the chunks the cycles of live points wrote (chunk count × block size): each is a
     * block's content the store did not hold yet, so this is the unique data behind logicalBytes.
     */
    newChunkBytes: number;
    /** logical / new chunks: what one stored copy per distinct block saves (unchanged blocks between points, blocks shared by sources); null with no data. */
    dedupeRatio: number | null;
    /** new chunks / stored: LZ4 compression of the chunks written (with their file headers); null with no data. */
    compressionRatio: number | null;
  };
  sources: { total: number; online: number };
  jobs: { total: number; running: number; inError: number; suspended: number };
  points: number;
  restores: { active: number };
  alerts: DashboardAlert[];
}

export interface VerifyStatus {
  running: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  progress: { chunksChecked: number; chunksTotal: number; bytesChecked: number } | null;
  /** The last finished run's report. */
  report: {
    ok: boolean;
    chunksChecked: number;
    bytesChecked: number;
    unreferencedChunks: number;
    damagedChunks: { id: string; problem: string; points: string[] }[];
    points: { id: number; name: string; sourceId: number; ok: boolean; problems: string[] }[];
  } | null;
  error: string | null;
}

/** A disk as the agent last reported it: partition table and filesystems (layout) and used bytes. */
export interface SourceDiskView {
  id: number;
  key: string;
  size: number;
  /** The agent's DiskLayout (partition table, filesystems), or null before its first report. */
  layout: unknown;
  usedBytes: number | null;
  updatedAt: string | null;
}

/** What the web UI shows of a source: the summary plus mode, online state and its newest point's disks. */
export interface SourceView extends SourceSummary {
  mode: 'active' | 'passive';
  /** Its agent holds a control connection now. */
  online: boolean;
  disks: SourceDiskView[];
  lastPoint: { id: number; name: string; createdAt: string; disks: PointDisk[] } | null;
}

/**
 * idle: nothing under way; preparing: pausing jobs, verifying, writing the manifest; ready: the box may be
 * powered off (jobs stay refused until the arrival check passes); arriving: the arrival check runs;
 * arrived: it passed (or damage was accepted), jobs may resume; failed: the arrival check found damage.
 */
export type TransportPhase = 'idle' | 'preparing' | 'ready' | 'arriving' | 'arrived' | 'failed';

export interface TransportStatus {
  phase: TransportPhase;
  /** True once the manifest is written: everything is durable and verified, the box can be switched off. */
  powerOffSafe: boolean;
  /** Jobs may resume and cycles run (no transport under way, or the arrival check passed). */
  jobsAllowed: boolean;
  message: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Jobs paused by the preparation (resume them after arrival). */
  pausedJobs: number[];
  rootHash: string | null;
  /** Damage by point found by the last preparation or arrival check. */
  damagedPoints: { id: number; name: string; problems: string[] }[];
  /** What the arrival check found different from the manifest (empty when equal). */
  mismatches: string[];
}
