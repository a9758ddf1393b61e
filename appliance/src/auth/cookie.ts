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
 * the cookie off cross-site requests; this is the second lock.
 */
export function sameOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (!origin) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
