/** The appliance's REST API from the browser: same origin, the session cookie is the credential. */
export const API = '/api/v1';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string | null,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The session's CSRF token (from /session, /login, /setup), sent with every state-changing request. */
let csrf: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrf = token;
}

export function csrfToken(): string | null {
  return csrf;
}

type Listener = () => void;
const authLost = new Set<Listener>();

/** Called when the appliance says the session is gone (expired, ended on another tab, user deleted). */
export function onAuthLost(fn: Listener): () => void {
  authLost.add(fn);
  return () => authLost.delete(fn);
}

export async function api<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(API + path, {
      method,
      credentials: 'same-origin',
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(method !== 'GET' && csrf ? { 'x-ferry-csrf': csrf } : {}),
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError('APPLIANCE_UNREACHABLE', `the appliance did not answer (${(err as Error).message})`, null, 0);
  }
  return replyOf<T>(res);
}

/** The data of a JSON reply, or its error as an ApiError. */
async function replyOf<T>(res: Response): Promise<T> {
  let reply: { ok: true; data: T } | { ok: false; code: string; message: string; hint?: string };
  try {
    reply = (await res.json()) as typeof reply;
  } catch {
    throw new ApiError('INTERNAL', `the appliance answered HTTP ${res.status} without a JSON body`, null, res.status);
  }
  if (!reply.ok) {
    if (reply.code === 'AUTH_INVALID' || reply.code === 'AUTH_REQUIRED') for (const fn of authLost) fn();
    throw new ApiError(reply.code, reply.message, reply.hint ?? null, res.status);
  }
  return reply.data;
}

/**
 * The size in bytes of a file the API serves (HEAD), or the appliance's error for it: a HEAD reply has no body, so
 * the error is read from a GET of the first byte (never the whole file, should it have appeared in between).
 */
export async function downloadSize(path: string): Promise<number> {
  try {
    const head = await fetch(API + path, { method: 'HEAD', credentials: 'same-origin' });
    const size = Number(head.headers.get('content-length'));
    if (head.ok && Number.isSafeInteger(size)) return size;
    const res = await fetch(API + path, { credentials: 'same-origin', headers: { range: 'bytes=0-0' } });
    if (res.ok) {
      await res.body?.cancel();
      throw new ApiError('INTERNAL', `the appliance answered HEAD ${path} with HTTP ${head.status} but serves the file`, null, head.status);
    }
    return await replyOf<never>(res);
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError('APPLIANCE_UNREACHABLE', `the appliance did not answer (${(err as Error).message})`, null, 0);
  }
}

export const get = <T>(path: string): Promise<T> => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown): Promise<T> => api<T>('POST', path, body ?? {});
