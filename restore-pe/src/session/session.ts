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

/** Restores the session's point, resuming where a previous attempt stopped, and reports progress live. */
export async function restoreSession(opts: SessionRestoreOptions, reporter: RestoreReporter): Promise<RestoreResult> {
  const { session } = opts;
  if (session.targetDisks !== null && session.targetDisks !== opts.targets.length) {
    throw new FerryError(
      'TARGET_COUNT_MISMATCH',
      `the restore code was made for a target with ${session.targetDisks} disk(s), but this machine has ${opts.targets.length}; nothing was written`,
    );
  }
  await reporter.send({ phase: 'writing', progress: { bytesDone: 0, bytesTotal: 0, disk: null, message: 'starting' } });
  try {
    return await restorePoint({
      client: opts.client,
      pointId: session.point.id,
      targets: opts.targets,
      verify: opts.verify,
      progress: opts.progress,
      log: opts.log,
      resumeFrom: session.verified,
      // Durable on the appliance before the next range: that is what makes resuming safe.
      onVerified: (verified) => reporter.send({ phase: 'writing', verified }),
      onProgress: (p) => {
        void reporter.send({ phase: 'writing', progress: { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, disk: p.disk, message: null } });
      },
    });
  } catch (err) {
    const fe = err instanceof FerryError ? err : null;
    await reporter.send({ phase: 'failed', error: { code: fe?.code ?? 'INTERNAL', message: (err as Error).message } });
    throw err;
  }
}
