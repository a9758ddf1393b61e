import { realpath } from 'node:fs/promises';
import { fromBlkid, probe, type DeviceTable } from './devices.js';
import { isNotFound, type CommandRunner } from './runner.js';

const fields = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((l) => l.split('|').map((f) => f.trim()));

/**
 * Activates the volume groups whose physical volumes are on the restored disks, adds their logical volumes
 * to the table and returns the groups' names (to deactivate at the end). Volume groups on the machine's
 * other disks are left alone. No LVM tools: nothing to do.
 */
export async function activateLvm(table: DeviceTable, run: CommandRunner): Promise<string[]> {
  if (!table.devices.some((d) => d.type === 'LVM2_member')) return [];
  // Nothing may have loaded device-mapper yet (the restore ISO's udev activates no LVM on its own). A
  // kernel with it built in has no module to load: the activation below says so if it is truly missing.
  await run('modprobe', ['dm_mod']).catch(() => undefined);
  try {
    await run('vgscan', ['--mknodes']);
  } catch (err) {
    if (isNotFound(err)) throw new Error('the restored disks hold LVM volumes but the lvm2 tools are missing');
    throw err;
  }
  const ours = new Set(await Promise.all(table.devices.map((d) => realpath(d.path))));
  const pvs = fields((await run('pvs', ['--noheadings', '--separator', '|', '-o', 'pv_name,vg_name'])).stdout);
  const groups: string[] = [];
  for (const [pv, vg] of pvs) {
    if (pv === undefined || vg === undefined || vg === '' || groups.includes(vg)) continue;
    if (ours.has(await realpath(pv).catch(() => pv))) groups.push(vg);
  }
  if (groups.length === 0) return [];
  await run('vgchange', ['-ay', ...groups]);
  // Without udev nobody makes /dev/VG/LV: vgmknodes does.
  await run('vgmknodes', groups);
  const lvs = fields((await run('lvs', ['--noheadings', '--separator', '|', '-o', 'lv_path,lv_dm_path,vg_name', ...groups])).stdout);
  for (const [lvPath, dmPath] of lvs) {
    if (lvPath === undefined || lvPath === '') continue;
    table.devices.push(fromBlkid(lvPath, await probe(lvPath, run), -1, 0, dmPath ? [dmPath] : []));
  }
  return groups;
}

export async function deactivateLvm(groups: string[], run: CommandRunner): Promise<void> {
  if (groups.length > 0) await run('vgchange', ['-an', ...groups]);
}
