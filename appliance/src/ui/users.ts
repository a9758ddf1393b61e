import { FerryError } from '@ferry/protocol';
import type { UserRepository, UserRow } from './repository.js';
import { hashPassword, passwordMatches } from './password.js';
import { MIN_PASSWORD_LENGTH, type SessionInfo, type UserView } from './types.js';
import { formatToken, hashSecret, newSecret, secretMatches } from '../auth/secrets.js';

/** A session ends after this long without a request, and after SESSION_MAX_MS in any case. */
const SESSION_IDLE_MS = 24 * 3600_000;
const SESSION_MAX_MS = 7 * 24 * 3600_000;
/** last_used_at is a durable write; once a minute is enough to keep a session alive. */
const TOUCH_INTERVAL_MS = 60_000;
/** Wrong passwords allowed from one address before it waits THROTTLE_MS. */
const MAX_FAILURES = 5;
const THROTTLE_MS = 60_000;

export interface BrowserSession {
  userId: number;
  sessionId: number;
}

export interface LoginResult {
  user: UserView;
  /** The cookie value, `ferry_session_<id>_<secret>`; shown to no one else. */
  token: string;
  maxAgeSeconds: number;
}

function view(u: UserRow): UserView {
  return { id: u.id, username: u.username, role: 'admin', createdAt: u.created_at, lastLoginAt: u.last_login_at };
}

function checkPassword(username: string, password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new FerryError('PASSWORD_WEAK', `the password has ${password.length} characters; it needs at least ${MIN_PASSWORD_LENGTH}`);
  if (password.length > 200) throw new FerryError('PASSWORD_WEAK', 'the password has more than 200 characters');
  if (password.toLowerCase() === username.toLowerCase()) throw new FerryError('PASSWORD_WEAK', 'the password is the user name');
}

/**
 * Web UI accounts. There is no default account: the first admin is created by whoever opens the UI first
 * (the engineer racking the box), and after that only admins create users.
 */
export class UserService {
  readonly #failures = new Map<string, { count: number; until: number }>();
  #dummy: Promise<string> | null = null;

  constructor(private readonly repo: UserRepository) {}

  info(session: BrowserSession | null): SessionInfo {
    const row = session ? this.repo.get(session.userId) : undefined;
    return { setupRequired: this.repo.count() === 0, user: row ? view(row) : null };
  }

  async setup(username: string, password: string): Promise<LoginResult> {
    checkPassword(username, password);
    const hash = await hashPassword(password);
    // Checked again inside the transaction: two browsers racing at first start cannot both become admin.
    const id = this.repo.transaction(() => {
      if (this.repo.count() > 0) throw new FerryError('SETUP_DONE', 'the appliance already has an admin');
      return this.repo.create(username, hash);
    });
    return this.#open(id);
  }

  async login(username: string, password: string, from: string): Promise<LoginResult> {
    const f = this.#failures.get(from);
    if (f && f.count >= MAX_FAILURES && f.until > Date.now()) {
      throw new FerryError('LOGIN_THROTTLED', `${f.count} wrong passwords from ${from}; try again in ${Math.ceil((f.until - Date.now()) / 1000)} s`);
    }
    if (this.repo.count() === 0) throw new FerryError('SETUP_REQUIRED', 'no admin has been set up yet');
    const row = this.repo.byName(username);
    // A missing user costs the same hashing time as a wrong password, so timing does not tell names apart.
    const ok = await passwordMatches(password, row?.password_hash ?? (await (this.#dummy ??= hashPassword(newSecret()))));
    if (!row || !ok) {
      const count = (f && f.until > Date.now() ? f.count : 0) + 1;
      this.#failures.set(from, { count, until: Date.now() + THROTTLE_MS });
      throw new FerryError('LOGIN_FAILED', 'wrong user name or password');
    }
    this.#failures.delete(from);
    this.repo.loggedIn(row.id);
    return this.#open(row.id);
  }

  logout(session: BrowserSession): void {
    this.repo.deleteSession(session.sessionId);
  }

  /** The session a cookie names, if it is valid and not expired. */
  session(sessionId: number, secret: string): BrowserSession | null {
    const s = this.repo.session(sessionId);
    if (!s || !secretMatches(secret, s.secret_hash)) return null;
    const now = Date.now();
    const lastUsed = Date.parse(s.last_used_at);
    if (Date.parse(s.expires_at) <= now || lastUsed + SESSION_IDLE_MS <= now) {
      this.repo.deleteSession(s.id);
      return null;
    }
    if (now - lastUsed >= TOUCH_INTERVAL_MS) this.repo.touchSession(s.id);
    return { userId: s.user_id, sessionId: s.id };
  }

  list(): UserView[] {
    return this.repo.list().map(view);
  }

  async create(username: string, password: string): Promise<UserView> {
    checkPassword(username, password);
    if (this.repo.byName(username)) throw new FerryError('USER_EXISTS', `a user named "${username}" exists already`);
    const id = this.repo.create(username, await hashPassword(password));
    return view(this.repo.get(id)!);
  }

  /** Sets a user's password and ends that user's other sessions (the caller's own stays). */
  async setPassword(userId: number, password: string, caller: BrowserSession | null): Promise<UserView> {
    const row = this.repo.get(userId);
    if (!row) throw new FerryError('USER_NOT_FOUND', `user ${userId} does not exist`);
    checkPassword(row.username, password);
    this.repo.setPassword(userId, await hashPassword(password));
    this.repo.deleteSessionsOf(userId, caller?.userId === userId ? caller.sessionId : null);
    return view(row);
  }

  delete(userId: number): { deleted: number } {
    this.repo.transaction(() => {
      if (!this.repo.get(userId)) throw new FerryError('USER_NOT_FOUND', `user ${userId} does not exist`);
      if (this.repo.count() <= 1) throw new FerryError('LAST_ADMIN', 'this is the only admin');
      this.repo.delete(userId);
    });
    return { deleted: userId };
  }

  #open(userId: number): LoginResult {
    const secret = newSecret();
    const now = Date.now();
    this.repo.deleteExpiredSessions(new Date(now).toISOString());
    const id = this.repo.createSession(userId, hashSecret(secret), new Date(now + SESSION_MAX_MS).toISOString());
    return { user: view(this.repo.get(userId)!), token: formatToken('session', id, secret), maxAgeSeconds: SESSION_MAX_MS / 1000 };
  }
}
