/** Magic numbers of Ferry's binary formats. Never change one once shipped: bump the version field instead. */
export const CHUNK_MAGIC = Buffer.from('FRYC', 'ascii');
export const INDEX_MAGIC = Buffer.from('FRYI', 'ascii');
export const STREAM_MAGIC = Buffer.from('FRYS', 'ascii');

/**
 * 1 MiB blocks: measured on a real change set, they send half the bytes of 4 MiB blocks at the same
 * full-backup speed. The block size is recorded in every index, so it can change without breaking old points.
 */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
export const MIN_BLOCK_SIZE = 64 * 1024;
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024;

export const CHUNK_ID_BYTES = 32;
export const CHUNK_ID_PATTERN = /^[0-9a-f]{64}$/;

export const API_PREFIX = '/api/v1';
export const DEFAULT_PORT = 8443;
