import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ApplianceClient, certificateFingerprint, FerryError } from '@ferry/protocol';
import { openControlChannel } from './channel.js';
import { describeConnectError } from './connect-error.js';

/*
 * A real TLS server (no socket.io server: that is the appliance's) shows that the control channel's websocket
 * goes through the pinning agent: with another fingerprint pinned, the server sees no request at all.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-channel-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function selfSigned(name: string): { cert: Buffer; key: Buffer } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`], {
    stdio: 'ignore',
  });
  return { cert: readFileSync(cert), key: readFileSync(key) };
}

const appliance = selfSigned('appliance');
const impostor = selfSigned('impostor');

/** Records what reaches the server; answers a websocket upgrade by closing, which is enough to see it arrive. */
async function server(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const s = https.createServer(appliance);
  s.on('request', (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.destroy();
  });
  s.on('upgrade', (req, socket) => {
    seen.push(`upgrade ${req.url}`);
    socket.destroy();
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  return { url: `https://127.0.0.1:${port}`, seen, close: () => new Promise((resolve) => s.close(() => resolve())) };
}

/** Opens the channel, waits for its first connection error, and closes it. */
async function firstError(url: string, fingerprint: string): Promise<unknown> {
  const client = new ApplianceClient(url, fingerprint, 'ferry_agent_secret');
  const socket = openControlChannel(url, client, () => 'ferry_agent_secret', false);
  try {
    return await new Promise((resolve) => {
      socket.once('connect_error', resolve);
      socket.connect();
    });
  } finally {
    socket.disconnect();
    client.close();
  }
}

void test('the control channel refuses an appliance with another certificate before sending anything', async () => {
  const s = await server();
  try {
    const err = await firstError(s.url, certificateFingerprint(impostor.cert));
    const failure = describeConnectError(err, new URL(s.url).host);
    assert.equal(failure.kind, 'fingerprint', failure.text);
    assert.match(failure.text, /nothing was sent/);
    assert.deepEqual(s.seen, []);
  } finally {
    await s.close();
  }
});

void test('the control channel with the right fingerprint reaches the socket.io path over a websocket', async () => {
  const s = await server();
  try {
    const err = await firstError(s.url, certificateFingerprint(appliance.cert));
    assert.equal(s.seen.length, 1, JSON.stringify(s.seen));
    assert.match(s.seen[0]!, /^upgrade \/socket\.io\/\?EIO=4&transport=websocket/);
    // The server hung up on the upgrade: an unreachable-style failure, not a certificate one.
    assert.equal(describeConnectError(err, 'x').kind, 'unreachable');
    assert.ok(!(err instanceof FerryError));
  } finally {
    await s.close();
  }
});
