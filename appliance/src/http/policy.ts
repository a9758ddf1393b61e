import type { Role } from '../auth/roles.js';
import { ROUTES, routeRole } from './openapi.js';

interface Matcher {
  method: string;
  pattern: RegExp;
  role: Role | null;
}

/** The least role a person needs for a request, looked up in ROUTES (the one table docs/api.md shows). */
export function roleTable(): (method: string, path: string) => Role | null {
  const matchers: Matcher[] = ROUTES.map((r) => ({
    method: r.method.toUpperCase(),
    pattern: new RegExp(`^${r.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}/?$`),
    role: routeRole(r),
  }));
  return (method, path) => {
    const m = method === 'HEAD' ? 'GET' : method;
    for (const x of matchers) if (x.method === m && x.pattern.test(path)) return x.role;
    // Not a route: the request ends in NOT_FOUND; until then it needs at least the weakest role that writes.
    return m === 'GET' ? 'viewer' : 'operator';
  };
}

/** The Roles table of docs/api.md, made from ROUTES (policy.test.ts checks the page has exactly this). */
export function rolesMarkdown(): string {
  const rows = ROUTES.filter((r) => routeRole(r) !== null && r.credential !== 'agent').map((r) => `| \`${r.method.toUpperCase()} ${r.path}\` | ${routeRole(r)} |`);
  return ['| Route | Least role |', '| --- | --- |', ...rows].join('\n');
}
