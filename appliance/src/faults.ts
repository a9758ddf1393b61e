import { FerryError } from '@ferry/protocol';

/**
 * Faults the appliance meets, for the fault suite (test/faults, docs/reliability.md).
 *
 * Injected crashes: with `FERRY_FAULT=<point>:<n>` in the environment, the process kills itself with SIGKILL
 * the n-th time it reaches that point, as a power cut or `kill -9` would stop it there. Unset (production),
 * faultPoint() is a single comparison. The points, in the order one upload batch reaches them:
 * - `chunk-written`: a chunk's bytes are written to its temporary file (not fsynced, not visible);
 * - `chunk-fsynced`: the batch's temporary chunk files are fsynced, not yet renamed;
 * - `chunk-renamed`: one chunk file is renamed into place (its directory not yet fsynced);
 * - `index-written`: a run of index entries is written and fsynced (positions not yet committed);
 * - `before-ack`: the batch's positions are committed in SQLite, the reply not yet sent;
 * - `index-sealed`: at cycle commit, a disk's index is sealed and fsynced, the point not yet committed;
 * - `catalog-committed`: a point is committed in SQLite (at cycle commit), the reply not yet sent.
 */
export const FAULT_POINTS = ['chunk-written', 'chunk-fsynced', 'chunk-renamed', 'index-written', 'before-ack', 'index-sealed', 'catalog-committed'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

const armed = parseFault(process.env.FERRY_FAULT);
let reached = 0;

function parseFault(spec: string | undefined): { point: FaultPoint; n: number } | null {
  if (!spec) return null;
  const m = /^([a-z-]+):([1-9][0-9]*)$/.exec(spec);
  const point = m?.[1] as FaultPoint | undefined;
  if (!m || !point || !FAULT_POINTS.includes(point)) {
    throw new Error(`FERRY_FAULT="${spec}" is not <point>:<n> with a point among ${FAULT_POINTS.join(', ')}`);
  }
  return { point, n: Number(m[2]) };
}

/** Marks a named point; kills the process there when FERRY_FAULT arms it (see above). */
export function faultPoint(point: FaultPoint): void {
  if (armed === null || armed.point !== point) return;
  if (++reached === armed.n) {
    process.stderr.write(`FERRY_FAULT: killing the appliance at ${point} (${reached})\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/**
 * A full disk under the data directory (ENOSPC from the file system, SQLITE_FULL from the catalog) as
 * APPLIANCE_DISK_FULL; any other error unchanged. Whatever was not acknowledged is discarded by the caller.
 */
export function diskFullOr(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT') {
    return new FerryError('APPLIANCE_DISK_FULL', `the appliance's data directory is full (${String(code)}); this batch was not stored, acknowledged blocks are kept`, { cause: err });
  }
  return err;
}
