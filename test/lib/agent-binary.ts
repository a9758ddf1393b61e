import { access } from 'node:fs/promises';
import path from 'node:path';
import { sh, ROOT } from './cli.js';

/** The agent as one executable, where the appliance looks for it by default (`make agent-binary`). */
export const AGENT_BINARY = path.join(ROOT, 'agent/out/ferry-agent');

let built: Promise<string> | null = null;

/** Builds the agent executable once per test process; make skips the work when its inputs did not change. */
export function ensureAgentBinary(): Promise<string> {
  built ??= (async () => {
    await sh('make', ['-C', ROOT, '--no-print-directory', 'agent-binary']);
    await access(AGENT_BINARY);
    return AGENT_BINARY;
  })();
  return built;
}
