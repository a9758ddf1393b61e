import { lstat, mkdir, mkdtemp, realpath, rmdir, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveDevice, scanTargets, type BlockDevice, type DeviceTable } from './devices.js';
import { parseFstab } from './fstab.js';
import { inRoot, readIfExists } from './files.js';
import { activateLvm, deactivateLvm } from './lvm.js';
import type { CommandRunner } from './runner.js';

/** The restored system, mounted and ready for chroot; undo with unmountRoot(). */
export interface MountedRoot {
  root: string;
  devices: DeviceTable;
  rootDevice: BlockDevice;
  /** Device mounted on each of the restored system's mount points we mounted (/, /boot, /boot/efi…). */
  mountedFrom: Map<string, BlockDevice>;
  /** Our mounts, in the order made; unmounted in reverse. */
  mounts: string[];
  volumeGroups: string[];
  /** Directories made outside the restored root (in /dev), removed at the end. */
  madeDirs: string[];
  notes: string[];
}

const LINUX_FILESYSTEMS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);
/** Mount points that must be there for the chroot's tools to work and for /boot to be written where it lives. */
const SYSTEM_MOUNTS = ['/usr', '/var', '/boot', '/boot/efi'];

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** A root filesystem: /etc/fstab and an os-release (a symlink into a separate /usr counts). */
async function looksLikeRoot(dir: string): Promise<boolean> {
  return existsSync(path.join(dir, 'etc/fstab')) && ((await exists(path.join(dir, 'etc/os-release'))) || existsSync(path.join(dir, 'usr/lib/os-release')));
}

async function mountAt(m: MountedRoot, run: CommandRunner, args: string[], at: string): Promise<void> {
  await mkdir(at, { recursive: true });
  await run('mount', [...args, at]);
  m.mounts.push(at);
}

/** Tries each Linux filesystem of the restored disks until one is a root; leaves it mounted at dir. */
async function findRoot(table: DeviceTable, dir: string, run: CommandRunner, notes: string[]): Promise<BlockDevice | undefined> {
  for (const dev of table.devices.filter((d) => d.type !== undefined && LINUX_FILESYSTEMS.has(d.type))) {
    try {
      await run('mount', [dev.path, dir]);
    } catch (err) {
      // One damaged or unsupported filesystem must not hide the root on another partition.
      notes.push(`${dev.path} (${dev.type ?? '?'}) does not mount: ${(err as Error).message}`);
      continue;
    }
    if (await looksLikeRoot(dir)) return dev;
    // Ubuntu's btrfs layout keeps the root in subvolume @.
    const subvolRoot = dev.type === 'btrfs' && (await looksLikeRoot(path.join(dir, '@')));
    await run('umount', [dir]);
    if (subvolRoot) {
      await run('mount', ['-o', 'subvol=@', dev.path, dir]);
      return dev;
    }
  }
  return undefined;
}

/**
 * /dev/disk/by-uuid for the restored devices. grub-mkconfig writes root=UUID=… only when that link exists,
 * and the restore ISO has no udev to make it. The links go on a tmpfs over the chroot's /dev/disk, so the
 * machine's own /dev is not changed.
 */
async function diskLinks(m: MountedRoot, run: CommandRunner): Promise<void> {
  const missing = m.devices.devices.filter((d) => d.uuid !== undefined && !existsSync(`/dev/disk/by-uuid/${d.uuid}`));
  if (missing.length === 0) return;
  if (!existsSync('/dev/disk')) {
    // The chroot's /dev is the machine's /dev: the mount point has to exist there.
    await mkdir('/dev/disk');
    m.madeDirs.push('/dev/disk');
  }
  await mountAt(m, run, ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs'], inRoot(m.root, '/dev/disk'));
  for (const kind of ['by-uuid', 'by-partuuid'] as const) await mkdir(inRoot(m.root, `/dev/disk/${kind}`));
  for (const d of m.devices.devices) {
    const real = await realpath(d.path);
    if (d.uuid !== undefined) await symlink(real, inRoot(m.root, `/dev/disk/by-uuid/${d.uuid}`)).catch(() => undefined);
    if (d.partuuid !== undefined) await symlink(real, inRoot(m.root, `/dev/disk/by-partuuid/${d.partuuid}`)).catch(() => undefined);
  }
}

/**
 * Finds the restored root among the targets' partitions and logical volumes, mounts it with its /usr, /var,
 * /boot and /boot/efi from its fstab, and the kernel filesystems a chroot needs. Throws with the reason when
 * there is no root; what was mounted by then is unmounted again.
 */
export async function mountRoot(targets: string[], run: CommandRunner): Promise<MountedRoot> {
  const devices = await scanTargets(targets, run);
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-root-'));
  const m: MountedRoot = { root, devices, rootDevice: devices.devices[0]!, mountedFrom: new Map(), mounts: [], volumeGroups: [], madeDirs: [], notes: [] };
  try {
    m.volumeGroups = await activateLvm(devices, run);
    const found = await findRoot(devices, root, run, m.notes);
    if (!found) {
      const seen = devices.devices.map((d) => `${d.path} (${d.type ?? 'no filesystem'})`).join(', ');
      throw new Error(`no Linux root filesystem (one with /etc/fstab and /etc/os-release) on ${targets.join(', ')}: found ${seen || 'no partitions'}${m.notes.length ? `; ${m.notes.join('; ')}` : ''}`);
    }
    m.mounts.push(root);
    m.rootDevice = found;
    m.mountedFrom.set('/', found);

    const fstab = parseFstab((await readIfExists(inRoot(root, '/etc/fstab'))) ?? '');
    const wanted = fstab.filter((e) => SYSTEM_MOUNTS.includes(e.file)).sort((a, b) => a.file.length - b.file.length);
    for (const e of wanted) {
      const dev = resolveDevice(e.spec, devices);
      if (!dev) {
        if (/(^|,)(noauto|nofail)(,|$)/.test(e.options)) {
          m.notes.push(`${e.file} (${e.spec}) not mounted: not on the restored disks, and optional`);
          continue;
        }
        throw new Error(`the restored fstab mounts ${e.file} from ${e.spec}, which is on none of the restored disks`);
      }
      const subvol = /(?:^|,)(subvol=[^,]+)/.exec(e.options);
      await mountAt(m, run, [...(subvol ? ['-o', subvol[1]!] : []), dev.path], inRoot(root, e.file));
      m.mountedFrom.set(e.file, dev);
    }

    await mountAt(m, run, ['--bind', '/dev'], inRoot(root, '/dev'));
    if (existsSync('/dev/pts')) await mountAt(m, run, ['--bind', '/dev/pts'], inRoot(root, '/dev/pts'));
    await mountAt(m, run, ['-t', 'proc', 'proc'], inRoot(root, '/proc'));
    await mountAt(m, run, ['-t', 'sysfs', 'sysfs'], inRoot(root, '/sys'));
    // A fresh /run rather than the ISO's: package scripts that find /run/systemd/system would think systemd
    // runs the chroot and try to start services in it.
    await mountAt(m, run, ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs'], inRoot(root, '/run'));
    await diskLinks(m, run);
    return m;
  } catch (err) {
    await unmountRoot(m, run).catch(() => undefined);
    throw err;
  }
}

/** Unmounts everything mountRoot mounted, deactivates its volume groups and flushes; returns what it did. */
export async function unmountRoot(m: MountedRoot, run: CommandRunner): Promise<string> {
  const problems: string[] = [];
  for (const at of [...m.mounts].reverse()) {
    try {
      await run('umount', [at]);
    } catch (err) {
      // Busy (a daemon a package script left running): detach it lazily rather than leave it mounted.
      problems.push(`${at}: ${(err as Error).message}`);
      await run('umount', ['-l', at]).catch(() => undefined);
    }
  }
  m.mounts = [];
  for (const d of m.madeDirs.reverse()) await rmdir(d).catch(() => undefined);
  await rmdir(m.root).catch(() => undefined);
  try {
    await deactivateLvm(m.volumeGroups, run);
  } catch (err) {
    problems.push(`LVM: ${(err as Error).message}`);
  }
  await run('sync', []);
  if (problems.length > 0) throw new Error(`unmounted with problems: ${problems.join('; ')}`);
  return `unmounted ${m.root}${m.volumeGroups.length ? `, deactivated ${m.volumeGroups.join(', ')}` : ''}`;
}
