import type { Namespace } from 'socket.io';
import {
  AgentHelloSchema,
  CycleFailedReportSchema,
  CycleProgressReportSchema,
  CycleStoppedReportSchema,
  CycleLogReportSchema,
  type AgentToServerEvents,
  type ServerToAgentEvents,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import type { AuthService } from '../auth/service.js';
import type { JobService } from '../jobs/service.js';
import { replyOf } from '../http/reply.js';
import { socketAuth } from '../http/socket-auth.js';
import type { AgentHub, AgentSocket, AgentSocketData } from './hub.js';

export type AgentNamespace = Namespace<AgentToServerEvents, ServerToAgentEvents, Record<string, never>, AgentSocketData>;

/** The agents' control channel: each agent authenticates with its own credential and sees only its source. */
export function agentSocket(nsp: AgentNamespace, auth: AuthService, hub: AgentHub, jobs: JobService, log: Logger): void {
  nsp.use(
    socketAuth(auth, 'agent', (socket, p) => {
      if (p.kind === 'agent') (socket as AgentSocket).data = { sourceId: p.sourceId, agentId: p.agentId };
    }),
  );

  nsp.on('connection', (socket: AgentSocket) => {
    const { sourceId, agentId } = socket.data;
    const previous = hub.attach(socket);
    previous?.disconnect(true);
    log.info({ sourceId, agentId }, 'agent connected');

    socket.on('agent.hello', (hello, ack) => {
      void replyOf(log, 'agent.hello', () => {
        const h = AgentHelloSchema.parse(hello);
        jobs.agentConnected(sourceId, h.busyJobId);
        return { sourceId };
      }).then(ack);
    });
    socket.on('cycle.progress', (report) => {
      const r = CycleProgressReportSchema.safeParse(report);
      if (r.success) jobs.cycleProgress(sourceId, r.data);
      else log.warn({ sourceId, issues: r.error.issues.slice(0, 3) }, 'ignored a malformed progress report');
    });
    socket.on('cycle.failed', (report, ack) => {
      void replyOf(log, 'cycle.failed', () => {
        jobs.cycleFailed(sourceId, CycleFailedReportSchema.parse(report));
        return null;
      }).then(ack);
    });
    socket.on('cycle.stopped', (report, ack) => {
      void replyOf(log, 'cycle.stopped', () => {
        jobs.cycleStopped(sourceId, CycleStoppedReportSchema.parse(report));
        return null;
      }).then(ack);
    });
    socket.on('cycle.log', (report) => {
      const r = CycleLogReportSchema.safeParse(report);
      if (r.success) jobs.cycleLog(sourceId, r.data);
      else log.warn({ sourceId, issues: r.error.issues.slice(0, 3) }, 'ignored a malformed cycle log line');
    });
    socket.on('disconnect', (reason) => {
      log.info({ sourceId, agentId, reason }, 'agent disconnected');
      if (hub.detach(socket)) jobs.agentDisconnected(sourceId);
    });
  });
}
