import { createHash } from 'node:crypto';
import express, { type Router } from 'express';
import { z } from 'zod';
import { API_PREFIX, FerryError } from '@ferry/protocol';
import { json, parse } from '../http/reply.js';
import type { ApplianceLock } from './lock.js';

export const PassphraseRequestSchema = z.strictObject({ passphrase: z.string().max(1024) });

/**
 * What the appliance serves before it is unlocked: the health check (saying `locked` or `uninitialised`),
 * unlock, initialise, and a small self-contained page at `/` to do either. Everything else answers
 * APPLIANCE_LOCKED until the lock opens; then requests go on to the full application.
 */
export function lockRoutes(lock: ApplianceLock, version: string): Router {
  const r = express.Router();
  const api = express.Router();
  // Only for the two routes below: mounted on the whole API, this small limit would cut every later JSON
  // request (a missing-chunks query of a batch) once the appliance is unlocked.
  const passphraseBody = express.json({ limit: '4kb', strict: true });
  api.get('/health', (req, res, next) => {
    if (lock.state === 'unlocked') {
      next();
      return;
    }
    json(() => ({ status: lock.state, version }))(req, res).catch(next);
  });
  api.post(
    '/unlock',
    passphraseBody,
    json(async (req) => {
      await lock.unlock(parse(PassphraseRequestSchema, req.body).passphrase, req.socket.remoteAddress ?? 'unknown');
      return { status: lock.state };
    }),
  );
  api.post(
    '/initialize',
    passphraseBody,
    json(async (req) => {
      await lock.initialize(parse(PassphraseRequestSchema, req.body).passphrase, req.socket.remoteAddress ?? 'unknown');
      return { status: lock.state };
    }),
  );
  r.use(API_PREFIX, api);
  for (const page of ['/', '/index.html', '/unlock']) {
    r.get(page, (_req, res, next) => {
      if (lock.state === 'unlocked') {
        next();
        return;
      }
      res.setHeader('Content-Security-Policy', `default-src 'none'; script-src '${PAGE_SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'`);
      res.setHeader('Cache-Control', 'no-store');
      res.type('html').send(unlockPage(lock.state, version));
    });
  }
  r.use((_req, _res, next) => {
    if (lock.state === 'unlocked') {
      next();
      return;
    }
    next(
      new FerryError(
        'APPLIANCE_LOCKED',
        lock.state === 'uninitialised'
          ? 'the appliance has no passphrase yet: open the appliance address in a browser (or POST /api/v1/initialize) to set one'
          : 'the appliance is locked: open its address in a browser, POST /api/v1/unlock, or run `ferry-appliance unlock` with the passphrase',
      ),
    );
  });
  return r;
}

const PAGE_SCRIPT = `
const form = document.getElementById('f');
const out = document.getElementById('out');
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const mode = form.dataset.mode;
  const pass = document.getElementById('p').value;
  if (mode === 'initialize' && pass !== document.getElementById('p2').value) { out.textContent = 'The two passphrases differ.'; return; }
  out.textContent = mode === 'initialize' ? 'Setting the passphrase…' : 'Unlocking…';
  form.querySelector('button').disabled = true;
  try {
    const res = await fetch('/api/v1/' + mode, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ passphrase: pass }) });
    const reply = await res.json();
    if (reply.ok) { out.textContent = 'Unlocked. Loading the appliance…'; location.reload(); return; }
    out.textContent = reply.message + (reply.hint ? ' — ' + reply.hint : '') + ' (' + reply.code + ')';
  } catch (err) { out.textContent = 'The appliance did not answer: ' + err; }
  form.querySelector('button').disabled = false;
});`;
const PAGE_SCRIPT_HASH = `sha256-${createHash('sha256').update(PAGE_SCRIPT).digest('base64')}`;

function unlockPage(state: 'uninitialised' | 'locked', version: string): string {
  const init = state === 'uninitialised';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ferry appliance — ${init ? 'set the passphrase' : 'locked'}</title>
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}#out{margin-top:1rem;min-height:1.5em}small{color:#57606a}</style></head>
<body><h1>Ferry appliance</h1>
${
  init
    ? `<p>This appliance is new. Choose the passphrase that encrypts everything it stores. It is asked for after every power-on and <strong>cannot be recovered</strong>: keep it with the shipment papers, not on the box.</p>`
    : `<p>The appliance is <strong>locked</strong>: its data is encrypted. Type the passphrase to unlock it.</p>`
}
<form id="f" data-mode="${init ? 'initialize' : 'unlock'}">
<label for="p">Passphrase</label><input id="p" type="password" autocomplete="${init ? 'new-password' : 'current-password'}" autofocus required>
${init ? '<label for="p2">Passphrase again</label><input id="p2" type="password" autocomplete="new-password" required><small>At least 12 characters; a few words are easy to type and hard to guess.</small>' : ''}
<button type="submit">${init ? 'Set passphrase and start' : 'Unlock'}</button></form>
<div id="out" role="status"></div>
<p><small>Ferry ${version.replace(/[^0-9A-Za-z.+-]/g, '')}</small></p>
<script>${PAGE_SCRIPT}</script></body></html>
`;
}
