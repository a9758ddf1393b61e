import { FerryError, type ApplianceClient } from '@ferry/protocol';
import { runCycle } from '../backup/cycle.js';
import { listDisks } from '../disk/index.js';
import { closeSourceDisks, openSourceDisks } from '../disk/source.js';
import type { CycleRunner } from './cycle-control.js';

/**
 * The daemon's cycle runner. Disks are opened afresh for each cycle and closed after it: a disk added or
 * resized between cycles is seen, and an idle agent holds no descriptors or buffers.
 */
export function diskCycleRunner(client: ApplianceClient, diskPaths: readonly string[] | undefined): CycleRunner {
  return async ({ throttle, signal, onProgress }) => {
    const paths = diskPaths ?? (await listDisks()).map((d) => d.path);
    if (paths.length === 0) throw new FerryError('DISK_UNREADABLE', 'no disks found on this machine; name them with --disk in the service\'s ExecStart');
    const disks = await openSourceDisks(paths);
    try {
      return await runCycle({ client, disks, throttle, signal, onProgress });
    } finally {
      await closeSourceDisks(disks);
    }
  };
}
