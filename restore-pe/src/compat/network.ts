import { chmod, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { BACKUP_SUFFIX, backupOnce, inRoot } from './files.js';
import { ok, skipped, type CompatContext, type StepResult } from './types.js';

/**
 * Physical ethernet NICs of the machine this runs on (the restore ISO on the new VM: the restored system
 * will see the same ones): entries of /sys/class/net with a device behind them and ARP type 1 (ethernet).
 */
export async function presentNics(): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/class/net').catch(() => [] as string[])) {
    const type = await readFile(`/sys/class/net/${name}/type`, 'utf8').catch(() => '');
    if (type.trim() === '1' && existsSync(`/sys/class/net/${name}/device`) && !existsSync(`/sys/class/net/${name}/wireless`)) out.push(name);
  }
  return out.sort();
}

/** The name udev's net_id gives a NIC under systemd's default NamePolicy (onboard, then slot, then path). */
export function predictableName(netId: Record<string, string>): string | undefined {
  return netId.ID_NET_NAME_ONBOARD ?? netId.ID_NET_NAME_SLOT ?? netId.ID_NET_NAME_PATH;
}

/** Whether the restored system keeps kernel names (eth0): net.ifnames=0, or the naming policy masked. */
async function keepsKernelNames(root: string): Promise<boolean> {
  const grub = (await readFile(inRoot(root, '/etc/default/grub'), 'utf8').catch(() => '')).split('\n').filter((l) => /^\s*GRUB_CMDLINE_LINUX/.test(l));
  if (grub.some((l) => /(^|[\s"'])net\.ifnames=0/.test(l))) return true;
  for (const p of ['/etc/systemd/network/99-default.link', '/etc/udev/rules.d/80-net-setup-link.rules']) {
    if ((await readlink(inRoot(root, p)).catch(() => '')) === '/dev/null') return true;
  }
  return false;
}

/**
 * The names the restored system will give this machine's NICs. The restore ISO runs without udev, so it
 * sees kernel names (eth0); the restored system's udev renames them (ens3). Its own udevadm computes the
 * name from this machine's sysfs, which the chroot has.
 */
export async function restoredNicNames(ctx: CompatContext, kernelNames: string[]): Promise<{ names: string[]; renamed: string[] }> {
  if (!kernelNames.some((n) => /^eth\d+$/.test(n)) || (await keepsKernelNames(ctx.root))) return { names: kernelNames, renamed: [] };
  const names: string[] = [];
  const renamed: string[] = [];
  for (const n of kernelNames) {
    const r = /^eth\d+$/.test(n) ? await ctx.run('udevadm', ['test-builtin', 'net_id', `/sys/class/net/${n}`], { chroot: ctx.root }).catch(() => undefined) : undefined;
    const name = (r && predictableName(parseKeyValues(`${r.stdout}\n${r.stderr}`))) ?? n;
    if (name !== n) renamed.push(`${n} -> ${name}`);
    names.push(name);
  }
  return { names, renamed };
}

function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^([A-Z_]+)=(.*)$/gm)) out[m[1]!] = m[2]!.trim();
  return out;
}

/** eth0, ens3, enp0s3, eno1, em1, p2p1: names the kernel or udev give ethernet NICs (not lo, br0, bond0, wg0). */
export function isEthernetName(name: string): boolean {
  return /^(eth\d+|en[a-z][a-z0-9]*|em\d+|p\d+p\d+)$/.test(name);
}

/** The NIC an interface name refers to: ens3 for ens3:1 (alias) and ens3.100 (VLAN). */
const nicOf = (name: string) => name.split(/[:.]/)[0]!;

const STANZA = /^(iface|mapping|auto|allow-[\w-]+|source|source-directory|no-auto-down|no-scripts|rename|template)(\s|$)/;

export interface InterfacesRewrite {
  text: string;
  /** Interfaces whose configuration was dropped: their NIC is not on this machine. */
  removed: string[];
  /** Interfaces still configured after the rewrite (lo included). */
  configured: string[];
}

/**
 * ifupdown's interfaces(5) without the stanzas of NICs that are not present (an `auto ens3` for a missing
 * ens3 fails networking.service at every boot); their names also leave the auto/allow-* lines.
 */
export function dropMissingInterfaces(text: string, nics: string[]): InterfacesRewrite {
  const stale = (name: string) => isEthernetName(nicOf(name)) && !nics.includes(nicOf(name));
  const removed = new Set<string>();
  const configured = new Set<string>();
  const out: string[] = [];
  let dropping = false;
  for (const line of text.split('\n')) {
    const t = line.trim();
    const kw = STANZA.exec(t)?.[1];
    if (kw !== undefined) {
      dropping = false;
      const names = t.split(/\s+/).slice(1);
      if (kw === 'iface' || kw === 'mapping') {
        if (names[0] !== undefined && stale(names[0])) {
          removed.add(names[0]);
          dropping = true;
          continue;
        }
        if (kw === 'iface' && names[0] !== undefined) configured.add(names[0]);
      } else if (kw === 'auto' || kw.startsWith('allow-')) {
        const kept = names.filter((n) => !stale(n));
        names.filter(stale).forEach((n) => removed.add(n));
        if (kept.length === 0) continue;
        if (kept.length !== names.length) {
          out.push(`${line.slice(0, line.indexOf(t))}${kw} ${kept.join(' ')}`);
          continue;
        }
      }
      out.push(line);
    } else {
      // Option lines of a dropped stanza go with it, and so do its indented comments; a comment at the left
      // margin may already head the next stanza.
      const partOfDropped = dropping && t !== '' && (!t.startsWith('#') || /^\s/.test(line));
      if (!partOfDropped) out.push(line);
    }
  }
  return { text: out.join('\n'), removed: [...removed], configured: [...configured] };
}

/** The ifupdown stanzas that bring each NIC up with DHCP when it appears. */
export function dhcpStanzas(nics: string[], replaced: string[]): string {
  const head = `# Added by Ferry: ${replaced.join(', ')} ${replaced.length === 1 ? 'is' : 'are'} not on this machine; the NICs it has use DHCP.\n`;
  return head + nics.map((n) => `allow-hotplug ${n}\niface ${n} inet dhcp\n`).join('\n');
}

/** fnmatch-style glob (*, ?, [..]) as systemd's Name= uses. */
export function globMatch(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

/** The Name= globs of a .network file's [Match] section; empty when it matches by other properties. */
export function networkdNames(text: string): string[] {
  let inMatch = false;
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) inMatch = line === '[Match]';
    else if (inMatch) {
      const m = /^Name\s*=\s*(.*)$/.exec(line);
      if (m) out.push(...m[1]!.split(/\s+/).filter((s) => s.length > 0));
    }
  }
  return out;
}

/** Whether a Name= glob is meant for ethernet NICs: its wildcards filled in, it looks like an ethernet name. */
const ethernetGlob = (glob: string) => isEthernetName(glob.replace(/^!/, '').replace(/\[[^\]]*\]|[*?]/g, '0'));

/**
 * Interface names under `ethernets:` in a netplan file (entries with a `match:` are left out: their key is
 * only a label). Indentation-based, enough for netplan's own layout without a YAML parser.
 */
export function netplanEthernets(yaml: string): string[] {
  const lines = yaml.split('\n');
  const out: string[] = [];
  const indent = (l: string) => l.length - l.trimStart().length;
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*ethernets:\s*$/.test(lines[i]!)) continue;
    const base = indent(lines[i]!);
    let child = -1;
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j]!;
      if (l.trim() === '' || l.trim().startsWith('#')) continue;
      if (indent(l) <= base) break;
      if (child === -1) child = indent(l);
      const key = indent(l) === child ? /^\s*["']?([\w.-]+)["']?:/.exec(l)?.[1] : undefined;
      if (key !== undefined) out.push(key);
      else if (out.length > 0 && /^\s*match:/.test(l)) out.pop();
    }
  }
  return out;
}

interface Outcome {
  changes: string[];
  stale: string[];
}

async function adaptIfupdown(ctx: CompatContext, nics: string[], o: Outcome): Promise<void> {
  const main = inRoot(ctx.root, '/etc/network/interfaces');
  if (!existsSync(main)) return;
  const files = [main];
  const dir = inRoot(ctx.root, '/etc/network/interfaces.d');
  for (const f of (await readdir(dir).catch(() => [] as string[])).sort()) files.push(`${dir}/${f}`);
  const configured = new Set<string>();
  const removed: string[] = [];
  const rewritten = new Map<string, string>();
  for (const f of files) {
    const text = await readFile(f, 'utf8');
    const r = dropMissingInterfaces(text, nics);
    r.configured.forEach((n) => configured.add(n));
    if (r.removed.length > 0) {
      removed.push(...r.removed);
      rewritten.set(f, r.text);
    }
  }
  if (removed.length === 0) return;
  const add = nics.filter((n) => !configured.has(n));
  const mainText = rewritten.get(main) ?? (await readFile(main, 'utf8'));
  rewritten.set(main, add.length > 0 ? `${mainText.replace(/\n*$/, '\n\n')}${dhcpStanzas(add, removed)}` : mainText);
  const backupDir = inRoot(ctx.root, `/etc/network/interfaces.d${BACKUP_SUFFIX}`);
  for (const [f, text] of rewritten) {
    if (f === main) await backupOnce(f);
    else {
      // interfaces.d/* is sourced by a glob: a backup beside the file would be read as configuration too.
      await mkdir(backupDir, { recursive: true });
      await backupOnce(f, `${backupDir}/${f.slice(dir.length + 1)}`);
    }
    await writeFile(f, text);
  }
  o.stale.push(...removed);
  o.changes.push(`ifupdown: dropped ${removed.join(', ')}${add.length ? `, DHCP on ${add.join(', ')}` : ''} (original: /etc/network/interfaces${BACKUP_SUFFIX})`);
}

const NETWORKD_DHCP = `# Added by Ferry: the NICs the restored configuration named are not on this machine.
# Earlier files that match a NIC take precedence; this one gives the others DHCP.
[Match]
Name=en* eth*

[Network]
DHCP=yes
`;

async function adaptNetworkd(ctx: CompatContext, nics: string[], o: Outcome): Promise<void> {
  const dir = inRoot(ctx.root, '/etc/systemd/network');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.network')).sort();
  const stale: string[] = [];
  const unmatched = new Set(nics);
  for (const f of files) {
    const names = networkdNames(await readFile(`${dir}/${f}`, 'utf8'));
    const matches = nics.filter((n) => names.some((g) => globMatch(g, n)));
    matches.forEach((n) => unmatched.delete(n));
    if (matches.length === 0 && names.some(ethernetGlob)) stale.push(`${f} (${names.join(' ')})`);
  }
  // The old files stay: matching nothing, they do nothing, and they document the old addresses.
  if (stale.length === 0 || (nics.length > 0 && unmatched.size === 0)) return;
  await writeFile(`${dir}/90-ferry-dhcp.network`, NETWORKD_DHCP);
  o.stale.push(...stale);
  o.changes.push(`systemd-networkd: ${stale.join(', ')} match${stale.length === 1 ? 'es' : ''} no NIC here; added 90-ferry-dhcp.network (DHCP on en* eth*)`);
}

async function adaptNetplan(ctx: CompatContext, nics: string[], o: Outcome): Promise<void> {
  const dir = inRoot(ctx.root, '/etc/netplan');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.yaml') && f !== '90-ferry-dhcp.yaml').sort();
  const named = new Set<string>();
  for (const f of files) netplanEthernets(await readFile(`${dir}/${f}`, 'utf8')).forEach((n) => named.add(n));
  const stale = [...named].filter((n) => isEthernetName(n) && !nics.includes(n));
  const add = nics.filter((n) => !named.has(n));
  if (stale.length === 0 || add.length === 0) return;
  const yaml = `# Added by Ferry: ${stale.join(', ')} not on this machine; the NICs it has use DHCP.\nnetwork:\n  version: 2\n  ethernets:\n${add.map((n) => `    ${n}:\n      dhcp4: true\n`).join('')}`;
  const file = `${dir}/90-ferry-dhcp.yaml`;
  await writeFile(file, yaml);
  // netplan warns about configuration readable by others (it can hold Wi-Fi passwords).
  await chmod(file, 0o600);
  o.stale.push(...stale);
  o.changes.push(`netplan: ${stale.join(', ')} not here; added 90-ferry-dhcp.yaml (DHCP on ${add.join(', ')})`);
}

/** Network configuration naming NICs the new VM does not have: DHCP on the NICs it has, originals kept. */
export async function adaptNetwork(ctx: CompatContext): Promise<StepResult> {
  let nics = ctx.options.nics;
  const o: Outcome = { changes: [], stale: [] };
  if (nics === undefined) {
    const predicted = await restoredNicNames(ctx, await presentNics());
    nics = predicted.names;
    if (predicted.renamed.length > 0) o.changes.push(`NICs here as the restored system's udev names them: ${predicted.renamed.join(', ')}`);
  }
  await adaptIfupdown(ctx, nics, o);
  await adaptNetworkd(ctx, nics, o);
  await adaptNetplan(ctx, nics, o);
  if (o.stale.length > 0) return ok(`${o.changes.join('; ')}${nics.length === 0 ? ' — this machine has no ethernet NIC' : ''}`);
  const found = ['/etc/network/interfaces', '/etc/systemd/network', '/etc/netplan'].filter((p) => existsSync(inRoot(ctx.root, p)));
  const why = found.length ? `every NIC named in ${found.join(', ')} is present (${nics.join(', ') || 'none'})` : 'no ifupdown, systemd-networkd or netplan configuration';
  return skipped([why, ...o.changes].join('; '));
}

