import { FerryError, ROLES, type Role } from '@ferry/protocol';

// The roles themselves (weakest first, what each may do) are part of the contract with the browser: protocol/src/views.ts.
export { ROLES, type Role };

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

export function assertRole(have: Role, need: Role): void {
  if (ROLES.indexOf(have) < ROLES.indexOf(need)) {
    throw new FerryError('ROLE_FORBIDDEN', `this needs the ${need} role; you are ${have === 'admin' ? 'an' : 'a'} ${have}`);
  }
}
