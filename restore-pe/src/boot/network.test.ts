import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { linkState, listNics, preferredNic, unknownNic, type Nic } from './network.js';

// listNics reads /sys/class/net. The kernel's sysfs cannot be made here, so these tests give it a directory
// laid out the same way (address, carrier, operstate, device/driver), and stand in for `ip link set X up`.

interface FakeNic {
  driver?: string;
  carrier?: string;
  operstate?: string;
}

async function fakeSysfs(nics: Record<string, FakeNic>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-sysfs-'));
  for (const [name, n] of Object.entries(nics)) {
    const d = path.join(dir, name);
    await mkdir(path.join(d, 'device'), { recursive: true });
    await writeFile(path.join(d, 'address'), '52:54:00:12:34:56\n');
    if (n.driver) await symlink(`../../../../bus/pci/drivers/${n.driver}`, path.join(d, 'device', 'driver'));
    if (n.carrier !== undefined) await writeFile(path.join(d, 'carrier'), `${n.carrier}\n`);
    if (n.operstate !== undefined) await writeFile(path.join(d, 'operstate'), `${n.operstate}\n`);
  }
  return dir;
}

test('linkState: carrier when the kernel gives it, else operstate', () => {
  assert.equal(linkState('1', 'up'), 'up');
  assert.equal(linkState('0', 'down'), 'down');
  // Reading carrier fails while the interface is down: operstate decides.
  assert.equal(linkState(null, 'down'), 'down');
  assert.equal(linkState(null, 'lowerlayerdown'), 'down');
  assert.equal(linkState(null, 'up'), 'up');
  assert.equal(linkState(null, 'unknown'), 'unknown');
  assert.equal(linkState(null, null), 'unknown');
});

test('listNics brings every NIC up, waits for carriers that come late, and shows up/down', async () => {
  // ens3: down until brought up, then its carrier comes after a while (link negotiation); ens4: no cable;
  // lo is never listed.
  const dir = await fakeSysfs({ ens3: { driver: 'virtio_net', operstate: 'down' }, ens4: { driver: 'e1000', operstate: 'down' }, lo: { operstate: 'unknown' } });
  try {
    const broughtUp: string[] = [];
    let sleeps = 0;
    let slept = 0;
    const nics = await listNics({
      sysClassNet: dir,
      bringUp: async (name) => {
        broughtUp.push(name);
        await writeFile(path.join(dir, name, 'carrier'), '0\n');
      },
      sleep: async (ms) => {
        sleeps++;
        slept += ms;
        if (sleeps === 2) await writeFile(path.join(dir, 'ens3', 'carrier'), '1\n');
      },
    });
    assert.deepEqual(broughtUp, ['ens3', 'ens4']);
    assert.deepEqual(
      nics.map((n) => [n.name, n.driver, n.link, n.mac]),
      [
        ['ens3', 'virtio_net', 'up', '52:54:00:12:34:56'],
        ['ens4', 'e1000', 'down', '52:54:00:12:34:56'],
      ],
    );
    // ens4 never comes up: the wait is bounded (3 s in all by default).
    assert.ok(slept > 0 && slept <= 3000, `waited ${slept} ms in all`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('listNics does not wait when every link is up, and lists a NIC it could not bring up', async () => {
  const dir = await fakeSysfs({ ens3: { driver: 'virtio_net', carrier: '1', operstate: 'up' } });
  try {
    let slept = 0;
    const nics = await listNics({ sysClassNet: dir, bringUp: () => Promise.resolve(), sleep: (ms) => {
        slept += ms;
        return Promise.resolve();
      },
    });
    assert.deepEqual(
      nics.map((n) => n.link),
      ['up'],
    );
    assert.equal(slept, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const blocked = await fakeSysfs({ wlan0: { operstate: 'down' } });
  try {
    const nics = await listNics({ sysClassNet: blocked, bringUp: () => Promise.reject(new Error('RTNETLINK answers: Operation not possible due to RF-kill')), waitMs: 500, sleep: () => Promise.resolve() });
    assert.deepEqual(
      nics.map((n) => [n.name, n.driver, n.link]),
      [['wlan0', '?', 'down']],
    );
  } finally {
    await rm(blocked, { recursive: true, force: true });
  }
});

const nic = (name: string, link: Nic['link']): Nic => ({ name, driver: 'virtio_net', mac: '?', link });

test('preferredNic: the one ferry.nic names, else the first with link up, else the first', () => {
  const nics = [nic('ens3', 'down'), nic('ens4', 'up'), nic('ens5', 'up')];
  assert.equal(preferredNic(nics, 'ens5')?.name, 'ens5');
  assert.equal(preferredNic(nics, null)?.name, 'ens4');
  assert.equal(preferredNic(nics, 'eth9')?.name, 'ens4');
  assert.equal(preferredNic([nic('ens3', 'down'), nic('ens4', 'unknown')], null)?.name, 'ens3');
  assert.equal(preferredNic([], null), undefined);
});

test('unknownNic: ferry.nic naming no interface is reported with the ones there are; unset or present is fine', () => {
  const nics = [nic('ens3', 'down'), nic('ens4', 'up')];
  assert.equal(unknownNic(nics, null), null);
  assert.equal(unknownNic(nics, 'ens4'), null);
  assert.equal(unknownNic(nics, 'eth0'), 'ferry.nic=eth0 names no interface of this machine (it has ens3, ens4)');
});
