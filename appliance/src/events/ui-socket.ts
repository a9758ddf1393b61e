import type { Logger } from 'pino';
import type { AuthService } from '../auth/service.js';
import type { JobService } from '../jobs/service.js';
import type { SessionSockets } from '../auth/session-sockets.js';
import { assertRole, type Role } from '../auth/roles.js';
import { replyOf } from '../http/reply.js';
import { socketAuth } from '../http/socket-auth.js';
import type { UiNamespace } from './ui-events.js';

/** The least role each /ui event needs (docs/api.md, Roles); the server's pushes go to every role. */
export const UI_EVENT_ROLES = { 'jobs.list': 'viewer' } as const satisfies Record<string, Role>;

/**
 * Browsers' live channel: an admin token, or the web UI's session cookie (socketAuth: own origin and the session's
 * CSRF token), then job events. A session's sockets are closed when the session ends (SessionSockets).
 */
export function uiSocket(nsp: UiNamespace, auth: AuthService, jobs: JobService, sessions: SessionSockets, log: Logger): void {
  nsp.use(
    socketAuth(auth, 'admin', (socket, p) => {
      socket.data = { role: p.kind === 'admin' ? p.role : 'viewer', sessionId: p.kind === 'admin' && 'sessionId' in p ? p.sessionId : null };
    }),
  );
  nsp.on('connection', (socket) => {
    const { role, sessionId } = socket.data as { role: Role; sessionId: number | null };
    if (sessionId !== null) {
      sessions.add(sessionId, socket);
      socket.on('disconnect', () => sessions.remove(sessionId, socket));
    }
    socket.on('jobs.list', (ack) => {
      void replyOf(log, 'jobs.list', () => {
        assertRole(role, UI_EVENT_ROLES['jobs.list']);
        return jobs.list();
      }).then(ack);
    });
  });
}
