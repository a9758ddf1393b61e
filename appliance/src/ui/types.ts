import { z } from 'zod';
import { ThrottleSchema, type Throttle } from '@ferry/protocol';
import { ROLES, type Role } from '../auth/roles.js';

/**
 * Shapes of the web UI's own routes (users, sessions, dashboard, settings, storage verify). The browser code in
 * web/src/lib/types.ts mirrors them (web imports protocol's types only); docs/api.md and openapi.ts describe them.
 */
export const MIN_PASSWORD_LENGTH = 10;

const Username = z
  .string()
  .min(1, 'give a user name')
  .max(64, 'a user name has at most 64 characters')
  .regex(/^[\p{L}\p{N}._@-]+$/u, 'a user name has letters, digits and . _ @ - only (no spaces)');

export const SetupRequestSchema = z.strictObject({ username: Username, password: z.string().max(1000) });
export type SetupRequest = z.infer<typeof SetupRequestSchema>;
export const LoginRequestSchema = z.strictObject({ username: z.string().max(64), password: z.string().max(1000) });
export type LoginRequest = z.infer<typeof LoginRequestSchema>;
export const CreateUserRequestSchema = z.strictObject({ username: Username, password: z.string().max(1000), role: z.enum(ROLES).default('admin') });
export const SetRoleRequestSchema = z.strictObject({ role: z.enum(ROLES) });
export const SetPasswordRequestSchema = z.strictObject({ password: z.string().max(1000) });
export const SettingsRequestSchema = z.strictObject({ defaultThrottle: ThrottleSchema });

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

export interface ApplianceSettings {
  /** Prefilled in the job form; a job created without a throttle still gets protocol's DEFAULT_THROTTLE. */
  defaultThrottle: Throttle;
}

export type AlertLevel = 'error' | 'warning';
export interface DashboardAlert {
  level: AlertLevel;
  /** job-error, job-suspended, restore-failed, storage-low. */
  kind: 'job-error' | 'job-suspended' | 'restore-failed' | 'storage-low';
  message: string;
  jobId: number | null;
  restoreId: number | null;
}

export interface DashboardSummary {
  storage: {
    /** Of the filesystem that holds the data directory. */
    totalBytes: number;
    usedBytes: number;
    freeBytes: number;
    /** Bytes of chunk files written by the cycles of live points. */
    storedBytes: number;
    /** Bytes the live points describe (data blocks × block size): what restoring each would write. */
    logicalBytes: number;
    /** Changed bytes (before compression) that the cycles of live points carried. */
    changedBytes: number;
    /** logical / changed: what unchanged blocks shared between points save; null with no data. */
    dedupeRatio: number | null;
    /** changed / stored: LZ4 compression (and chunks another source had sent already); null with no data. */
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
