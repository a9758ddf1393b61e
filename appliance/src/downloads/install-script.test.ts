import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { AGENT_UNIT_FILE, AgentDownloads } from './service.js';
import { applianceUrlOf, INSTALLED_EXECUTABLE, installCommand, installScript } from './install-script.js';

const params = {
  applianceUrl: 'https://10.0.0.5:8443',
  fingerprint: `SHA256:${'AB:'.repeat(31)}AB`,
  pin: 'sha256//PJynZlI9ZCSbDbwy/4WWpjgRuzKrPJBiTQdWdFNBzCE=',
  agent: { version: '0.1.0', sha256: 'ab'.repeat(32), size: 1 },
  // The unit as the appliance serves it: agent/systemd's, with ExecStart at the installed path.
  unit: await new AgentDownloads('/nonexistent/ferry-agent', AGENT_UNIT_FILE).unit(INSTALLED_EXECUTABLE),
};

test('applianceUrlOf() takes host names, IPv4 and IPv6 addresses with ports, and refuses anything else', () => {
  assert.equal(applianceUrlOf('10.0.0.5:8443'), 'https://10.0.0.5:8443');
  assert.equal(applianceUrlOf('ferry.example'), 'https://ferry.example');
  assert.equal(applianceUrlOf('[fd00::5]:8443'), 'https://[fd00::5]:8443');
  for (const bad of [undefined, '', "x';reboot;'", 'a b', 'host:8443/path', 'user@host']) {
    assert.throws(() => applianceUrlOf(bad), (e: unknown) => e instanceof FerryError && e.code === 'BAD_REQUEST', String(bad));
  }
});

test('installCommand() is one line that pins the key, passes the token and fails when the download fails', () => {
  const cmd = installCommand({ applianceUrl: params.applianceUrl, pin: params.pin, token: 'ferry_enroll_7_abc-DEF_123' });
  assert.ok(!cmd.includes('\n'));
  assert.match(cmd, /curl -fsSk --pinnedpubkey 'sha256\/\/PJyn[^']+' -o "\$f" 'https:\/\/10\.0\.0\.5:8443\/downloads\/install\.sh'/);
  assert.match(cmd, /sh "\$f" --token 'ferry_enroll_7_abc-DEF_123'/);
  // A refused download (here: nothing listens) must make the whole line fail, not run an empty script.
  const refused = installCommand({ applianceUrl: 'https://127.0.0.1:1', pin: params.pin, token: 'ferry_enroll_7_x' });
  assert.throws(() => execFileSync('sh', ['-c', refused], { stdio: 'pipe' }));
  assert.throws(() => installCommand({ applianceUrl: params.applianceUrl, pin: params.pin, token: "x'; rm -rf /; '" }), FerryError);
});

test('install.sh is POSIX sh that shellcheck passes, carries the unit with ExecStart at the installed path, and no token', () => {
  const script = installScript(params);
  assert.match(script, /^ExecStart=\/usr\/local\/sbin\/ferry-agent run --state \/var\/lib\/ferry-agent$/m);
  assert.doesNotMatch(script, /ferry_enroll_[0-9]/, 'no token in the script');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-install-sh-'));
  try {
    const file = path.join(dir, 'install.sh');
    writeFileSync(file, script);
    execFileSync('sh', ['-n', file]);
    execFileSync('shellcheck', ['-s', 'sh', file]);
    // Without a token it stops before touching anything, and says what to do.
    const r = (() => {
      try {
        execFileSync('sh', [file], { stdio: 'pipe', env: { PATH: process.env.PATH, FERRY_INSTALL_ROOT: dir } });
        return '';
      } catch (err) {
        return String((err as { stderr: Buffer }).stderr);
      }
    })();
    assert.match(r, /no enrollment token/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
