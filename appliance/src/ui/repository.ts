import type { Catalog } from '../catalog/catalog.js';
import { now } from '../catalog/catalog.js';
import type { Role } from '../auth/roles.js';

export interface UserRow {
  id: number;
  username: string;
  password_hash: string;
  role: Role;
  created_at: string;
  last_login_at: string | null;
}

export interface SessionRow {
  id: number;
  user_id: number;
  secret_hash: Buffer;
  last_used_at: string;
  expires_at: string;
  role: Role;
  username: string;
}

/** Web UI users, their browser sessions and the appliance settings (JSON values by key). */
export class UserRepository {
  constructor(private readonly db: Catalog) {}

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
  }

  create(username: string, passwordHash: string, role: Role): number {
    const r = this.db.prepare('INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)').run(username, passwordHash, role, now());
    return Number(r.lastInsertRowid);
  }

  countAdmins(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'").get() as { n: number }).n;
  }

  setRole(id: number, role: Role): void {
    this.db.prepare('UPDATE users SET role = ? WHERE id = ?').run(role, id);
  }

  sessionIdsOf(userId: number): number[] {
    return (this.db.prepare('SELECT id FROM user_sessions WHERE user_id = ?').all(userId) as { id: number }[]).map((r) => r.id);
  }

  byName(username: string): UserRow | undefined {
    return this.db.prepare('SELECT id, username, password_hash, role, created_at, last_login_at FROM users WHERE username = ?').get(username) as UserRow | undefined;
  }

  get(id: number): UserRow | undefined {
    return this.db.prepare('SELECT id, username, password_hash, role, created_at, last_login_at FROM users WHERE id = ?').get(id) as UserRow | undefined;
  }

  list(): UserRow[] {
    return this.db.prepare('SELECT id, username, password_hash, role, created_at, last_login_at FROM users ORDER BY id').all() as UserRow[];
  }

  setPassword(id: number, passwordHash: string): void {
    this.db.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, id);
  }

  delete(id: number): void {
    this.db.prepare('DELETE FROM user_sessions WHERE user_id = ?').run(id);
    this.db.prepare('DELETE FROM users WHERE id = ?').run(id);
  }

  loggedIn(id: number): void {
    this.db.prepare('UPDATE users SET last_login_at = ? WHERE id = ?').run(now(), id);
  }

  createSession(userId: number, secretHash: Buffer, expiresAt: string): number {
    const at = now();
    const r = this.db.prepare('INSERT INTO user_sessions (user_id, secret_hash, created_at, last_used_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(userId, secretHash, at, at, expiresAt);
    return Number(r.lastInsertRowid);
  }

  session(id: number): SessionRow | undefined {
    return this.db
      .prepare('SELECT s.id, s.user_id, s.secret_hash, s.last_used_at, s.expires_at, u.role, u.username FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?')
      .get(id) as SessionRow | undefined;
  }

  touchSession(id: number): void {
    this.db.prepare('UPDATE user_sessions SET last_used_at = ? WHERE id = ?').run(now(), id);
  }

  deleteSession(id: number): void {
    this.db.prepare('DELETE FROM user_sessions WHERE id = ?').run(id);
  }

  /** Other sessions of a user end when an admin sets that user's password. */
  deleteSessionsOf(userId: number, except: number | null): void {
    this.db.prepare('DELETE FROM user_sessions WHERE user_id = ? AND id IS NOT ?').run(userId, except);
  }

  deleteExpiredSessions(before: string): void {
    this.db.prepare('DELETE FROM user_sessions WHERE expires_at < ?').run(before);
  }

  setting(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setSetting(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at')
      .run(key, value, now());
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
