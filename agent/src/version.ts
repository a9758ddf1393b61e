import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { isSea } from 'node:sea';
import type { AgentVersionInfo } from '@ferry/protocol';

// Set by the single-executable build (agent/sea/bundle.mjs): there is no package.json beside the executable.
declare const FERRY_AGENT_BUILD_VERSION: string | undefined;

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export const VERSION: string = typeof FERRY_AGENT_BUILD_VERSION === 'string' ? FERRY_AGENT_BUILD_VERSION : packageVersion();

/**
 * `ferry-agent version --json`: the version, and for the single executable the SHA-256 of the file itself, so
 * the appliance can tell an outdated copy on a source from its own (the build is deterministic).
 */
export async function versionInfo(): Promise<AgentVersionInfo> {
  if (!isSea()) return { version: VERSION, executable: process.argv[1] ?? process.execPath };
  const h = createHash('sha256');
  for await (const chunk of createReadStream(process.execPath)) h.update(chunk as Buffer);
  return { version: VERSION, executable: process.execPath, sha256: h.digest('hex') };
}
