import { Router, type Request, type Response } from 'express';
import { FerryError } from '@ferry/protocol';
import { assertAdmin, type AuthService, type Principal } from '../auth/service.js';
import { clearSessionCookie, CSRF_HEADER, csrfMatches, csrfTokenOf, fromOwnPages, sessionCookieOf, setSessionCookie } from '../auth/cookie.js';
import { intParam, json, parse, principal } from '../http/reply.js';
import type { UiServices } from './build.js';
import type { BrowserSession, LoginResult } from './users.js';
import {
  CreateUserRequestSchema,
  LoginRequestSchema,
  SetPasswordRequestSchema,
  SetRoleRequestSchema,
  SettingsRequestSchema,
  SetupRequestSchema,
  type SessionInfo,
} from './types.js';

function browserSession(p: Principal): BrowserSession | null {
  return p.kind === 'admin' && 'sessionId' in p ? { userId: p.userId, sessionId: p.sessionId } : null;
}

function assertSameOrigin(req: Request): void {
  if (!fromOwnPages(req.headers)) {
    throw new FerryError('CSRF_REJECTED', `a request from another site (${req.headers.origin ?? req.headers.referer}) may not log in or out here`);
  }
}

/** First start, login and logout: before any credential exists, so mounted ahead of the bearer check. */
export function uiSessionRoutes(ui: UiServices, auth: AuthService): Router {
  const r = Router();
  const current = (req: Request): BrowserSession | null => {
    const cookie = sessionCookieOf(req.headers.cookie);
    if (!cookie) return null;
    try {
      return browserSession(auth.authenticateSession(cookie));
    } catch {
      return null;
    }
  };
  const opened = (res: Response, result: LoginResult): SessionInfo => {
    res.setHeader('Set-Cookie', setSessionCookie(result.token, result.maxAgeSeconds));
    return { setupRequired: false, user: result.user, csrfToken: csrfTokenOf(result.token) };
  };
  r.get(
    '/session',
    json((req) => {
      const s = current(req);
      return { ...ui.users.info(s), csrfToken: s ? csrfTokenOf(sessionCookieOf(req.headers.cookie)!) : null };
    }),
  );
  r.post(
    '/setup',
    json(async (req, res) => {
      assertSameOrigin(req);
      const body = parse(SetupRequestSchema, req.body);
      return opened(res, await ui.users.setup(body.username, body.password));
    }),
  );
  r.post(
    '/login',
    json(async (req, res) => {
      assertSameOrigin(req);
      const body = parse(LoginRequestSchema, req.body);
      // The session this browser had before (if any) ends: a login never keeps a session id from before it.
      return opened(res, await ui.users.login(body.username, body.password, req.socket.remoteAddress ?? 'unknown', current(req)));
    }),
  );
  r.post(
    '/logout',
    json((req, res) => {
      assertSameOrigin(req);
      const s = current(req);
      if (s && !csrfMatches(sessionCookieOf(req.headers.cookie)!, req.headers[CSRF_HEADER])) {
        throw new FerryError('CSRF_REJECTED', `logging out with the session cookie needs the ${CSRF_HEADER} header of this session`);
      }
      if (s) ui.users.logout(s);
      res.setHeader('Set-Cookie', clearSessionCookie());
      return { loggedOut: s !== null };
    }),
  );
  return r;
}

/** The web UI's admin routes: users, settings, dashboard, storage verify. */
export function uiRoutes(ui: UiServices): Router {
  const r = Router();
  const admin = (_req: Request, res: Response, next: () => void): void => {
    assertAdmin(principal(res));
    next();
  };
  r.use(['/dashboard', '/users', '/settings', '/storage/verify'], admin);
  const userId = (v: unknown): number => intParam(v, 'user id');
  r.get(
    '/dashboard',
    json(() => ui.dashboard.summary()),
  );
  r.get(
    '/users',
    json(() => ui.users.list()),
  );
  r.post(
    '/users',
    json((req) => {
      const body = parse(CreateUserRequestSchema, req.body);
      return ui.users.create(body.username, body.password, body.role);
    }),
  );
  r.put(
    '/users/:id/role',
    json((req) => ui.users.setRole(userId(req.params.id), parse(SetRoleRequestSchema, req.body).role)),
  );
  r.put(
    '/users/:id/password',
    json((req, res) => ui.users.setPassword(userId(req.params.id), parse(SetPasswordRequestSchema, req.body).password, browserSession(principal(res)))),
  );
  r.delete(
    '/users/:id',
    json((req) => ui.users.delete(userId(req.params.id))),
  );
  r.get(
    '/settings',
    json(() => ui.settings.get()),
  );
  r.put(
    '/settings',
    json((req) => ui.settings.set(parse(SettingsRequestSchema, req.body))),
  );
  r.get(
    '/storage/verify',
    json(() => ui.verifyRuns.status()),
  );
  r.post(
    '/storage/verify',
    json(() => ui.verifyRuns.start()),
  );
  return r;
}
