import { Router, type NextFunction, type Request, type Response } from 'express';
import { EnrollRequestSchema, FerryError } from '@ferry/protocol';
import { CSRF_HEADER, csrfMatches, fromOwnPages, sessionCookieOf } from './cookie.js';
import type { AuthService } from './service.js';
import { assertRole, type Role } from './roles.js';
import { json, parse } from '../http/reply.js';

export function enrollRoutes(auth: AuthService): Router {
  const r = Router();
  // The only route without a bearer token: the one-time enrollment token in the body authenticates it.
  r.post('/enroll', json((req) => auth.enroll(parse(EnrollRequestSchema, req.body))));
  return r;
}

export interface AccessPolicy {
  /** The least role a person needs for this request (relative path under /api/v1); null: no route has it. */
  roleFor(method: string, path: string): Role | null;
  /** An agent's request got through: remember its connection, so revoking the agent cuts it. */
  agentRequest(sourceId: number, req: Request): void;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Bearer token, or the web UI's session cookie. With the cookie, a state-changing request must come from the
 * appliance's own pages (Origin/Referer) and carry the session's CSRF token. A person's role is checked here
 * for every route at once (the table is ROUTES in http/openapi.ts, docs/api.md "Roles").
 */
export function authenticate(auth: AuthService, policy: AccessPolicy) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const cookie = req.headers.authorization ? null : sessionCookieOf(req.headers.cookie);
    const p = auth.authenticateRequest(req.headers.authorization, cookie);
    res.locals.principal = p;
    if (cookie && !SAFE_METHODS.has(req.method)) {
      if (!fromOwnPages(req.headers)) {
        throw new FerryError('CSRF_REJECTED', `a request from another site (${req.headers.origin ?? req.headers.referer}) may not use the web UI session`);
      }
      if (!csrfMatches(cookie, req.headers[CSRF_HEADER])) {
        throw new FerryError('CSRF_REJECTED', `a request made with the web UI session needs this session's ${CSRF_HEADER} header`);
      }
    }
    if (p.kind === 'admin') {
      const need = policy.roleFor(req.method, req.path);
      if (need) assertRole(p.role, need);
    } else if (p.kind === 'agent') {
      policy.agentRequest(p.sourceId, req);
    }
    next();
  };
}
