import type { CommandRunner } from './runner.js';
import type { DeviceTable } from './devices.js';

export interface CompatStep {
  name: string;
  status: 'ok' | 'skipped' | 'failed';
  detail: string;
}

export interface CompatOptions {
  /** Block devices of the restored disks, in source disk order (e.g. /dev/vda): old /dev/sda is the first. */
  targets: string[];
  firmware: 'bios' | 'uefi';
  /** Guest-agent packages per distribution: DIR/<ID>-<VERSION_ID>/*.deb|*.rpm, or that folder itself. */
  packagesDir: string;
  report(step: CompatStep): void;
  run?: CommandRunner;
  /**
   * Ethernet NICs the restored system will see. Defaults to the physical ethernet NICs of the machine this
   * runs on: the restore ISO boots on the new VM, so it sees the same NICs.
   */
  nics?: string[];
}

/** What every step after the root is mounted gets. */
export interface CompatContext {
  /** Mount point of the restored root, with /boot etc. and /dev, /proc, /sys, /run mounted for chroot. */
  root: string;
  run: CommandRunner;
  devices: DeviceTable;
  options: CompatOptions;
}

/** A step's outcome without its name; index.ts names it. */
export type StepResult = Omit<CompatStep, 'name'>;

export const ok = (detail: string): StepResult => ({ status: 'ok', detail });
export const skipped = (detail: string): StepResult => ({ status: 'skipped', detail });
export const failed = (detail: string): StepResult => ({ status: 'failed', detail });
