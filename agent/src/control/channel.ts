import { io, type Socket } from 'socket.io-client';
import { AGENT_NAMESPACE, SOCKET_PATH, type AgentToServerEvents, type ApplianceClient, type ServerToAgentEvents } from '@ferry/protocol';

export type ControlSocket = Socket<ServerToAgentEvents, AgentToServerEvents>;

export const RECONNECT_DELAY_MAX_MS = 10_000;

/**
 * The agent's control connection to the appliance (socket.io over a websocket only: no long-polling fallback
 * to keep open). The websocket's TLS handshake goes through the client's pinning https.Agent — ws hands
 * `agent` to https.request, whose agent.createConnection checks the certificate fingerprint before the
 * upgrade request is written — so a server with another certificate never sees a byte, the credential
 * included. `token` is asked for at each (re)connect, so a re-enrolled credential is used without a restart.
 */
export function openControlChannel(appliance: string, client: ApplianceClient, token: () => string, autoConnect = true): ControlSocket {
  return io(new URL(AGENT_NAMESPACE, appliance).toString(), {
    path: SOCKET_PATH,
    transports: ['websocket'],
    // engine.io-client types `agent` as string | boolean for browser builds; in Node it is passed to ws as the
    // request agent (its own docs: "should be http.Agent | https.Agent | false").
    agent: client.httpsAgent as unknown as boolean,
    auth: (cb) => cb({ token: token() }),
    reconnection: true,
    reconnectionDelayMax: RECONNECT_DELAY_MAX_MS,
    autoConnect,
    // Never share a cached manager: it would keep the pinning agent and options of an earlier channel.
    forceNew: true,
  });
}
