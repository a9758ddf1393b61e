import { z } from 'zod';
import { CHUNK_ID_PATTERN, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from './constants.js';

/** REST request and response shapes shared by the appliance (validation) and its clients (types). */
export const ChunkIdSchema = z.string().regex(CHUNK_ID_PATTERN, 'a chunk id is 64 lowercase hex characters');

export const EnrollRequestSchema = z.strictObject({
  token: z.string().min(1).max(200),
  hostname: z.string().min(1).max(253),
  os: z.string().max(200).optional(),
});
export type EnrollRequest = z.infer<typeof EnrollRequestSchema>;
export interface EnrollResponse {
  agentId: number;
  sourceId: number;
  credential: string;
}

const PartitionSchema = z.looseObject({
  number: z.number().int().nonnegative(),
  startByte: z.number().int().nonnegative(),
  sizeBytes: z.number().int().nonnegative(),
});
export const DiskInfoSchema = z.strictObject({
  /** Stable key of the disk on its source (device path or image path). */
  key: z
    .string()
    .min(1)
    .max(4096)
    // A label, never used as a path on the appliance; still refused when it looks like an attempt to climb out of one.
    .refine((k) => ![...k].some((c) => c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127) && !k.split('/').includes('..'), 'a disk key has no control characters and no ".." segment (give the absolute device or image path)'),
  size: z.number().int().positive(),
  /** Partition table and filesystems as discovered by the agent; stored as given, shown to users. */
  layout: z.looseObject({ table: z.looseObject({ type: z.string(), partitions: z.array(PartitionSchema).max(256) }) }).optional(),
  usedBytes: z.number().int().nonnegative().optional(),
});
export type DiskInfo = z.infer<typeof DiskInfoSchema>;

export const StartCycleRequestSchema = z.strictObject({
  disks: z.array(DiskInfoSchema).min(1).max(64),
  blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE).multipleOf(4096).optional(),
});
export type StartCycleRequest = z.infer<typeof StartCycleRequestSchema>;

export interface CycleDiskState {
  slot: number;
  diskId: number;
  key: string;
  size: number;
  blockSize: number;
  blockCount: number;
  /** First block not yet acknowledged: a resumed cycle continues here. */
  nextBlock: number;
  /** The previous point's index for this disk, to compare against; null makes this disk a full copy. */
  previousPointId: number | null;
}

export interface CycleState {
  id: number;
  sourceId: number;
  state: 'running' | 'committed' | 'abandoned' | 'deleted';
  resumed: boolean;
  disks: CycleDiskState[];
}

export const MissingChunksRequestSchema = z.strictObject({ ids: z.array(z.string()).max(4096) });
export interface MissingChunksResponse {
  missing: string[];
}

export interface UploadResponse {
  chunksStored: number;
  chunksDeduplicated: number;
  bytesStored: number;
  disks: { slot: number; nextBlock: number }[];
}

export interface PointDisk {
  diskId: number;
  key: string;
  size: number;
  blockSize: number;
  blockCount: number;
  layout: unknown;
  dataBlocks: number;
  zeroBlocks: number;
  unusedBlocks: number;
}

export interface PointStats {
  bytesRead: number;
  bytesCompared: number;
  bytesChanged: number;
  bytesSent: number;
  bytesStored: number;
  seconds: number;
}

export interface Point {
  id: number;
  name: string;
  sourceId: number;
  sourceName: string;
  createdAt: string;
  disks: PointDisk[];
  stats: PointStats;
}

export const CommitCycleRequestSchema = z.strictObject({
  stats: z.strictObject({
    bytesRead: z.number().nonnegative(),
    bytesCompared: z.number().nonnegative(),
    bytesChanged: z.number().nonnegative(),
    bytesSent: z.number().nonnegative(),
    seconds: z.number().nonnegative(),
  }),
});
export type CommitCycleRequest = z.infer<typeof CommitCycleRequestSchema>;

export interface SourceSummary {
  id: number;
  name: string;
  hostname: string;
  os: string | null;
  lastSeen: string | null;
  disks: { id: number; key: string; size: number }[];
}

export const CreateRestoreRequestSchema = z.strictObject({ pointId: z.number().int().positive() });
export type CreateRestoreRequest = z.infer<typeof CreateRestoreRequestSchema>;

export const RESTORE_PHASES = ['waiting', 'connected', 'writing', 'verifying', 'compatibility', 'done', 'failed'] as const;
export type RestorePhase = (typeof RESTORE_PHASES)[number];

export interface RestoreStep {
  name: string;
  status: 'ok' | 'skipped' | 'failed';
  detail: string;
}

export interface RestoreProgress {
  /** Bytes of data blocks written (and read back, when verifying) / to write, over all disks. */
  bytesDone: number;
  bytesTotal: number;
  disk: string | null;
  message: string | null;
}

export interface RestoreView {
  id: number;
  pointId: number;
  pointName: string;
  sourceName: string;
  state: 'active' | 'finished' | 'cancelled';
  phase: RestorePhase;
  targetDisks: number | null;
  codeExpiresAt: string | null;
  progress: RestoreProgress | null;
  /** Per source disk slot: the first block not yet written and verified (a resumed restore starts there). */
  verified: { slot: number; nextBlock: number }[];
  steps: RestoreStep[];
  error: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string | null;
  finishedAt: string | null;
}

export const CreateRestoreCodeRequestSchema = z.strictObject({
  pointId: z.number().int().positive(),
  targetDisks: z.number().int().min(1).max(64).optional(),
  ttlHours: z.number().min(0.1).max(24 * 14).optional(),
});
export type CreateRestoreCodeRequest = z.infer<typeof CreateRestoreCodeRequestSchema>;

/** A restore code: 16 Crockford base32 characters in groups of four, easy to type on a VM console. */
export const RESTORE_CODE_PATTERN = /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/;

/** Normalises what an engineer typed: case, spaces, dashes, and the letters Crockford base32 reads as digits. */
export function normalizeRestoreCode(input: string): string {
  const raw = input.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  return raw.length === 16 ? (raw.match(/.{4}/g) ?? []).join('-') : raw;
}

export const OpenRestoreSessionRequestSchema = z.strictObject({ code: z.string().min(1).max(64) });
export interface RestoreSession {
  restoreId: number;
  /** Credential for this restore only: read its point, report progress. */
  token: string;
  point: Point;
  targetDisks: number | null;
  verified: { slot: number; nextBlock: number }[];
}

export const RestoreReportSchema = z.strictObject({
  phase: z.enum(RESTORE_PHASES),
  progress: z
    .strictObject({ bytesDone: z.number().nonnegative(), bytesTotal: z.number().nonnegative(), disk: z.string().max(4096).nullable(), message: z.string().max(1000).nullable() })
    .optional(),
  verified: z.array(z.strictObject({ slot: z.number().int().nonnegative().max(63), nextBlock: z.number().int().nonnegative() })).max(64).optional(),
  step: z.strictObject({ name: z.string().max(200), status: z.enum(['ok', 'skipped', 'failed']), detail: z.string().max(4000) }).optional(),
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(4000) }).optional(),
});
export type RestoreReport = z.infer<typeof RestoreReportSchema>;

export interface GcReport {
  chunksBefore: number;
  chunksReferenced: number;
  chunksDeleted: number;
  bytesFreed: number;
  chunksProtected: number;
  indexDirsRemoved: number;
  tempFilesRemoved: number;
  seconds: number;
}
