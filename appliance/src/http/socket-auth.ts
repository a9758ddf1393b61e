import type { Socket } from 'socket.io';
import { FerryError } from '@ferry/protocol';
import type { AuthService, Principal } from '../auth/service.js';
import { csrfMatches, fromOwnPages, sessionCookieOf } from '../auth/cookie.js';

/**
 * socket.io handshake check: the credential travels as `auth: { token }`, or, from a browser logged in to the web
 * UI, as the session cookie (accepted only from the appliance's own pages). A refusal carries the error code and
 * hint in `data`, like an HTTP error reply, so the client can say what to do.
 */
export function socketAuth(auth: AuthService, kind: Principal['kind'], accept: (socket: Socket, p: Principal) => void) {
  return (socket: Socket, next: (err?: Error) => void): void => {
    try {
      const { token, csrf } = socket.handshake.auth as { token?: unknown; csrf?: unknown };
      const cookie = typeof token === 'string' ? null : sessionCookieOf(socket.handshake.headers.cookie);
      if (cookie && !fromOwnPages(socket.handshake.headers)) {
        throw new FerryError('CSRF_REJECTED', `a page from another site (${socket.handshake.headers.origin ?? socket.handshake.headers.referer}) may not use the web UI session`);
      }
      const p = cookie ? auth.authenticateSession(cookie) : auth.authenticate(typeof token === 'string' ? `Bearer ${token}` : undefined);
      // A WebSocket is not bound by the same-origin policy: the session's CSRF token proves the page is ours.
      if (cookie && !csrfMatches(cookie, csrf)) throw new FerryError('CSRF_REJECTED', 'the web UI socket needs auth.csrf, the CSRF token of this session');
      if (p.kind !== kind) throw new FerryError('FORBIDDEN', `this channel takes an ${kind} credential`);
      accept(socket, p);
      next();
    } catch (err) {
      const fe = err instanceof FerryError ? err : new FerryError('AUTH_INVALID', 'the credential was refused');
      next(Object.assign(new Error(fe.message), { data: { code: fe.code, hint: fe.hint } }));
    }
  };
}
