import type { NextFunction, Request, Response } from 'express';
import { ERRORS, FerryError, type Reply } from '@ferry/protocol';
import { ZodError, type ZodType } from 'zod';
import type { Logger } from 'pino';
import { diskFullOr } from '../faults.js';
import type { Principal } from '../auth/service.js';

/** Wraps a route so its result becomes `{ ok: true, data }` and any throw goes to the one error handler. */
export function json<T>(fn: (req: Request, res: Response) => T | Promise<T>) {
  return async (req: Request, res: Response): Promise<void> => {
    const data = await fn(req, res);
    const reply: Reply<T> = { ok: true, data };
    res.json(reply);
  };
}

export function parse<T>(schema: ZodType<T>, value: unknown): T {
  return schema.parse(value);
}

/** Route ids are positive integers; anything else (../, NUL, huge numbers) is refused before any lookup. */
export function intParam(value: unknown, name: string): number {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,14}$/.test(value)) {
    throw new FerryError('BAD_REQUEST', `${name} must be a positive integer, got "${String(value).slice(0, 40)}"`);
  }
  return Number(value);
}

export function principal(res: Response): Principal {
  return res.locals.principal as Principal;
}

function toFerryError(err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  if (err instanceof ZodError) {
    const issues = err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    return new FerryError('BAD_REQUEST', `invalid request: ${issues}`);
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e.type === 'entity.too.large') return new FerryError('PAYLOAD_TOO_LARGE', 'the request body is too large');
  if (e.type === 'entity.parse.failed' || e.type === 'request.size.invalid' || e.type === 'request.aborted') {
    return new FerryError('BAD_REQUEST', `the request body could not be read: ${e.message ?? e.type}`);
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new FerryError('BAD_REQUEST', e.message ?? 'bad request');
  // Any route that writes (a cycle's start creates its index files) can meet a full data directory.
  const full = diskFullOr(err);
  if (full instanceof FerryError) return full;
  // The client went away mid-request (a link that dropped, an agent that stopped): its problem, not a bug.
  const code = (err as NodeJS.ErrnoException).code;
  if (e.message === 'aborted' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new FerryError('BAD_REQUEST', `the client broke off the request (${code ?? e.message}); it resumes from its last acknowledged block`);
  }
  return new FerryError('INTERNAL', 'internal error: this is a bug; the appliance log has the details', { cause: err });
}

/** The reply of a socket.io event handler: one shape for every event, errors logged like HTTP ones. */
export async function replyOf<T>(log: Logger, event: string, fn: () => T | Promise<T>): Promise<Reply<T>> {
  try {
    return { ok: true, data: await fn() };
  } catch (err) {
    const fe = toFerryError(err);
    if (fe.code === 'INTERNAL' || !ERRORS[fe.code].user) log.error({ err, event }, fe.message);
    else log.warn({ code: fe.code, event }, fe.message);
    return { ok: false, code: fe.code, message: fe.message, hint: fe.hint };
  }
}

export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const fe = toFerryError(err);
    if (fe.code === 'INTERNAL' || !ERRORS[fe.code].user) log.error({ err, method: req.method, url: req.originalUrl }, fe.message);
    else log.warn({ code: fe.code, method: req.method, url: req.originalUrl }, fe.message);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const reply: Reply<never> = { ok: false, code: fe.code, message: fe.message, hint: fe.hint };
    res.locals.errorCode = fe.code;
    // A request refused before its body was read (an upload that met a full disk): the rest of the body is never
    // read, so the connection cannot carry another request. Closing it keeps the client from reusing it, where
    // its next request (the retried cycle) would fail with ECONNRESET.
    if (!req.complete) res.set('Connection', 'close');
    res.status(fe.status || 500).json(reply);
  };
}
