import { Router, type NextFunction, type Request, type Response } from 'express';
import { EnrollRequestSchema } from '@ferry/protocol';
import type { AuthService } from './service.js';
import { json, parse } from '../http/reply.js';

export function enrollRoutes(auth: AuthService): Router {
  const r = Router();
  // The only route without a bearer token: the one-time enrollment token in the body authenticates it.
  r.post('/enroll', json((req) => auth.enroll(parse(EnrollRequestSchema, req.body))));
  return r;
}

export function authenticate(auth: AuthService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.locals.principal = auth.authenticate(req.headers.authorization);
    next();
  };
}
