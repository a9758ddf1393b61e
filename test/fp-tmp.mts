import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { enrollAgent, startAppliance } from './lib/cli.js';
import { textBlob } from './lib/fixture-data.js';
const MIB = 1024 * 1024;
const image = '/tmp/fp/img';
import { existsSync } from 'node:fs';
if (!existsSync(image)) {
const fh = await open(image, 'w');
await fh.truncate(4096 * MIB);
for (let at = 0; at < 2048; at += 64) await fh.write(at < 1024 ? randomBytes(64 * MIB) : Buffer.from(textBlob(at, 64 * MIB)), 0, 64 * MIB, (64 + at) * MIB);
await fh.close();
}
const variants: [string, Record<string, string>][] = JSON.parse(process.argv[2]!);
for (const [name, env] of variants) {
  const a = await startAppliance(`/tmp/fp/app-${name}`);
  await enrollAgent(a, `/tmp/fp/st-${name}`, name);
  const [bin, ...pre] = (env.BIN ?? '/work/main/agent/out/ferry-agent').split(' ');
  const child = spawn(bin!, [...pre, 'backup', '--disk', image, '--state', `/tmp/fp/st-${name}`, '--json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let peak = 0;
  const t = setInterval(() => { try { const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8')); if (m) peak = Math.max(peak, Number(m[1])); } catch {} }, 100);
  let out = ''; child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.once('close', r));
  clearInterval(t);
  console.log(name, (peak / 1024).toFixed(1), 'MiB', out.slice(0, 120));
  await a.stop();
}
