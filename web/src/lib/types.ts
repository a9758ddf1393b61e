/**
 * Shapes the UI reads. Protocol's types come from @ferry/protocol (types only: nothing of it is bundled). The
 * web UI's own routes are described in appliance/src/ui/types.ts and appliance/src/sources/view.ts; the
 * appliance cannot be imported here, so those shapes are repeated below (docs/api.md describes them too).
 */
export type {
  JobView,
  JobProgress,
  JobLogEntry,
  JobTransition,
  JobPoint,
  JobAction,
  JobActionResult,
  JobState,
  Throttle,
  RestoreView,
  RestorePhase,
  Point,
  PointDisk,
  GcReport,
  ServerToUiEvents,
  UiToServerEvents,
  Reply,
  AgentInstall,
  HostKey,
  PassiveSourceView,
  PassiveState,
  AddPassiveSourceResponse,
} from '@ferry/protocol';
import type { PointDisk, SourceSummary, Throttle } from '@ferry/protocol';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

export interface UserView {
  id: number;
  username: string;
  role: Role;
  createdAt: string;
  lastLoginAt: string | null;
}

export interface SessionInfo {
  setupRequired: boolean;
  user: UserView | null;
  csrfToken: string | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  role: Role | null;
  address: string;
  action: string;
  outcome: 'ok' | 'refused' | 'failed';
  status: number;
  code: string | null;
}

export interface ApplianceSettings {
  defaultThrottle: Throttle;
}

export interface DashboardAlert {
  level: 'error' | 'warning';
  kind: 'job-error' | 'job-suspended' | 'restore-failed' | 'storage-low';
  message: string;
  jobId: number | null;
  restoreId: number | null;
}

export interface DashboardSummary {
  storage: {
    totalBytes: number;
    usedBytes: number;
    freeBytes: number;
    storedBytes: number;
    logicalBytes: number;
    changedBytes: number;
    dedupeRatio: number | null;
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

export interface Partition {
  number: number;
  startByte: number;
  sizeBytes: number;
  type?: string;
  filesystem?: { type?: string; label?: string; usedBytes?: number } | null;
  [key: string]: unknown;
}

export interface DiskLayout {
  table: { type: string; partitions: Partition[] };
  [key: string]: unknown;
}

export interface SourceDiskView {
  id: number;
  key: string;
  size: number;
  layout: unknown;
  usedBytes: number | null;
  updatedAt: string | null;
}

export interface SourceView extends SourceSummary {
  mode: 'active' | 'passive';
  online: boolean;
  disks: SourceDiskView[];
  lastPoint: { id: number; name: string; createdAt: string; disks: PointDisk[] } | null;
}

export interface ApplianceInfo {
  fingerprint: string;
  version: string;
}

export interface RestoreCode {
  restore: import('@ferry/protocol').RestoreView;
  code: string;
}

/** GET /transport (appliance/src/transport/service.ts TransportStatus; docs/api.md "Transport"). */
export type TransportPhase = 'idle' | 'preparing' | 'ready' | 'arriving' | 'arrived' | 'failed';
export interface TransportStatus {
  phase: TransportPhase;
  powerOffSafe: boolean;
  jobsAllowed: boolean;
  message: string;
  startedAt: string | null;
  finishedAt: string | null;
  pausedJobs: number[];
  rootHash: string | null;
  damagedPoints: { id: number; name: string; problems: string[] }[];
  mismatches: string[];
}
