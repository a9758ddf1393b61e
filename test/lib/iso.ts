import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ROOT, sh } from './cli.js';

/** Where `make iso` writes the restore ISO. */
export const ISO_PATH = path.join(ROOT, 'iso/out/ferry-restore.iso');

/** What goes into the ISO: a change here makes it stale. iso/work and iso/out are the build's own state. */
const ISO_INPUTS = ['iso', 'restore-pe/src', 'restore-pe/package.json', 'protocol/src', 'protocol/package.json'];
const NOT_INPUTS = new Set([path.join(ROOT, 'iso/work'), path.join(ROOT, 'iso/out')]);

async function newestMtime(p: string): Promise<number> {
  if (NOT_INPUTS.has(p)) return 0;
  const s = await stat(p).catch(() => null);
  if (!s) return 0;
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = s.mtimeMs;
  for (const name of await readdir(p)) newest = Math.max(newest, await newestMtime(path.join(p, name)));
  return newest;
}

/** Runs `make iso`, its output in test/out/iso-build.log (the tail is in the error when it fails). */
async function makeIso(): Promise<void> {
  const logFile = path.join(ROOT, 'test/out/iso-build.log');
  await mkdir(path.dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('make', ['--no-print-directory', 'iso'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once('error', reject);
    child.once('close', resolve);
  });
  await new Promise<void>((resolve) => log.end(resolve));
  if (code !== 0) {
    const tail = (await readFile(logFile, 'utf8')).split('\n').slice(-40).join('\n');
    throw new Error(`make iso exited ${code} (log: ${logFile}):\n${tail}`);
  }
}

let building: Promise<string> | undefined;

/**
 * The restore ISO, built with `make iso` when it is missing or older than its inputs (iso/, restore-pe,
 * protocol). Once per test process; concurrent builds from several processes queue on iso/build.sh's lock.
 * The first build on a machine takes a few minutes (Debian packages); later ones well under a minute.
 */
export function ensureIso(): Promise<string> {
  building ??= (async () => {
    const iso = await stat(ISO_PATH).catch(() => null);
    const inputs = Math.max(...(await Promise.all(ISO_INPUTS.map((p) => newestMtime(path.join(ROOT, p))))));
    if (!iso || iso.mtimeMs < inputs) await makeIso();
    return ISO_PATH;
  })();
  return building;
}

/**
 * The ISO's kernel and initrd (/boot/vmlinuz, /boot/initrd.img), extracted once per ISO build into
 * test/out/iso-boot/, for booting with QEMU's -kernel/-initrd/-append and the ISO attached as a CD:
 *   startVm({ cdrom: iso, kernel, initrd, append: 'console=ttyS0 ferry.ip=… ferry.auto=1' })
 */
export async function isoKernelInitrd(iso: string): Promise<{ kernel: string; initrd: string }> {
  const parent = path.join(ROOT, 'test/out/iso-boot');
  const prefix = `${path.basename(iso, '.iso')}-`;
  const dir = path.join(parent, `${prefix}${Math.floor((await stat(iso)).mtimeMs)}`);
  const kernel = path.join(dir, 'vmlinuz');
  const initrd = path.join(dir, 'initrd.img');
  const have = await Promise.all([kernel, initrd].map((f) => stat(f).then(() => true, () => false)));
  if (!have.every(Boolean)) {
    // Those of earlier builds of this ISO are of no use any more.
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      if (name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length))) await rm(path.join(parent, name), { recursive: true, force: true });
    }
    await mkdir(dir, { recursive: true });
    await sh('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/boot/vmlinuz', kernel, '-extract', '/boot/initrd.img', initrd]);
  }
  return { kernel, initrd };
}
