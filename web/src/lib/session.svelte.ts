import { get, onAuthLost, post, setCsrfToken } from './api.ts';
import type { SessionInfo } from './types.ts';

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
