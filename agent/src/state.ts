import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { FerryError } from '@ferry/protocol';

export const DEFAULT_STATE_DIR = '/var/lib/ferry-agent';

export const AgentStateSchema = z.strictObject({
  appliance: z.string().url(),
  fingerprint: z.string(),
  agentId: z.number().int(),
  sourceId: z.number().int(),
  credential: z.string(),
  enrolledAt: z.string(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

function stateFile(dir: string): string {
  return path.join(dir, 'agent.json');
}

/** The agent's enrollment: appliance URL, pinned fingerprint and its own credential (file mode 0600). */
export async function loadState(dir: string): Promise<AgentState> {
  let text: string;
  try {
    text = await readFile(stateFile(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FerryError('NOT_ENROLLED', `this agent is not enrolled (no ${stateFile(dir)})`);
    }
    throw err;
  }
  const parsed = AgentStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new FerryError('NOT_ENROLLED', `${stateFile(dir)} is damaged; enroll again`);
  return parsed.data;
}

export async function saveState(dir: string, state: AgentState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = stateFile(dir);
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(state, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}
