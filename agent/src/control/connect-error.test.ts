import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError } from '@ferry/protocol';
import { describeConnectError, describeDisconnect, RepeatedProblem } from './connect-error.js';

// The shapes below are what socket.io-client 4.8 hands to 'connect_error' (seen against a real server).
function transportError(error: unknown): Error {
  return Object.assign(new Error('websocket error'), { type: 'TransportError', description: { type: 'error', message: String(error), error } });
}

void test('describeConnectError() names the network error of an unreachable appliance', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:8443'), { code: 'ECONNREFUSED' });
  assert.deepEqual(describeConnectError(transportError(refused), '10.0.0.5:8443'), {
    kind: 'unreachable',
    text: 'cannot reach the appliance at 10.0.0.5:8443: ECONNREFUSED',
  });
});

void test('describeConnectError() passes a fingerprint mismatch on with its hint', () => {
  const mismatch = new FerryError('FINGERPRINT_MISMATCH', 'the appliance at 10.0.0.5:8443 presented SHA256:AA, but SHA256:BB is pinned; nothing was sent');
  const f = describeConnectError(transportError(mismatch), '10.0.0.5:8443');
  assert.equal(f.kind, 'fingerprint');
  assert.match(f.text, /SHA256:BB is pinned; nothing was sent\. The server presented another certificate/);
  assert.match(f.text, /\(error FINGERPRINT_MISMATCH\)$/, 'the code to look up in docs/errors.md');
});

void test('describeConnectError() tells to re-enroll when the appliance refuses the credential', () => {
  const refusal = Object.assign(new Error('the credential was refused'), { data: { code: 'AUTH_INVALID', hint: 'The token is unknown or revoked' } });
  const f = describeConnectError(refusal, '10.0.0.5:8443');
  assert.equal(f.kind, 'auth');
  assert.match(f.text, /refused this agent's credential \(AUTH_INVALID: the credential was refused\)/);
  assert.match(f.text, /ferry-agent enroll/);
  const http401 = describeConnectError(transportError(new Error('Unexpected server response: 401')), 'h');
  assert.equal(http401.kind, 'auth');
});

void test('describeConnectError() reports another refusal with the code and hint the appliance gave', () => {
  const f = describeConnectError(Object.assign(new Error('busy'), { data: { code: 'BAD_REQUEST', hint: 'try later' } }), 'h:1');
  assert.deepEqual(f, { kind: 'refused', text: 'the appliance at h:1 refused the control connection: busy (BAD_REQUEST); try later' });
});

void test('describeConnectError() says when the server is not a matching appliance', () => {
  const f = describeConnectError(transportError(new Error('Unexpected server response: 404')), 'h:1');
  assert.equal(f.kind, 'unreachable');
  assert.match(f.text, /HTTP 404/);
});

void test('describeDisconnect() explains the reasons socket.io gives', () => {
  assert.match(describeDisconnect('ping timeout', 'h'), /stopped answering/);
  assert.match(describeDisconnect('transport close', 'h'), /lost the connection/);
  assert.match(describeDisconnect('io server disconnect', 'h'), /closed the control connection/);
  assert.match(describeDisconnect('something new', 'h'), /\(something new\)/);
});

void test('RepeatedProblem logs a repeated failure once, then every interval with a count, and anew after clear()', () => {
  const lines: string[] = [];
  let t = Date.parse('2026-01-01T00:00:00Z');
  const p = new RepeatedProblem((l) => lines.push(l), 60_000, () => t);
  p.report('down');
  t += 10_000;
  p.report('down');
  t += 50_000;
  p.report('down');
  p.report('other');
  p.clear();
  p.report('other');
  assert.deepEqual(lines, ['down', 'down (3 attempts since 2026-01-01T00:00:00.000Z)', 'other', 'other']);
});
