import { FerryError, type ApplianceClient } from '@ferry/protocol';
import { runCycle } from '../backup/cycle.js';
import { listDisks } from '../disk/index.js';
import { withSourceDisks } from '../disk/source.js';
import type { CycleRunner } from './cycle-control.js';

/**
 * The daemon's cycle runner. Disks are opened afresh for each cycle and closed after it: a disk added or
 * resized between cycles is seen, and an idle agent holds no descriptors or buffers.
 */
export function diskCycleRunner(client: ApplianceClient, diskPaths: readonly string[] | undefined, source: AgentSourceSettings = {}): CycleRunner {
  return async ({ throttle, signal, onProgress, exclusions, hooks, log }) => {
    const paths = diskPaths ?? (await listDisks()).map((d) => d.path);
    if (paths.length === 0) throw new FerryError('DISK_UNREADABLE', 'no disks found on this machine; name them with --disk in the service\'s ExecStart');
    const exclude = [...(source.exclude ?? []), ...(exclusions ?? [])];
    // Hooks run for the final cycle only, which the appliance marks by sending `hooks`; its commands win.
    const cycleHooks = hooks ? { pre: hooks.pre ?? source.preHook, post: hooks.post ?? source.postHook } : undefined;
    return withSourceDisks(paths, { exclude, hooks: cycleHooks, log }, (disks) => runCycle({ client, disks, throttle, signal, onProgress }));
  };
}

/** The agent's own (command line) source settings, added to each job's. */
export interface AgentSourceSettings {
  exclude?: string[] | undefined;
  preHook?: string | undefined;
  postHook?: string | undefined;
}
