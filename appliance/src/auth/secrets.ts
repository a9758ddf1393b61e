import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Tokens are `ferry_<kind>_<id>_<secret>`; only SHA-256 of the secret is stored. `session` is a browser's cookie. */
export type TokenKind = 'admin' | 'agent' | 'enroll' | 'restore' | 'session';

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function secretMatches(secret: string, hash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === hash.length && timingSafeEqual(h, hash);
}

export function formatToken(kind: TokenKind, id: number, secret: string): string {
  return `ferry_${kind}_${id}_${secret}`;
}

export function parseToken(token: string): { kind: TokenKind; id: number; secret: string } | null {
  const m = /^ferry_(admin|agent|enroll|restore|session)_(\d{1,15})_([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return null;
  return { kind: m[1] as TokenKind, id: Number(m[2]), secret: m[3]! };
}
