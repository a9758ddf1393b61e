import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOsRelease } from './distro.js';

test('parseOsRelease reads quoted and bare values', () => {
  const text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n# comment\nID_LIKE=\'rhel fedora\'\nHOME_URL="https://www.debian.org/"\n';
  assert.deepEqual(parseOsRelease(text), {
    PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)',
    NAME: 'Debian GNU/Linux',
    VERSION_ID: '12',
    ID: 'debian',
    ID_LIKE: 'rhel fedora',
    HOME_URL: 'https://www.debian.org/',
  });
});
