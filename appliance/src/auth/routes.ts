import { Router, type NextFunction, type Request, type Response } from 'express';
import { EnrollRequestSchema, FerryError } from '@ferry/protocol';
import { sameOrigin, sessionCookieOf } from './cookie.js';
import type { AuthService } from './service.js';
import { json, parse } from '../http/reply.js';

export function enrollRoutes(auth: AuthService): Router {
  const r = Router();
  // The only route without a bearer token: the one-time enrollment token in the body authenticates it.
  r.post('/enroll', json((req) => auth.enroll(parse(EnrollRequestSchema, req.body))));
  return r;
}

/** Bearer token, or the web UI's session cookie (then only from the appliance's own pages). */
export function authenticate(auth: AuthService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const cookie = req.headers.authorization ? null : sessionCookieOf(req.headers.cookie);
    if (cookie && req.method !== 'GET' && req.method !== 'HEAD' && !sameOrigin(req.headers.origin, req.headers.host)) {
      throw new FerryError('FORBIDDEN', `a request from another site (${req.headers.origin}) may not use the web UI session`);
    }
    res.locals.principal = auth.authenticateRequest(req.headers.authorization, cookie);
    next();
  };
}
