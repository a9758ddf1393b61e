import { get, onAuthLost, post, setCsrfToken } from './api.ts';
import type { Role, SessionInfo } from './types.ts';

/** Each role may do what the ones below it may (docs/api.md, Roles). */
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Who is logged in; null until the appliance has answered. */
class Session {
  #info = $state<SessionInfo | null>(null);
  /** Set when the appliance ended the session (expired, logged out elsewhere): the login page says so. */
  expired = $state(false);

  get info(): SessionInfo | null {
    return this.#info;
  }

  set info(value: SessionInfo | null) {
    this.#info = value;
    setCsrfToken(value?.csrfToken ?? null);
  }

  /** The logged-in user's role, or null. */
  get role(): Role | null {
    return this.#info?.user?.role ?? null;
  }

  /**
   * Whether the logged-in user's role reaches `least`: pages hide what the role cannot do (the appliance checks
   * the role on every request anyway, so this only spares an engineer a button that would be refused).
   */
  may(least: Role): boolean {
    const role = this.role;
    return role !== null && RANK[role] >= RANK[least];
  }

  constructor() {
    onAuthLost(() => {
      if (this.info?.user) {
        this.expired = true;
        this.info = { setupRequired: false, user: null, csrfToken: null };
      }
    });
  }

  async load(): Promise<void> {
    this.info = await get<SessionInfo>('/session');
  }

  async setup(username: string, password: string): Promise<void> {
    this.info = await post<SessionInfo>('/setup', { username, password });
    this.expired = false;
  }

  async login(username: string, password: string): Promise<void> {
    this.info = await post<SessionInfo>('/login', { username, password });
    this.expired = false;
  }

  async logout(): Promise<void> {
    await post('/logout');
    this.info = { setupRequired: false, user: null, csrfToken: null };
  }
}

export const session = new Session();
