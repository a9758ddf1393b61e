import {
  API_PREFIX,
  ApplianceClient,
  FerryError,
  type ProgressSink,
  type RestoreReport,
  type RestoreSession,
  type RestoreStep,
} from '@ferry/protocol';
import { restorePoint, type RestoreResult } from '../restore.js';

/** The restore ISO's side of a restore session: the code is exchanged for a credential scoped to this restore. */
export async function openRestoreSession(appliance: string, fingerprint: string, code: string): Promise<{ client: ApplianceClient; session: RestoreSession }> {
  const client = new ApplianceClient(appliance, fingerprint);
  try {
    const session = await client.json<RestoreSession>(`${API_PREFIX}/restore-sessions`, { method: 'POST', body: { code } });
    client.setAuth(session.token);
    return { client, session };
  } catch (err) {
    client.close();
    throw err;
  }
}

/**
 * Reports to the appliance what the restore does, for the UI. A report that cannot be sent is logged and
 * dropped: the restore itself must not stop because the appliance's UI missed a progress line.
 */
export class RestoreReporter {
  constructor(
    private readonly client: ApplianceClient,
    private readonly restoreId: number,
    private readonly log: (line: string) => void,
  ) {}

  async send(r: RestoreReport, required = false): Promise<void> {
    try {
      await this.client.json(`${API_PREFIX}/restores/${this.restoreId}/report`, { method: 'POST', body: r });
    } catch (err) {
      if (required) throw err;
      this.log(`could not report to the appliance (${(err as Error).message}); continuing`);
    }
  }

  step(step: RestoreStep): Promise<void> {
    return this.send({ phase: 'compatibility', step });
  }
}

export interface SessionRestoreOptions {
  client: ApplianceClient;
  session: RestoreSession;
  targets: string[];
  verify: boolean;
  progress?: ProgressSink | undefined;
  log: (line: string) => void;
}

/**
 * How long a restore keeps retrying while the link to the appliance is down, before it gives up (it can still be
 * resumed later with the same code). The agent's cycles wait as long before their job shows Suspended.
 */
export const LINK_RETRY_FOR_MS = 15 * 60_000;
const LINK_RETRY_MAX_PAUSE_MS = 15_000;

/** The link failed, not the restore: a reply never came or the connection broke. */
function linkFailure(err: unknown): boolean {
  return err instanceof FerryError && err.code === 'APPLIANCE_UNREACHABLE';
}

/**
 * Restores the session's point, resuming where a previous attempt stopped, and reports progress live. While the
 * link to the appliance is down it retries (for up to `retryForMs`), each time from the last block this machine
 * wrote and verified, so a cut link costs the engineer nothing but the wait.
 */
export async function restoreSession(opts: SessionRestoreOptions, reporter: RestoreReporter, retryForMs = LINK_RETRY_FOR_MS): Promise<RestoreResult> {
  const { session } = opts;
  if (session.targetDisks !== null && session.targetDisks !== opts.targets.length) {
    throw new FerryError(
      'TARGET_COUNT_MISMATCH',
      `the restore code was made for a target with ${session.targetDisks} disk(s), but this machine has ${opts.targets.length}; nothing was written`,
    );
  }
  await reporter.send({ phase: 'writing', progress: { bytesDone: 0, bytesTotal: 0, disk: null, message: 'starting' } });
  // What this machine has written and verified: ahead of the appliance's record when a report was lost.
  let verified = session.verified;
  let downSince: number | null = null;
  let pauseMs = 1000;
  for (;;) {
    try {
      const result = await restorePoint({
        client: opts.client,
        pointId: session.point.id,
        targets: opts.targets,
        verify: opts.verify,
        progress: opts.progress,
        log: opts.log,
        resumeFrom: verified,
        // Durable on the appliance before the next range: that is what makes resuming in a later run safe.
        onVerified: (v) => {
          verified = v;
          downSince = null;
          pauseMs = 1000;
          return reporter.send({ phase: 'writing', verified: v });
        },
        onProgress: (p) => {
          void reporter.send({ phase: 'writing', progress: { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, disk: p.disk, message: null } });
        },
      });
      // The appliance may have missed the last positions while the link was down.
      await reporter.send({ phase: 'writing', verified });
      return result;
    } catch (err) {
      downSince ??= Date.now();
      if (linkFailure(err) && Date.now() - downSince < retryForMs) {
        const at = verified.map((v) => `disk ${v.slot + 1} at block ${v.nextBlock}`).join(', ');
        opts.log(`the link to the appliance failed (${(err as Error).message}); retrying in ${Math.round(pauseMs / 1000)} s, then continuing from the last verified block${at ? ` (${at})` : ''}`);
        await new Promise((r) => setTimeout(r, pauseMs));
        pauseMs = Math.min(pauseMs * 2, LINK_RETRY_MAX_PAUSE_MS);
        continue;
      }
      const fe = err instanceof FerryError ? err : null;
      const gaveUp = linkFailure(err) ? ` (the link stayed down for ${Math.round((Date.now() - downSince) / 60_000)} min; check the network, then run the restore again with the same code: it resumes)` : '';
      await reporter.send({ phase: 'failed', error: { code: fe?.code ?? 'INTERNAL', message: `${(err as Error).message}${gaveUp}` } });
      throw gaveUp && fe ? new FerryError(fe.code, `${fe.message}${gaveUp}`, { cause: err }) : err;
    }
  }
}
