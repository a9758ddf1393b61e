/** Hash routes (#/jobs/3): the appliance serves one index.html, and a reload keeps the page. */
export interface Route {
  path: string;
  parts: string[];
  query: URLSearchParams;
}

function parse(): Route {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path = '/', q = ''] = raw.split('?');
  return { path, parts: path.split('/').filter(Boolean), query: new URLSearchParams(q) };
}

class Router {
  route = $state<Route>(parse());

  constructor() {
    addEventListener('hashchange', () => {
      this.route = parse();
    });
  }

  go(path: string): void {
    location.hash = path;
  }
}

export const router = new Router();
