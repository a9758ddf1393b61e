import { isUnstableDeviceName, resolveDevice, uuidSpec, type DeviceTable } from './devices.js';
import { inRoot, readIfExists, writeWithBackup } from './files.js';
import { failed, ok, skipped, type CompatContext, type StepResult } from './types.js';

/** What to do with one device reference: replace it, report it as unresolvable, or leave it (undefined). */
export type Renamer = (spec: string) => { to: string } | { unresolved: true } | undefined;

/** Device names that depend on the old controller become UUID=…; everything else stays as it is. */
export function stableRenamer(table: DeviceTable): Renamer {
  return (spec) => {
    if (!isUnstableDeviceName(spec)) return undefined;
    const dev = resolveDevice(spec, table);
    const to = dev && uuidSpec(dev);
    return to !== undefined ? { to } : { unresolved: true };
  };
}

export interface Rewrite {
  text: string;
  /** "old -> new" for each changed reference. */
  changes: string[];
  /** Unstable names that could not be mapped to a restored device. */
  unresolved: string[];
  /** The same, on lines marked noauto or nofail: the system boots without them. */
  optional: string[];
}

export interface FstabEntry {
  spec: string;
  file: string;
  vfstype: string;
  options: string;
}

/** fstab entries (comments and blank lines dropped); fields are whitespace separated, as in fstab(5). */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === undefined || f[0] === '' || f[0].startsWith('#') || f.length < 3) continue;
    out.push({ spec: f[0], file: f[1]!, vfstype: f[2]!, options: f[3] ?? 'defaults' });
  }
  return out;
}

/**
 * Rewrites the device field (column 0 in fstab, 1 in crypttab) of every non-comment line, keeping the
 * line's other text and spacing as they were.
 */
export function rewriteDeviceColumn(text: string, column: number, rename: Renamer): Rewrite {
  const changes: string[] = [];
  const unresolved: string[] = [];
  const optional: string[] = [];
  const lines = text.split('\n').map((line) => {
    if (/^\s*(#|$)/.test(line)) return line;
    const tokens = line.split(/(\s+)/);
    // Both fstab and crypttab keep their options in the fourth field.
    const options = line.trim().split(/\s+/)[3] ?? '';
    let field = -1;
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] === '' || /^\s+$/.test(tokens[i]!)) continue;
      if (++field !== column) continue;
      const r = rename(tokens[i]!);
      if (r === undefined) break;
      if ('unresolved' in r) (/(^|,)(noauto|nofail)(,|$)/.test(options) ? optional : unresolved).push(tokens[i]!);
      else {
        changes.push(`${tokens[i]!} -> ${r.to}`);
        tokens[i] = r.to;
      }
      break;
    }
    return tokens.join('');
  });
  return { text: lines.join('\n'), changes, unresolved, optional };
}

async function rewriteTable(ctx: CompatContext, rel: string, column: number): Promise<StepResult> {
  const file = inRoot(ctx.root, rel);
  const text = await readIfExists(file);
  if (text === undefined) return skipped(`no ${rel}`);
  const r = rewriteDeviceColumn(text, column, stableRenamer(ctx.devices));
  if (r.changes.length > 0) await writeWithBackup(file, r.text);
  const changed = r.changes.length > 0 ? `${r.changes.join(', ')} (original kept as ${rel}.ferry-backup)` : '';
  const left = r.optional.length > 0 ? `; left ${r.optional.join(', ')} (noauto/nofail, not on the restored disks)` : '';
  // A name that stays would make the restored system wait for a device that never appears.
  if (r.unresolved.length > 0) return failed(`${rel}: no restored partition for ${r.unresolved.join(', ')}${changed ? `; rewrote ${changed}` : ''}${left}`);
  if (r.changes.length === 0) return skipped(`${rel} names no device by a controller-dependent name${left}`);
  return ok(`${changed}${left}`);
}

export const rewriteFstab = (ctx: CompatContext) => rewriteTable(ctx, '/etc/fstab', 0);
export const rewriteCrypttab = (ctx: CompatContext) => rewriteTable(ctx, '/etc/crypttab', 1);
