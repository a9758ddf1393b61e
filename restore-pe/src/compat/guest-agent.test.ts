import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packageFolderNames, wantedBy } from './guest-agent.js';

test('packageFolderNames tries the exact version, then the major version', () => {
  assert.deepEqual(packageFolderNames({ id: 'debian', versionId: '12', like: [], prettyName: '' }), ['debian-12']);
  assert.deepEqual(packageFolderNames({ id: 'rhel', versionId: '9.4', like: [], prettyName: '' }), ['rhel-9.4', 'rhel-9']);
});

test('wantedBy reads the [Install] section only', () => {
  const unit = '[Unit]\nWantedBy=not-this.target\n\n[Service]\nExecStart=/usr/sbin/qemu-ga\n\n[Install]\nWantedBy=multi-user.target  sockets.target\n';
  assert.deepEqual(wantedBy(unit), ['multi-user.target', 'sockets.target']);
  assert.deepEqual(wantedBy('[Unit]\nDescription=QEMU Guest Agent\n[Service]\nExecStart=/usr/sbin/qemu-ga\n'), []);
});
