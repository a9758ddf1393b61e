import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_BLOCK_SIZE, DEFAULT_PORT, FerryError, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '@ferry/protocol';

const ConfigSchema = z.strictObject({
  dataDir: z.string().min(1),
  listenHost: z.string().min(1),
  // Port 0 asks the kernel for a free port (tests); the chosen port is printed at start.
  listenPort: z.number().int().min(0).max(65535),
  blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE).multipleOf(4096),
  enrollTokenTtlHours: z.number().min(0.01).max(24 * 30),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']),
  /** A job whose agent stays unreachable longer than this is Suspended (15 minutes; tests scale it down). */
  suspendAfterSeconds: z.number().min(1).max(7 * 24 * 3600),
  /** The agent executable served at /downloads/ferry-agent (`make agent-binary`). */
  agentBinary: z.string().min(1),
  /** The restore ISO served at /api/v1/downloads/ferry-restore.iso (`make iso`). */
  restoreIso: z.string().min(1),
});
export type Config = Readonly<z.infer<typeof ConfigSchema>>;

export const DEFAULT_DATA_DIR = '/var/lib/ferry-appliance';
/** Where `make agent-binary` writes the agent executable, in the checkout the appliance runs from. */
export const DEFAULT_AGENT_BINARY = fileURLToPath(new URL('../../agent/out/ferry-agent', import.meta.url));
/** Where `make iso` writes the restore ISO, in the checkout the appliance runs from. */
export const DEFAULT_RESTORE_ISO = fileURLToPath(new URL('../../iso/out/ferry-restore.iso', import.meta.url));

/** Flags win over FERRY_* environment variables, which win over defaults. */
export interface ConfigInput {
  data?: string | undefined;
  listen?: string | undefined;
  blockSize?: string | undefined;
  logLevel?: string | undefined;
  suspendAfter?: string | undefined;
}

function splitListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) return { host: listen, port: Number.NaN };
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

/** Loads the configuration once; every bad setting is reported together, then it is frozen. */
export function loadConfig(flags: ConfigInput, env: NodeJS.ProcessEnv = process.env): Config {
  const listen = flags.listen ?? env.FERRY_LISTEN ?? `0.0.0.0:${DEFAULT_PORT}`;
  const { host, port } = splitListen(listen);
  const raw = {
    dataDir: flags.data ?? env.FERRY_DATA ?? DEFAULT_DATA_DIR,
    listenHost: host,
    listenPort: port,
    blockSize: Number(flags.blockSize ?? env.FERRY_BLOCK_SIZE ?? DEFAULT_BLOCK_SIZE),
    enrollTokenTtlHours: Number(env.FERRY_ENROLL_TOKEN_TTL_HOURS ?? 24),
    logLevel: flags.logLevel ?? env.FERRY_LOG_LEVEL ?? 'info',
    suspendAfterSeconds: Number(flags.suspendAfter ?? env.FERRY_SUSPEND_AFTER_SECONDS ?? 900),
    agentBinary: path.resolve(env.FERRY_AGENT_BINARY || DEFAULT_AGENT_BINARY),
    restoreIso: path.resolve(env.FERRY_RESTORE_ISO || DEFAULT_RESTORE_ISO),
  };
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const given = (key: string): string => (key.startsWith('listen') ? `listen "${listen}"` : JSON.stringify((raw as Record<string, unknown>)[key]));
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message} (got ${given(String(i.path[0]))})`);
    throw new FerryError('CONFIG_INVALID', `invalid configuration:\n${lines.join('\n')}`);
  }
  return Object.freeze(parsed.data);
}
