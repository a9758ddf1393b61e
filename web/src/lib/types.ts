/**
 * Shapes the UI reads, from @ferry/protocol (types only: nothing of it is bundled), and the few the UI makes
 * for itself.
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
  Role,
  UserView,
  SessionInfo,
  AuditEntry,
  ApplianceSettings,
  DashboardAlert,
  DashboardSummary,
  VerifyStatus,
  SourceDiskView,
  SourceView,
  TransportPhase,
  TransportStatus,
} from '@ferry/protocol';
import type { Role } from '@ferry/protocol';

/** The roles in the order the user forms list them, strongest first (protocol's ROLES is a value: not bundled). */
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];

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

export interface ApplianceInfo {
  fingerprint: string;
  version: string;
}

export interface RestoreCode {
  restore: import('@ferry/protocol').RestoreView;
  code: string;
}
