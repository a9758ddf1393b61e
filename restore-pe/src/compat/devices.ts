import { readdir, readFile, realpath } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { CommandRunner } from './runner.js';

/** A partition (or whole disk, or LVM logical volume) of the restored disks, as blkid sees it now. */
export interface BlockDevice {
  path: string;
  /** Other names of the same device (LVM: /dev/mapper/vg-lv for /dev/vg/lv). */
  aliases: string[];
  /** Index in CompatOptions.targets; -1 for a logical volume. */
  disk: number;
  /** Partition number; 0 for a whole disk or a logical volume. */
  partition: number;
  uuid?: string;
  partuuid?: string;
  label?: string;
  /** Filesystem or content type: ext4, xfs, swap, LVM2_member, vfat… */
  type?: string;
}

export interface DeviceTable {
  targets: string[];
  devices: BlockDevice[];
}

/** `blkid -p -o export` output: KEY=value lines. */
export function parseBlkidExport(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return out;
}

/** 'a' → 0, 'z' → 25, 'aa' → 26: the kernel's disk letters. */
function letterIndex(letters: string): number {
  let n = 0;
  for (const c of letters) n = n * 26 + (c.charCodeAt(0) - 96);
  return n - 1;
}

/**
 * The disk index and partition number a device name had on the source server: /dev/sda1 is disk 0
 * partition 1, /dev/hdb disk 1 (whole), /dev/nvme1n1p2 disk 1 partition 2. Disks are restored one to one in
 * source order, so that is where the same data is now. Undefined for names that are not such device names.
 */
export function parseOldDeviceName(spec: string): { disk: number; partition: number } | undefined {
  const classic = /^\/dev\/(?:sd|hd|vd|xvd)([a-z]{1,2})(\d*)$/.exec(spec);
  if (classic) return { disk: letterIndex(classic[1]!), partition: classic[2] ? Number(classic[2]) : 0 };
  const nvme = /^\/dev\/nvme(\d+)n1(?:p(\d+))?$/.exec(spec);
  if (nvme) return { disk: Number(nvme[1]), partition: nvme[2] ? Number(nvme[2]) : 0 };
  return undefined;
}

/** Whether spec names a device by a name that depends on the controller or bus, so may not exist on the new VM. */
export function isUnstableDeviceName(spec: string): boolean {
  return parseOldDeviceName(spec) !== undefined || /^\/dev\/disk\/by-(?:id|path)\//.test(spec);
}

/**
 * Finds the device an fstab/crypttab/kernel-command-line reference means, among the restored disks only
 * (never one of the machine's other disks). Undefined when it is not there.
 */
export function resolveDevice(spec: string, table: DeviceTable): BlockDevice | undefined {
  const tag = /^(UUID|PARTUUID|LABEL)=["']?([^"']+)["']?$/i.exec(spec) ?? /^\/dev\/disk\/by-(uuid|partuuid|label)\/(.+)$/.exec(spec);
  if (tag) {
    const [kind, value] = [tag[1]!.toLowerCase(), tag[2]!];
    // UUIDs are case-insensitive (FAT serials are upper case in blkid, sometimes lower case in fstab).
    const same = (a: string | undefined) => a !== undefined && a.toLowerCase() === value.toLowerCase();
    return table.devices.find((d) => (kind === 'uuid' ? same(d.uuid) : kind === 'partuuid' ? same(d.partuuid) : d.label === value));
  }
  const old = parseOldDeviceName(spec);
  if (old) return table.devices.find((d) => d.disk === old.disk && d.partition === old.partition);
  // by-id/by-path names carry the old controller's serial or bus address; only the partition number is
  // still meaningful, and only when there is a single disk it can be on.
  const byId = /^\/dev\/disk\/by-(?:id|path)\/.+-part(\d+)$/.exec(spec);
  if (byId && table.targets.length === 1) return table.devices.find((d) => d.disk === 0 && d.partition === Number(byId[1]));
  return table.devices.find((d) => d.path === spec || d.aliases.includes(spec));
}

/** The fstab form of a device: UUID= where it has one. */
export function uuidSpec(dev: BlockDevice): string | undefined {
  return dev.uuid !== undefined ? `UUID=${dev.uuid}` : undefined;
}

/** Partitions of a disk from sysfs: name and number. The restore ISO has no udev, sysfs is the truth. */
async function partitionsOf(disk: string): Promise<{ name: string; number: number }[]> {
  const name = path.basename(await realpath(disk));
  const out: { name: string; number: number }[] = [];
  for (const e of await readdir(`/sys/block/${name}`).catch(() => [] as string[])) {
    const num = await readFile(`/sys/block/${name}/${e}/partition`, 'utf8').catch(() => undefined);
    if (num !== undefined) out.push({ name: e, number: Number(num.trim()) });
  }
  return out.sort((a, b) => a.number - b.number);
}

/** What blkid finds on one device; an empty object when it finds nothing (exit code 2). */
export async function probe(dev: string, run: CommandRunner): Promise<Record<string, string>> {
  const r = await run('blkid', ['-p', '-o', 'export', dev], { okCodes: [2] });
  return r.code === 0 ? parseBlkidExport(r.stdout) : {};
}

export function fromBlkid(p: string, info: Record<string, string>, disk: number, partition: number, aliases: string[] = []): BlockDevice {
  return {
    path: p,
    aliases,
    disk,
    partition,
    ...(info.UUID !== undefined ? { uuid: info.UUID } : {}),
    ...(info.PART_ENTRY_UUID !== undefined ? { partuuid: info.PART_ENTRY_UUID } : {}),
    ...(info.LABEL !== undefined ? { label: info.LABEL } : {}),
    ...(info.TYPE !== undefined ? { type: info.TYPE } : {}),
  };
}

/** Every partition of the targets (and a target itself when it holds a filesystem without a partition table). */
export async function scanTargets(targets: string[], run: CommandRunner): Promise<DeviceTable> {
  const devices: BlockDevice[] = [];
  for (const [i, target] of targets.entries()) {
    const parts = await partitionsOf(target);
    if (parts.length === 0) {
      devices.push(fromBlkid(target, await probe(target, run), i, 0));
      continue;
    }
    for (const p of parts) {
      const dev = `/dev/${p.name}`;
      if (!existsSync(dev)) throw new Error(`${dev} (partition ${p.number} of ${target}) is in sysfs but has no device node`);
      devices.push(fromBlkid(dev, await probe(dev, run), i, p.number));
    }
  }
  return { targets, devices };
}
