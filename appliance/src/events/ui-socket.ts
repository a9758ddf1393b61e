import type { Logger } from 'pino';
import type { AuthService } from '../auth/service.js';
import type { JobService } from '../jobs/service.js';
import { replyOf } from '../http/reply.js';
import { socketAuth } from '../http/socket-auth.js';
import type { UiNamespace } from './ui-events.js';

/** Browsers' live channel: an admin token, or the web UI's session cookie (socketAuth), then job events. */
export function uiSocket(nsp: UiNamespace, auth: AuthService, jobs: JobService, log: Logger): void {
  nsp.use(socketAuth(auth, 'admin', () => undefined));
  nsp.on('connection', (socket) => {
    socket.on('jobs.list', (ack) => {
      void replyOf(log, 'jobs.list', () => jobs.list()).then(ack);
    });
  });
}
