import { readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { hasTool, sh } from './system.js';

export interface Nic {
  name: string;
  driver: string;
  mac: string;
  link: 'up' | 'down' | 'unknown';
}

async function readText(file: string): Promise<string | null> {
  return readFile(file, 'utf8').then(
    (t) => t.trim(),
    () => null,
  );
}

export type LinkState = Nic['link'];

/**
 * A NIC's link from sysfs: `carrier` when the kernel gives it (it refuses while the interface is down), else
 * `operstate` (virtual NICs without carrier reporting say "unknown" there).
 */
export function linkState(carrier: string | null, operstate: string | null): LinkState {
  if (carrier === '1') return 'up';
  if (carrier === '0') return 'down';
  if (operstate === 'up') return 'up';
  if (operstate === 'down' || operstate === 'lowerlayerdown' || operstate === 'notpresent') return 'down';
  return 'unknown';
}

/** The NIC the wizard offers first: the one named by ferry.nic, else the first whose link is up, else the first. */
/** What is wrong with ferry.nic=NAME on this machine, or null when it is unset or names one of `nics`. */
export function unknownNic(nics: Nic[], name: string | null): string | null {
  if (name === null || nics.some((n) => n.name === name)) return null;
  return `ferry.nic=${name} names no interface of this machine (it has ${nics.map((n) => n.name).join(', ')})`;
}

export function preferredNic(nics: Nic[], name: string | null): Nic | undefined {
  return nics.find((n) => n.name === name) ?? nics.find((n) => n.link === 'up') ?? nics[0];
}

export interface ListNicsOptions {
  sysClassNet?: string;
  /** Brings a NIC up (no address): only then does the kernel report its carrier. Default `ip link set NIC up`. */
  bringUp?: (name: string) => Promise<void>;
  /** How long to wait in all for links to come up after that (a NIC without a cable stays down). */
  waitMs?: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Link negotiation of a real NIC takes a second or two; a virtual one is up at once. */
const LINK_WAIT_MS = 3000;
const LINK_POLL_MS = 250;

/**
 * The machine's network interfaces (not loopback), with driver and link state, as the wizard lists them. Each
 * is brought up first (without an address) and the links get up to `waitMs` to come up, polled, so the list
 * shows which NIC is cabled.
 */
export async function listNics(opts: ListNicsOptions = {}): Promise<Nic[]> {
  const sysClassNet = opts.sysClassNet ?? '/sys/class/net';
  const bringUp = opts.bringUp ?? (async (name: string) => void (await sh('ip', ['link', 'set', name, 'up'])));
  const waitMs = opts.waitMs ?? LINK_WAIT_MS;
  const pollMs = opts.pollMs ?? LINK_POLL_MS;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const names = (await readdir(sysClassNet).catch(() => [] as string[])).filter((n) => n !== 'lo').sort();
  const nics: Nic[] = [];
  for (const name of names) {
    const dir = path.join(sysClassNet, name);
    const driver = await readlink(path.join(dir, 'device', 'driver')).then(
      (l) => path.basename(l),
      () => '?',
    );
    // A NIC that cannot be brought up (say, rfkill) is still listed, with the state sysfs gives.
    await bringUp(name).catch(() => undefined);
    nics.push({ name, driver, mac: (await readText(path.join(dir, 'address'))) ?? '?', link: 'unknown' });
  }
  for (let waited = 0; ; waited += pollMs) {
    for (const nic of nics) {
      const dir = path.join(sysClassNet, nic.name);
      nic.link = linkState(await readText(path.join(dir, 'carrier')), await readText(path.join(dir, 'operstate')));
    }
    if (nics.every((n) => n.link === 'up') || waited + pollMs > waitMs) return nics;
    await sleep(pollMs);
  }
}

export type NetworkChoice = { kind: 'dhcp' } | { kind: 'static'; address: string; prefix: number };

/** Brings the NIC up with a static address (and default route, DNS) or by DHCP. */
export async function configureNetwork(nic: string, net: NetworkChoice, gateway: string | null, dns: string[]): Promise<string> {
  await sh('ip', ['link', 'set', 'lo', 'up']).catch(() => '');
  await sh('ip', ['link', 'set', nic, 'up']);
  if (net.kind === 'static') {
    await sh('ip', ['addr', 'flush', 'dev', nic]);
    await sh('ip', ['addr', 'add', `${net.address}/${net.prefix}`, 'dev', nic]);
    if (gateway) await sh('ip', ['route', 'replace', 'default', 'via', gateway, 'dev', nic]);
  } else if (await hasTool('udhcpc')) {
    await sh('udhcpc', ['-i', nic, '-n', '-q', '-t', '8', '-T', '2']);
  } else if (await hasTool('dhclient')) {
    await sh('dhclient', ['-1', '-v', nic]);
  } else {
    throw new FerryError('BAD_REQUEST', 'no DHCP client in this environment: give a static address');
  }
  if (dns.length > 0) await writeFile('/etc/resolv.conf', dns.map((d) => `nameserver ${d}\n`).join(''));
  return (await sh('ip', ['-4', '-o', 'addr', 'show', 'dev', nic])).trim();
}
