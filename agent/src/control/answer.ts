import { FerryError, type Reply } from '@ferry/protocol';
import { ZodError } from 'zod';

const AGENT_BUG_HINT = 'This is a bug in the agent: its log (journalctl -u ferry-agent) has the details; please report it.';

/**
 * The reply to one command from the appliance, in the one shape of every reply: a FerryError keeps its code
 * and hint, a schema failure is BAD_REQUEST, anything else is INTERNAL and handed to `onBug` for the log.
 */
export async function replyTo<T>(fn: () => T | Promise<T>, onBug: (err: unknown) => void): Promise<Reply<T>> {
  try {
    return { ok: true, data: await fn() };
  } catch (err) {
    if (err instanceof FerryError) return { ok: false, code: err.code, message: err.message, hint: err.hint };
    if (err instanceof ZodError) {
      const issues = err.issues.map((i) => `${i.path.join('.') || '(command)'}: ${i.message}`).join('; ');
      const bad = new FerryError('BAD_REQUEST', `the agent cannot use this command: ${issues}`);
      return { ok: false, code: bad.code, message: bad.message, hint: bad.hint };
    }
    onBug(err);
    return { ok: false, code: 'INTERNAL', message: `the agent failed: ${err instanceof Error ? err.message : String(err)}`, hint: AGENT_BUG_HINT };
  }
}

/**
 * Runs a command handler and acknowledges with its reply. Never rejects, so socket handlers may detach it
 * with `void`; an event sent without an acknowledgement callback still runs.
 */
export async function answer<T>(ack: unknown, fn: () => T | Promise<T>, onBug: (err: unknown) => void): Promise<void> {
  const reply = await replyTo(fn, onBug);
  if (typeof ack !== 'function') return;
  try {
    (ack as (r: Reply<T>) => void)(reply);
  } catch (err) {
    onBug(err);
  }
}
