import { FerryError } from '@ferry/protocol';

/**
 * Web UI roles, weakest first. viewer reads; operator also runs jobs, restores and source actions; admin also
 * manages users, settings, agent credentials, transport and reads the audit log. API tokens are admin.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

export function assertRole(have: Role, need: Role): void {
  if (ROLES.indexOf(have) < ROLES.indexOf(need)) {
    throw new FerryError('ROLE_FORBIDDEN', `this needs the ${need} role; you are ${have === 'admin' ? 'an' : 'a'} ${have}`);
  }
}
