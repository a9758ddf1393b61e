import { Router, type NextFunction, type Request, type Response } from 'express';
import { EnrollRequestSchema, FerryError } from '@ferry/protocol';
import { CSRF_HEADER, csrfMatches, fromOwnPages, sessionCookieOf } from './cookie.js';
import type { AuthService, Principal } from './service.js';
import { assertRole } from './roles.js';
import { json, parse } from '../http/reply.js';
import type { RouteRule } from '../http/policy.js';
import type { Credential } from '../http/openapi.js';

export function enrollRoutes(auth: AuthService): Router {
  const r = Router();
  // The only route without a bearer token: the one-time enrollment token in the body authenticates it.
  r.post('/enroll', json((req) => auth.enroll(parse(EnrollRequestSchema, req.body))));
  return r;
}

export interface AccessPolicy {
  /** Who may call this request's route and the least role (relative path under /api/v1); null: no route has it. */
  ruleFor(method: string, path: string): RouteRule | null;
  /** An agent's request got through: remember its connection, so revoking the agent cuts it. */
  agentRequest(sourceId: number, req: Request): void;
}

/** Which principals each credential kind of ROUTES lets in. */
const ADMITS: Record<Credential, readonly Principal['kind'][]> = {
  none: ['admin', 'agent', 'restore'],
  any: ['admin', 'agent', 'restore'],
  admin: ['admin'],
  agent: ['agent'],
  'admin-or-agent': ['admin', 'agent'],
  'admin-or-restore': ['admin', 'restore'],
};

const KIND_NAME: Record<Principal['kind'], string> = {
  admin: 'a web UI session or admin API token',
  agent: "an agent's credential",
  restore: "a restore ISO's session",
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Bearer token, or the web UI's session cookie. With the cookie, a state-changing request must come from the
 * appliance's own pages (Origin/Referer) and carry the session's CSRF token. A person's role is checked here
 * for every route at once, and so is the kind of credential (an agent's may not use a person's route), from one table:
 * ROUTES in http/openapi.ts (docs/api.md "Roles").
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
    const rule = policy.ruleFor(req.method, req.path);
    // No route has it: nothing past this point may answer, whatever a router would match.
    if (!rule) throw new FerryError('NOT_FOUND', `no such API route: ${req.method} ${req.baseUrl}${req.path}`);
    if (!ADMITS[rule.credential].includes(p.kind)) {
      const allowed = ADMITS[rule.credential].map((k) => KIND_NAME[k]).join(' or ');
      throw new FerryError('FORBIDDEN', `${req.method} ${req.baseUrl}${req.path} needs ${allowed}; ${KIND_NAME[p.kind]} may not use it`);
    }
    if (p.kind === 'admin') {
      if (rule.role) assertRole(p.role, rule.role);
    } else if (p.kind === 'agent') {
      policy.agentRequest(p.sourceId, req);
    }
    next();
  };
}
