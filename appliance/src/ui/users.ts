import { FerryError } from '@ferry/protocol';
import type { UserRepository, UserRow } from './repository.js';
import { hashPassword, passwordMatches } from './password.js';
import { MIN_PASSWORD_LENGTH, type SessionInfo, type UserView } from './types.js';
import { formatToken, hashSecret, newSecret, secretMatches } from '../auth/secrets.js';
import type { Role } from '../auth/roles.js';
import { LoginThrottle } from './login-throttle.js';

/** A session ends after 30 minutes without a request (sliding), and 12 hours after login in any case. */
export const SESSION_IDLE_MS = 30 * 60_000;
export const SESSION_MAX_MS = 12 * 3600_000;
/** last_used_at is a durable write; once a minute is enough to keep a session alive. */
const TOUCH_INTERVAL_MS = 60_000;

export interface BrowserSession {
  userId: number;
  sessionId: number;
}

export interface SessionUser extends BrowserSession {
  role: Role;
  username: string;
}

/** Told which sessions ended (logout, password set, user deleted), so their open /ui sockets are closed at once. */
export type SessionsEnded = (sessionIds: number[]) => void;

export interface LoginResult {
  user: UserView;
  /** The cookie value, `ferry_session_<id>_<secret>`; shown to no one else. */
  token: string;
  maxAgeSeconds: number;
}

function view(u: UserRow): UserView {
  return { id: u.id, username: u.username, role: u.role, createdAt: u.created_at, lastLoginAt: u.last_login_at };
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
  readonly #throttle = new LoginThrottle();
  #dummy: Promise<string> | null = null;

  constructor(
    private readonly repo: UserRepository,
    private readonly ended: SessionsEnded = () => undefined,
  ) {}

  info(session: BrowserSession | null): Omit<SessionInfo, 'csrfToken'> {
    const row = session ? this.repo.get(session.userId) : undefined;
    return { setupRequired: this.repo.count() === 0, user: row ? view(row) : null };
  }

  async setup(username: string, password: string): Promise<LoginResult> {
    checkPassword(username, password);
    const hash = await hashPassword(password);
    // Checked again inside the transaction: two browsers racing at first start cannot both become admin.
    const id = this.repo.transaction(() => {
      if (this.repo.count() > 0) throw new FerryError('SETUP_DONE', 'the appliance already has an admin');
      return this.repo.create(username, hash, 'admin');
    });
    return this.#open(id);
  }

  /** `previous` is the session the browser had before (if any): it ends, the login always gets a new session id. */
  async login(username: string, password: string, from: string, previous: BrowserSession | null = null): Promise<LoginResult> {
    if (this.repo.count() === 0) throw new FerryError('SETUP_REQUIRED', 'no admin has been set up yet');
    this.#throttle.begin(from, username);
    const row = this.repo.byName(username);
    // A missing user costs the same hashing time as a wrong password, so timing does not tell names apart.
    const ok = await passwordMatches(password, row?.password_hash ?? (await (this.#dummy ??= hashPassword(newSecret()))));
    if (!row || !ok) throw new FerryError('LOGIN_FAILED', 'wrong user name or password');
    this.#throttle.succeeded(from, username);
    this.repo.loggedIn(row.id);
    if (previous) this.logout(previous);
    return this.#open(row.id);
  }

  logout(session: BrowserSession): void {
    this.repo.deleteSession(session.sessionId);
    this.ended([session.sessionId]);
  }

  /** The session a cookie names, if it is valid and not expired; each use slides the idle timeout. */
  session(sessionId: number, secret: string): SessionUser | null {
    const s = this.repo.session(sessionId);
    if (!s || !secretMatches(secret, s.secret_hash)) return null;
    const now = Date.now();
    const lastUsed = Date.parse(s.last_used_at);
    if (Date.parse(s.expires_at) <= now || lastUsed + SESSION_IDLE_MS <= now) {
      this.repo.deleteSession(s.id);
      this.ended([s.id]);
      return null;
    }
    if (now - lastUsed >= TOUCH_INTERVAL_MS) this.repo.touchSession(s.id);
    return { userId: s.user_id, sessionId: s.id, role: s.role, username: s.username };
  }

  /** Is the session still open (not expired, not ended)? Does not count as a use. */
  alive(sessionId: number): boolean {
    const s = this.repo.session(sessionId);
    const now = Date.now();
    return s !== undefined && Date.parse(s.expires_at) > now && Date.parse(s.last_used_at) + SESSION_IDLE_MS > now;
  }

  list(): UserView[] {
    return this.repo.list().map(view);
  }

  async create(username: string, password: string, role: Role): Promise<UserView> {
    checkPassword(username, password);
    if (this.repo.byName(username)) throw new FerryError('USER_EXISTS', `a user named "${username}" exists already`);
    const id = this.repo.create(username, await hashPassword(password), role);
    return view(this.repo.get(id)!);
  }

  /** Takes effect on the user's next request (the role is read with the session each time). */
  setRole(userId: number, role: Role): UserView {
    return this.repo.transaction(() => {
      const row = this.repo.get(userId);
      if (!row) throw new FerryError('USER_NOT_FOUND', `user ${userId} does not exist`);
      if (row.role === 'admin' && role !== 'admin' && this.repo.countAdmins() <= 1) {
        throw new FerryError('LAST_ADMIN', `${row.username} is the only admin: make another user admin first`);
      }
      this.repo.setRole(userId, role);
      return view(this.repo.get(userId)!);
    });
  }

  /** Sets a user's password and ends that user's other sessions (the caller's own stays). */
  async setPassword(userId: number, password: string, caller: BrowserSession | null): Promise<UserView> {
    const row = this.repo.get(userId);
    if (!row) throw new FerryError('USER_NOT_FOUND', `user ${userId} does not exist`);
    checkPassword(row.username, password);
    this.repo.setPassword(userId, await hashPassword(password));
    const keep = caller?.userId === userId ? caller.sessionId : null;
    const ending = this.repo.sessionIdsOf(userId).filter((id) => id !== keep);
    this.repo.deleteSessionsOf(userId, keep);
    this.ended(ending);
    return view(row);
  }

  delete(userId: number): { deleted: number } {
    const ending = this.repo.transaction(() => {
      const row = this.repo.get(userId);
      if (!row) throw new FerryError('USER_NOT_FOUND', `user ${userId} does not exist`);
      if (row.role === 'admin' && this.repo.countAdmins() <= 1) throw new FerryError('LAST_ADMIN', 'this is the only admin');
      const ids = this.repo.sessionIdsOf(userId);
      this.repo.delete(userId);
      return ids;
    });
    this.ended(ending);
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
