import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The web UI's session cookie. HttpOnly (scripts cannot read it), Secure (HTTPS only), SameSite=Strict (other
 * sites cannot make the browser send it), Path=/ (the API and the socket.io endpoint both see it).
 */
export const SESSION_COOKIE = 'ferry_session';

export function sessionCookieOf(cookieHeader: string | undefined): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

export function setSessionCookie(token: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Strict`;
}

export function clearSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
}

/**
 * A request carrying the cookie must come from the appliance's own pages: a browser always sends Origin on
 * cross-site requests (and on same-origin POSTs), so a different one is refused. SameSite=Strict already keeps
 * the cookie off cross-site requests; this is the second lock, the CSRF header (csrfTokenOf) the third.
 */
export function sameOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (!origin) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Origin, or when a browser left it out (same-origin GETs, such as socket.io's polling), Referer, names this host. */
export function fromOwnPages(headers: { origin?: string | undefined; referer?: string | undefined; host?: string | undefined }): boolean {
  if (headers.origin) return sameOrigin(headers.origin, headers.host);
  if (headers.referer) return sameOrigin(headers.referer, headers.host);
  return true;
}

/** The header the web UI sends with every state-changing request, and as socket.io `auth.csrf`. */
export const CSRF_HEADER = 'x-ferry-csrf';

/**
 * The per-session CSRF token: derived from the session cookie (so nothing more is stored), handed to the page in
 * the session info, which another site cannot read. A page on another site knows neither.
 */
export function csrfTokenOf(cookie: string): string {
  return createHash('sha256').update('ferry-csrf\0').update(cookie).digest('base64url');
}

export function csrfMatches(cookie: string, sent: unknown): boolean {
  if (typeof sent !== 'string') return false;
  const want = Buffer.from(csrfTokenOf(cookie));
  const got = Buffer.from(sent);
  return want.length === got.length && timingSafeEqual(want, got);
}
