import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FerryError } from '@ferry/protocol';
import { applianceUrl, missingForAuto, parseCmdline } from './cmdline.js';

const FP = 'SHA256:' + 'AB:'.repeat(31) + 'AB';

test('parseCmdline reads every ferry.* option and ignores the kernel\'s own', () => {
  const s = parseCmdline(
    `BOOT_IMAGE=/boot/vmlinuz console=ttyS0,115200 quiet ferry.ip=198.18.0.2/24 ferry.gw=198.18.0.1 ferry.dns=198.18.0.1,198.18.0.53 ferry.appliance=198.18.0.1 ferry.fingerprint=${FP.toLowerCase()} ferry.code=abcd-efgh-jkmn-pqrs ferry.auto=1 ferry.reboot=0\n`,
  );
  assert.deepEqual(s.network, { kind: 'static', address: '198.18.0.2', prefix: 24 });
  assert.equal(s.gateway, '198.18.0.1');
  assert.deepEqual(s.dns, ['198.18.0.1', '198.18.0.53']);
  assert.equal(s.appliance, 'https://198.18.0.1:8443');
  assert.equal(s.fingerprint, FP);
  assert.equal(s.code, 'abcd-efgh-jkmn-pqrs');
  assert.equal(s.auto, true);
  assert.equal(s.reboot, false);
  assert.equal(s.verify, true);
  assert.deepEqual(missingForAuto(s), []);
});

test('parseCmdline without ferry options asks for everything', () => {
  const s = parseCmdline('console=tty0 quiet');
  assert.equal(s.auto, false);
  assert.deepEqual(missingForAuto(s), ['ferry.ip (ADDRESS/PREFIX or dhcp)', 'ferry.appliance', 'ferry.fingerprint', 'ferry.code']);
  assert.deepEqual(parseCmdline('ferry.ip=dhcp').network, { kind: 'dhcp' });
});

test('parseCmdline refuses malformed values by name', () => {
  const refused: [string, RegExp][] = [
    ['ferry.ip=198.18.0.2', /ferry\.ip=198\.18\.0\.2: give ADDRESS\/PREFIX/],
    ['ferry.ip=300.1.1.1/24', /ferry\.ip/],
    ['ferry.gw=gateway', /ferry\.gw=gateway/],
    ['ferry.auto=maybe', /ferry\.auto=maybe: use 1 or 0/],
    ['ferry.fingerprint=SHA256:12', /not a SHA-256 certificate fingerprint/],
    ['ferry.appliance=http://10.0.0.1', /HTTPS only/],
    ['ferry.colour=blue', /unknown kernel option ferry\.colour/],
  ];
  for (const [line, message] of refused) {
    assert.throws(() => parseCmdline(line), (e: FerryError) => e.code !== undefined && message.test(e.message), line);
  }
});

test('applianceUrl accepts an address, a host:port or a URL', () => {
  assert.equal(applianceUrl('10.0.0.5'), 'https://10.0.0.5:8443');
  assert.equal(applianceUrl('10.0.0.5:9443'), 'https://10.0.0.5:9443');
  assert.equal(applianceUrl('https://box.example:8443/'), 'https://box.example:8443');
});
