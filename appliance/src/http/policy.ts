import type { Role } from '../auth/roles.js';
import { ROUTES, routeRole, type Credential, type Route } from './openapi.js';

interface Matcher {
  method: string;
  pattern: RegExp;
  route: Route;
}

/** What a request is allowed by ROUTES (the one table docs/api.md shows): who may call it, and the least role. */
export interface RouteRule {
  credential: Credential;
  /** The least role a web UI user or API token needs; null: the route takes no credential. */
  role: Role | null;
}

/**
 * Looks a request up in ROUTES. Express matches paths regardless of letter case and with or without a trailing
 * slash, so this does too: a request that reaches a handler always has its own rule, never a weaker default
 * (`/api/v1/Users` is `/users`). A request no route has gets null, and ends in NOT_FOUND before any handler runs.
 */
export function routeRules(): (method: string, path: string) => RouteRule | null {
  const matchers: Matcher[] = ROUTES.map((r) => ({
    method: r.method.toUpperCase(),
    pattern: new RegExp(`^${r.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}/?$`, 'i'),
    route: r,
  }));
  return (method, path) => {
    const m = method === 'HEAD' ? 'GET' : method.toUpperCase();
    for (const x of matchers) if (x.method === m && x.pattern.test(path)) return { credential: x.route.credential, role: routeRole(x.route) };
    return null;
  };
}

/** The least role a person needs for a request; null where no route has it or it needs no credential. */
export function roleTable(): (method: string, path: string) => Role | null {
  const rules = routeRules();
  return (method, path) => rules(method, path)?.role ?? null;
}

/** The Roles table of docs/api.md, made from ROUTES (policy.test.ts checks the page has exactly this). */
export function rolesMarkdown(): string {
  const rows = ROUTES.filter((r) => routeRole(r) !== null && r.credential !== 'agent').map((r) => `| \`${r.method.toUpperCase()} ${r.path}\` | ${routeRole(r)} |`);
  return ['| Route | Least role |', '| --- | --- |', ...rows].join('\n');
}
