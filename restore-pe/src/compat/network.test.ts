import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adaptNetwork, dhcpStanzas, dropMissingInterfaces, globMatch, isEthernetName, netplanEthernets, networkdNames, predictableName } from './network.js';
import type { CompatContext } from './types.js';

const OLD = `source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# The primary network interface
auto ens3 ens4
iface ens3 inet static
	address 192.0.2.10/24
	gateway 192.0.2.1
	# a comment inside the stanza
	dns-nameservers 192.0.2.53
iface ens3:1 inet static
	address 192.0.2.11/24

iface ens4 inet dhcp
`;

test('dropMissingInterfaces drops the stanzas of absent NICs, their aliases and their auto entries', () => {
  const r = dropMissingInterfaces(OLD, ['ens4', 'enp1s0']);
  assert.equal(
    r.text,
    `source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

# The primary network interface
auto ens4

iface ens4 inet dhcp
`,
  );
  assert.deepEqual(r.removed.sort(), ['ens3', 'ens3:1']);
  assert.deepEqual(r.configured.sort(), ['ens4', 'lo']);
});

test('dropMissingInterfaces keeps bridges and bonds, and everything when all NICs are there', () => {
  const text = 'auto br0\niface br0 inet dhcp\n\tbridge_ports eth0\n';
  assert.deepEqual(dropMissingInterfaces(text, []).removed, []);
  assert.equal(dropMissingInterfaces(OLD, ['ens3', 'ens4']).text, OLD);
});

test('dhcpStanzas brings each present NIC up with DHCP when it appears', () => {
  assert.equal(
    dhcpStanzas(['enp1s0', 'enp2s0'], ['ens3']),
    '# Added by Ferry: ens3 is not on this machine; the NICs it has use DHCP.\nallow-hotplug enp1s0\niface enp1s0 inet dhcp\n\nallow-hotplug enp2s0\niface enp2s0 inet dhcp\n',
  );
});

test('isEthernetName knows the kernel and udev names of ethernet NICs', () => {
  for (const n of ['eth0', 'ens3', 'enp0s3', 'eno1', 'enx001122334455', 'em1', 'p2p1']) assert.equal(isEthernetName(n), true, n);
  for (const n of ['lo', 'br0', 'bond0', 'wg0', 'wlan0', 'docker0', 'vlan10']) assert.equal(isEthernetName(n), false, n);
});

test('predictableName follows the default NamePolicy: onboard, slot, path', () => {
  assert.equal(predictableName({ ID_NET_NAME_MAC: 'enx0011', ID_NET_NAME_PATH: 'enp0s3', ID_NET_NAME_SLOT: 'ens3' }), 'ens3');
  assert.equal(predictableName({ ID_NET_NAME_PATH: 'enp0s3', ID_NET_NAME_ONBOARD: 'eno1' }), 'eno1');
  assert.equal(predictableName({ ID_NET_NAME_PATH: 'enp0s3' }), 'enp0s3');
  assert.equal(predictableName({ ID_NET_NAME_MAC: 'enx0011' }), undefined, 'MAC names are not in the default policy');
});

test('networkdNames and globMatch read [Match] Name= as systemd does', () => {
  assert.deepEqual(networkdNames('[Match]\nName=ens3 en*\nMACAddress=00:11:22:33:44:55\n\n[Network]\nName=x\n'), ['ens3', 'en*']);
  assert.equal(globMatch('en*', 'enp1s0'), true);
  assert.equal(globMatch('ens[0-9]', 'ens3'), true);
  assert.equal(globMatch('ens3', 'ens30'), false);
  assert.equal(globMatch('eth?', 'eth0'), true);
});

test('netplanEthernets lists interface names under ethernets, not matched labels', () => {
  const yaml = `network:
  version: 2
  ethernets:
    ens3:
      addresses: [192.0.2.10/24]
    "eth1":
      dhcp4: true
    lan:
      match:
        macaddress: "00:11:22:33:44:55"
  bridges:
    br0:
      interfaces: [ens3]
`;
  assert.deepEqual(netplanEthernets(yaml), ['ens3', 'eth1']);
});

async function withRoot(files: Record<string, string>, fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-net-'));
  try {
    for (const [p, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, p)), { recursive: true });
      await writeFile(path.join(root, p), text);
    }
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const ctx = (root: string, nics: string[]): CompatContext => ({
  root,
  // Only files: no command may run.
  run: () => Promise.reject(new Error('no command expected')),
  devices: { targets: [], devices: [] },
  options: { targets: [], firmware: 'bios', packagesDir: '/nonexistent', nics, report: () => undefined },
});

test('adaptNetwork rewrites ifupdown files (interfaces.d backups outside the sourced folder) and adds DHCP', async () => {
  await withRoot({ '/etc/network/interfaces': 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n', '/etc/network/interfaces.d/ens3': 'auto ens3\niface ens3 inet static\n\taddress 192.0.2.10/24\n' }, async (root) => {
    const r = await adaptNetwork(ctx(root, ['enp1s0']));
    assert.equal(r.status, 'ok', r.detail);
    assert.match(await readFile(`${root}/etc/network/interfaces`, 'utf8'), /\nallow-hotplug enp1s0\niface enp1s0 inet dhcp\n$/);
    assert.equal((await readFile(`${root}/etc/network/interfaces.d/ens3`, 'utf8')).trim(), '');
    assert.match(await readFile(`${root}/etc/network/interfaces.d.ferry-backup/ens3`, 'utf8'), /iface ens3 inet static/);
    assert.ok(existsSync(`${root}/etc/network/interfaces.ferry-backup`));
  });
});

test('adaptNetwork adds a match-all DHCP file for systemd-networkd when no file matches a present NIC', async () => {
  const old = '[Match]\nName=ens3\n\n[Network]\nAddress=192.0.2.10/24\n';
  await withRoot({ '/etc/systemd/network/10-wired.network': old }, async (root) => {
    const r = await adaptNetwork(ctx(root, ['enp1s0']));
    assert.equal(r.status, 'ok', r.detail);
    assert.equal(await readFile(`${root}/etc/systemd/network/90-ferry-dhcp.network`, 'utf8').then((t) => /Name=en\* eth\*[\s\S]*DHCP=yes/.test(t)), true);
    assert.equal(await readFile(`${root}/etc/systemd/network/10-wired.network`, 'utf8'), old, 'the old file stays: it matches nothing');
  });
  await withRoot({ '/etc/systemd/network/10-wired.network': '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' }, async (root) => {
    assert.equal((await adaptNetwork(ctx(root, ['enp1s0']))).status, 'skipped');
  });
});

test('adaptNetwork adds netplan DHCP for present NICs when the configured ones are gone', async () => {
  await withRoot({ '/etc/netplan/50-cloud-init.yaml': 'network:\n  version: 2\n  ethernets:\n    ens3:\n      dhcp4: false\n' }, async (root) => {
    const r = await adaptNetwork(ctx(root, ['enp1s0']));
    assert.equal(r.status, 'ok', r.detail);
    assert.match(await readFile(`${root}/etc/netplan/90-ferry-dhcp.yaml`, 'utf8'), /ethernets:\n {4}enp1s0:\n {6}dhcp4: true\n/);
  });
});

test('adaptNetwork skips a system whose NICs are all present', async () => {
  await withRoot({ '/etc/network/interfaces': 'auto eth0\niface eth0 inet dhcp\n' }, async (root) => {
    const r = await adaptNetwork(ctx(root, ['eth0']));
    assert.equal(r.status, 'skipped');
    assert.equal(existsSync(`${root}/etc/network/interfaces.ferry-backup`), false);
  });
});
