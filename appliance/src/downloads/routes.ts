import type { TLSSocket } from 'node:tls';
import { Router, type Request } from 'express';
import {
  AGENT_DOWNLOAD_PATH,
  AGENT_INSTALL_SCRIPT_PATH,
  AGENT_SHA256_HEADER,
  AGENT_VERSION_HEADER,
  CreateAgentInstallRequestSchema,
  FerryError,
  type AgentInstall,
} from '@ferry/protocol';
import type { AuthService } from '../auth/service.js';
import { json, parse } from '../http/reply.js';
import type { AgentDownloads } from './service.js';
import { certificatePins, type CertificatePins } from './service.js';
import { applianceUrlOf, INSTALLED_EXECUTABLE, installCommand, installScript } from './install-script.js';
import type { RestoreIso } from './restore-iso.js';

/** The pins of the certificate this very connection was served with, so the command matches what the source will see. */
function pinsOf(req: Request): CertificatePins {
  const raw = (req.socket as Partial<TLSSocket>).getCertificate?.();
  if (!raw || !('raw' in raw) || !Buffer.isBuffer(raw.raw)) {
    throw new FerryError('BAD_REQUEST', 'install commands are made only for requests over HTTPS (they pin the certificate the request came through)');
  }
  return certificatePins(raw.raw);
}

/**
 * GET /downloads/ferry-agent and /downloads/install.sh, outside /api/v1 and without a token: neither carries a
 * secret (the enrollment token is an argument of the script), and the source has no credential yet.
 */
export function downloadRoutes(downloads: AgentDownloads): Router {
  const r = Router();
  r.get(AGENT_DOWNLOAD_PATH, async (_req, res) => {
    const { path, info } = await downloads.binary();
    res.setHeader(AGENT_SHA256_HEADER, info.sha256);
    res.setHeader(AGENT_VERSION_HEADER, info.version);
    res.setHeader('Content-Disposition', 'attachment; filename="ferry-agent"');
    await new Promise<void>((resolve, reject) => {
      res.sendFile(path, { headers: { 'Content-Type': 'application/octet-stream' }, cacheControl: false }, (err) => (err ? reject(err) : resolve()));
    });
  });
  r.get(AGENT_INSTALL_SCRIPT_PATH, async (req, res) => {
    const applianceUrl = applianceUrlOf(req.headers.host);
    const pins = pinsOf(req);
    const { info } = await downloads.binary();
    const script = installScript({ applianceUrl, ...pins, agent: info, unit: await downloads.unit(INSTALLED_EXECUTABLE) });
    res.setHeader(AGENT_SHA256_HEADER, info.sha256);
    res.type('text/x-shellscript; charset=utf-8').setHeader('Cache-Control', 'no-store');
    res.send(script);
  });
  return r;
}

/** POST /api/v1/agent-installs: a fresh one-time token and the one-line install command that uses it. */
export function agentInstallRoutes(downloads: AgentDownloads, auth: AuthService): Router {
  const r = Router();
  r.post(
    '/agent-installs',
    json(async (req): Promise<AgentInstall> => {
      const body = parse(CreateAgentInstallRequestSchema, req.body ?? {});
      const applianceUrl = applianceUrlOf(req.headers.host);
      const pins = pinsOf(req);
      // Refuse before spending a token when there is nothing to install.
      const { info } = await downloads.binary();
      const { token, expiresAt } = auth.createEnrollToken(body.ttlHours);
      return { command: installCommand({ applianceUrl, pin: pins.pin, token }), token, expiresAt, applianceUrl, ...pins, agent: info };
    }),
  );
  return r;
}

/** Under /api/v1 (ROUTES in http/openapi.ts; the web UI links to it). */
export const RESTORE_ISO_DOWNLOAD_PATH = '/downloads/ferry-restore.iso';

/**
 * GET (and HEAD) /api/v1/downloads/ferry-restore.iso: the restore ISO, for an engineer's browser or curl. Inside
 * /api/v1, so it takes what every API route takes (a person's session cookie or an API token; any role): unlike the
 * agent, whoever boots a target VM is a person who is logged in. Ranges (206) let a cut download resume; ETag and
 * Last-Modified make a resume of a since-rebuilt ISO start over (If-Range) instead of mixing two builds.
 */
export function restoreIsoRoutes(iso: RestoreIso): Router {
  const r = Router();
  r.get(RESTORE_ISO_DOWNLOAD_PATH, async (req, res) => {
    const file = await iso.file();
    if (req.headers.range !== undefined && req.range(file.size) === -1) {
      res.setHeader('Content-Range', `bytes */${file.size}`);
      throw new FerryError('RANGE_NOT_SATISFIABLE', `the range ${req.headers.range} is outside the restore ISO, which has ${file.size} bytes (was it rebuilt since the download began?)`);
    }
    res.setHeader('Content-Disposition', 'attachment; filename="ferry-restore.iso"');
    await new Promise<void>((resolve, reject) => {
      res.sendFile(file.path, { headers: { 'Content-Type': 'application/x-iso9660-image' }, cacheControl: false }, (err?: Error & { code?: string }) => {
        // A browser that stops or pauses a download closes the connection: nothing to report.
        if (!err || err.code === 'ECONNABORTED' || err.code === 'ECONNRESET') resolve();
        else reject(err);
      });
    });
  });
  return r;
}
