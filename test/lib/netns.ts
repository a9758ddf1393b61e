import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs `ip` (iproute2) with these arguments; its standard output. */
export async function ip(...args: string[]): Promise<string> {
  return (await execFileP('ip', args)).stdout;
}

/**
 * A network namespace joined to the host by a veth pair with a /30 from 198.18.0.0/15 (the range reserved for
 * network tests): the host end has `hostAddress`, the namespace end `nsAddress`. `down()`/`up()` cut and
 * restore the link (an outage as a source would see it); `close()` deletes everything, also after a failure.
 */
export interface LinkedNamespace {
  name: string;
  hostAddress: string;
  nsAddress: string;
  /** The host end of the veth pair (its counters see everything the namespace sends). */
  hostInterface: string;
  exec(cmd: string[]): string[];
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/** `index` picks the /30 (0–255) so tests that run one after another never share addresses. */
export async function linkedNamespace(prefix: string, index: number): Promise<LinkedNamespace> {
  const tag = `${prefix}${process.pid % 10000}`;
  const name = `ferry-${tag}`;
  const hostIf = `fh${tag}`.slice(0, 15);
  const nsIf = `fn${tag}`.slice(0, 15);
  const base = `198.18.${200 + Math.floor(index / 64)}.${(index % 64) * 4}`;
  const [a, b, c, d] = base.split('.').map(Number) as [number, number, number, number];
  const hostAddress = `${a}.${b}.${c}.${d + 1}`;
  const nsAddress = `${a}.${b}.${c}.${d + 2}`;
  const close = async (): Promise<void> => {
    await ip('link', 'del', hostIf).catch(() => '');
    await ip('netns', 'del', name).catch(() => '');
  };
  await close();
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    await ip('link', 'set', nsIf, 'netns', name);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostIf);
    await ip('link', 'set', hostIf, 'up');
    await ip('-n', name, 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf);
    await ip('-n', name, 'link', 'set', nsIf, 'up');
    await ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (err) {
    await close();
    throw err;
  }
  return {
    name,
    hostAddress,
    nsAddress,
    hostInterface: hostIf,
    exec: (cmd) => ['ip', 'netns', 'exec', name, ...cmd],
    down: async () => {
      await ip('link', 'set', hostIf, 'down');
    },
    up: async () => {
      await ip('link', 'set', hostIf, 'up');
    },
    close,
  };
}
