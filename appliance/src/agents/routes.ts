import { Router } from 'express';
import { FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import type { AuthService } from '../auth/service.js';
import { intParam, json } from '../http/reply.js';
import type { AgentHub } from './hub.js';

export interface AgentRevocation {
  sourceId: number;
  /** Credentials revoked by this call. */
  revoked: number;
  /** The agent's control connection was open and has been closed. */
  wasOnline: boolean;
}

export interface ReEnrollToken {
  sourceId: number;
  token: string;
  expiresAt: string;
}

/** Per-agent credentials: revoke (the agent is cut off at once) and re-enroll (a one-time token bound to the source). */
export function agentCredentialRoutes(auth: AuthService, hub: AgentHub, log: Logger): Router {
  const r = Router();
  r.post(
    '/sources/:id/revoke-agent',
    json((req): AgentRevocation => {
      const sourceId = intParam(req.params.id, 'source id');
      const revoked = auth.revokeAgents(sourceId);
      const wasOnline = hub.online(sourceId);
      // Cut even when nothing was live: a connection authenticated a moment before must not outlive the revocation.
      hub.disconnect(sourceId);
      if (revoked === 0) throw new FerryError('AGENT_REVOKED', `source ${sourceId} has no live agent credential`);
      log.warn({ sourceId, revoked, wasOnline }, 'agent credential revoked');
      return { sourceId, revoked, wasOnline };
    }),
  );
  r.post(
    '/sources/:id/enroll-token',
    json((req): ReEnrollToken => {
      const sourceId = intParam(req.params.id, 'source id');
      return { sourceId, ...auth.createEnrollToken(undefined, sourceId) };
    }),
  );
  return r;
}
