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
  key: z.string().min(1).max(4096),
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

export interface RestoreView {
  id: number;
  pointId: number;
  state: 'active' | 'finished' | 'cancelled';
  createdAt: string;
  finishedAt: string | null;
}

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
