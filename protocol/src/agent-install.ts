import { z } from 'zod';

/** Where the appliance serves the agent executable and its install script (outside /api/v1: no token). */
export const AGENT_DOWNLOAD_PATH = '/downloads/ferry-agent';
export const AGENT_INSTALL_SCRIPT_PATH = '/downloads/install.sh';
/** Response header of GET /downloads/ferry-agent: the executable's SHA-256, lowercase hex. */
export const AGENT_SHA256_HEADER = 'x-ferry-agent-sha256';
/** Response header of GET /downloads/ferry-agent: the agent version inside the executable. */
export const AGENT_VERSION_HEADER = 'x-ferry-agent-version';

export const CreateAgentInstallRequestSchema = z.strictObject({
  /** How long the enrollment token in the command stays valid (default: the appliance's enrollment TTL). */
  ttlHours: z.number().min(0.01).max(24 * 30).optional(),
});
export type CreateAgentInstallRequest = z.infer<typeof CreateAgentInstallRequestSchema>;

/** The one-line install command for a source, and what went into it. */
export interface AgentInstall {
  /** Paste on the source as root: downloads install.sh pinned to the certificate, runs it with the token. */
  command: string;
  /** The one-time enrollment token inside the command. */
  token: string;
  expiresAt: string;
  /** https://HOST:PORT as the request reached the appliance (its Host header). */
  applianceUrl: string;
  /** SHA256:AB:CD:… of the certificate, as agents pin it. */
  fingerprint: string;
  /** curl's --pinnedpubkey form of the same certificate: sha256//<base64 of the SHA-256 of its public key>. */
  pin: string;
  /** The executable the script installs. */
  agent: AgentBinaryInfo;
}

export interface AgentBinaryInfo {
  version: string;
  /** Lowercase hex SHA-256 of the file. */
  sha256: string;
  size: number;
}

/** `ferry-agent version --json`. sha256 is of the running executable; absent when not run as one. */
export interface AgentVersionInfo {
  version: string;
  executable: string;
  sha256?: string;
}
