import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { AgentStateSchema, type AgentState } from '../state.js';
import type { Log } from './log.js';

/** How long a replaced agent gets to wind its cycle down (the appliance keeps its acknowledged blocks). */
const REPLACE_GRACE_MS = 25_000;

/**
 * A passive source's agent gets its enrollment from the appliance as the first line on stdin, so nothing
 * secret is stored on the source. The appliance keeps stdin open for as long as it wants the agent to run:
 * `closed` resolves when the SSH channel ends (the appliance went away, or stops the agent).
 */
export async function readPassiveEnrollment(input: NodeJS.ReadableStream): Promise<{ state: AgentState; closed: Promise<string> }> {
  let buffered = '';
  let line: string | null = null;
  const closed = new Promise<string>((resolve) => {
    input.once('end', () => resolve('the appliance closed the SSH session'));
    input.once('error', (err: Error) => resolve(`the SSH session broke (${err.message})`));
  });
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer | string): void => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl === -1) {
        if (buffered.length > 64 * 1024) reject(new FerryError('NOT_ENROLLED', 'the enrollment on stdin is longer than 64 KiB'));
        return;
      }
      line = buffered.slice(0, nl);
      input.off('data', onData);
      resolve();
    };
    input.on('data', onData);
    void closed.then(() => reject(new FerryError('NOT_ENROLLED', 'stdin ended before the appliance sent the enrollment; `ferry-agent passive` is started by the appliance, not by hand')));
  });
  // Keep reading (and discarding) so the end of the stream is seen.
  input.on('data', () => undefined);
  let parsed: unknown;
  try {
    parsed = JSON.parse(line ?? '');
  } catch {
    throw new FerryError('NOT_ENROLLED', 'the enrollment on stdin is not JSON');
  }
  const state = AgentStateSchema.safeParse(parsed);
  if (!state.success) throw new FerryError('NOT_ENROLLED', `the enrollment on stdin is not valid: ${state.error.issues[0]?.message ?? 'unknown problem'}`);
  return { state: state.data, closed };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A broken SSH link can leave the previous passive agent running on the source until sshd notices. Before
 * starting, stop it (if the pid file names a live ferry-agent) and record our own pid.
 */
export async function replacePrevious(pidFile: string, log: Log): Promise<void> {
  const old = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
  if (Number.isInteger(old) && old > 1 && old !== process.pid && alive(old)) {
    const cmdline = await readFile(`/proc/${old}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('passive')) {
      log(`stopping the previous passive agent (pid ${old}) left by an earlier SSH session`);
      process.kill(old, 'SIGTERM');
      const deadline = Date.now() + REPLACE_GRACE_MS;
      while (alive(old) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (alive(old)) process.kill(old, 'SIGKILL');
    }
  }
  await mkdir(path.dirname(pidFile), { recursive: true, mode: 0o700 });
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 });
}
