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

/** The machine's network interfaces (not loopback), with driver and link state, as the wizard lists them. */
export async function listNics(sysClassNet = '/sys/class/net'): Promise<Nic[]> {
  const names = (await readdir(sysClassNet).catch(() => [] as string[])).filter((n) => n !== 'lo').sort();
  const nics: Nic[] = [];
  for (const name of names) {
    const dir = path.join(sysClassNet, name);
    const driver = await readlink(path.join(dir, 'device', 'driver')).then(
      (l) => path.basename(l),
      () => '?',
    );
    const carrier = await readText(path.join(dir, 'carrier'));
    nics.push({ name, driver, mac: (await readText(path.join(dir, 'address'))) ?? '?', link: carrier === '1' ? 'up' : carrier === '0' ? 'down' : 'unknown' });
  }
  return nics;
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
