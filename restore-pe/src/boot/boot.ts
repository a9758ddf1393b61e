import { existsSync } from 'node:fs';
import { FerryError, formatBytes, type ApplianceClient, type Point, type RestoreSession, type RestoreStep } from '@ferry/protocol';
import { openRestoreSession, RestoreReporter, restoreSession } from '../session/session.js';
import { BootConsole } from './console.js';
import { applianceUrl, missingForAuto, parseAddress, parseCmdline, isIpv4, type BootSettings } from './cmdline.js';
import { configureNetwork, listNics, preferredNic, unknownNic, type NetworkChoice } from './network.js';
import { describeDisk, listTargetDisks, type TargetDisk } from './disks.js';
import { presentedFingerprint } from './fingerprint.js';
import { sh } from './system.js';

export interface CompatRequest {
  targets: string[];
  firmware: 'bios' | 'uefi';
  packagesDir: string;
  report(step: RestoreStep): void;
}

export interface BootOptions {
  version: string;
  cmdline: string;
  /** Makes the restored system bootable here (restore-pe/src/compat); passed in by main.ts. */
  compatibility(req: CompatRequest): Promise<RestoreStep[]>;
  console?: BootConsole;
  /** Where the ISO carries guest-agent packages, one folder per distribution. */
  packagesDir?: string;
}

/**
 * Present only in the restore ISO's root filesystem. `boot` lists every disk of the machine as a target, so it
 * must never run anywhere else (say, on the appliance or a developer's machine).
 */
export const RESTORE_ENVIRONMENT_MARKER = '/etc/ferry-restore-environment';

/** Exit codes of `ferry-restore boot`: the ISO's init drops to a shell on anything but 0. */
const OK = 0;
const FAILED = 1;
const BAD_SETTINGS = 2;

/** Asks until the answer passes `check` (which throws a FerryError saying what is wrong). */
async function askValid<T>(c: BootConsole, question: string, fallback: string | undefined, check: (answer: string) => T): Promise<T> {
  for (;;) {
    try {
      return check(await c.ask(question, fallback));
    } catch (err) {
      // The message says what to type; an error code is of no use for a mistyped answer.
      c.say(`!! ${(err as Error).message}`);
    }
  }
}

async function chooseNetwork(c: BootConsole, s: BootSettings): Promise<void> {
  c.step(1, 'Network');
  for (;;) {
    const nics = await listNics();
    if (nics.length === 0) {
      throw new FerryError('NETWORK_UNAVAILABLE', 'this machine shows no network interface; boot the ISO again after adding one');
    }
    nics.forEach((n, i) => c.say(`  [${i + 1}] ${n.name.padEnd(10)} driver ${n.driver.padEnd(12)} link ${n.link.padEnd(7)} ${n.mac}`));
    const missing = unknownNic(nics, s.nic);
    if (missing) {
      // Unattended, another interface than the one named could put the address on the wrong network.
      if (s.auto) throw new FerryError('NETWORK_UNAVAILABLE', `${missing}; fix ferry.nic on the kernel command line, or leave it out to use the first one with a link`);
      c.say(`  ${missing}; choose one below`);
    }
    const preferred = preferredNic(nics, s.nic)!;
    const nic = s.auto
      ? preferred
      : await askValid(c, 'Network interface (number)', String(nics.indexOf(preferred) + 1), (a) => {
          const n = nics[Number(a) - 1];
          if (!n) throw new FerryError('BAD_REQUEST', `choose a number from 1 to ${nics.length}`);
          return n;
        });
    let net: NetworkChoice | null = s.network;
    let gateway = s.gateway;
    let dns = s.dns;
    if (!net) {
      const kind = await askValid(c, 'Address by DHCP or static? (d/s)', 'd', (a) => {
        if (!/^[ds]$/i.test(a)) throw new FerryError('BAD_REQUEST', 'answer d (DHCP) or s (static)');
        return a.toLowerCase();
      });
      if (kind === 'd') net = { kind: 'dhcp' };
      else {
        net = { kind: 'static', ...(await askValid(c, 'IP address/prefix, e.g. 10.20.0.15/24', undefined, (a) => parseAddress(a, 'address'))) };
        gateway = await askValid(c, 'Gateway (empty for none)', '', (a) => {
          if (a !== '' && !isIpv4(a)) throw new FerryError('BAD_REQUEST', `"${a}" is not an IPv4 address`);
          return a || null;
        });
        dns = await askValid(c, 'DNS servers, comma-separated (empty for none)', '', (a) => {
          const list = a.split(',').map((x) => x.trim()).filter(Boolean);
          for (const d of list) if (!isIpv4(d)) throw new FerryError('BAD_REQUEST', `"${d}" is not an IPv4 address`);
          return list;
        });
      }
    }
    try {
      c.say(`  configuring ${nic.name} (${net.kind === 'dhcp' ? 'DHCP' : `${net.address}/${net.prefix}${gateway ? ` via ${gateway}` : ''}`}) ...`);
      c.say(`  ${await configureNetwork(nic.name, net, gateway, dns)}`);
      return;
    } catch (err) {
      const fe = err instanceof FerryError ? err : new FerryError('NETWORK_UNAVAILABLE', `cannot bring ${nic.name} up: ${(err as Error).message}`, { cause: err });
      // Unattended, runBoot says it once; at the console the engineer gets the question again.
      if (s.auto) throw fe;
      c.problem(fe);
      s.network = null;
    }
  }
}

/** The appliance address and its certificate: compared with the pinned one, or shown for the engineer to confirm. */
async function chooseAppliance(c: BootConsole, s: BootSettings): Promise<{ url: string; fingerprint: string }> {
  c.step(2, 'Appliance');
  for (;;) {
    const url = s.appliance ?? (await askValid(c, 'Appliance address (IP or host, optionally :port)', undefined, applianceUrl));
    try {
      const presented = await presentedFingerprint(url);
      if (s.fingerprint) {
        if (presented !== s.fingerprint) {
          throw new FerryError('FINGERPRINT_MISMATCH', `the appliance at ${url} presented ${presented}, but ${s.fingerprint} was given; nothing was sent`);
        }
        c.say(`  ${url}: certificate ${presented} (as given)`);
        return { url, fingerprint: presented };
      }
      c.say(`  ${url} presents the certificate`);
      c.say(`    ${presented}`);
      c.say('  Compare it with the fingerprint in the appliance UI (Appliance page) or `ferry-appliance fingerprint`.');
      if (await c.yes('  Is it the same?', false)) return { url, fingerprint: presented };
      c.say('  Not trusted: nothing was sent to it. Check the address and compare again; if the address is right and the');
      c.say('  fingerprints differ, someone may be intercepting the connection: do not go on until that is explained.');
    } catch (err) {
      if (s.auto) throw err;
      c.problem(err);
    }
    s.appliance = null;
    s.fingerprint = null;
  }
}

async function openSession(c: BootConsole, s: BootSettings, appliance: { url: string; fingerprint: string }): Promise<{ client: ApplianceClient; session: RestoreSession }> {
  c.step(3, 'Restore code');
  for (;;) {
    const code = s.code ?? (await c.ask('Restore code from the appliance UI (XXXX-XXXX-XXXX-XXXX)'));
    try {
      const opened = await openRestoreSession(appliance.url, appliance.fingerprint, code);
      const p = opened.session.point;
      c.say(`  restore ${opened.session.restoreId}: ${p.name} of ${p.sourceName}, taken ${p.createdAt}`);
      return opened;
    } catch (err) {
      if (s.auto) throw err;
      c.problem(err);
      s.code = null;
    }
  }
}

/** Source and target disks side by side; the one-to-one mapping is refused before anything is written if it cannot work. */
function mapping(c: BootConsole, point: Point, targets: TargetDisk[]): void {
  c.say('  source disk                                 ->  target disk');
  const rows = Math.max(point.disks.length, targets.length);
  for (let i = 0; i < rows; i++) {
    const src = point.disks[i];
    const tgt = targets[i];
    c.say(`  ${(src ? `${src.key} ${formatBytes(src.size)}` : '(none)').padEnd(44)} ->  ${tgt ? describeDisk(tgt) : '(none)'}`);
  }
  if (targets.length === 0) {
    throw new FerryError(
      'TARGET_COUNT_MISMATCH',
      `this machine has no disk to restore onto (CD drives and the restore medium do not count); ${point.name} needs ${point.disks.length} disk(s) of at least ${point.disks.map((d) => formatBytes(d.size)).join(', ')}: add them to the VM; nothing was written`,
    );
  }
  if (point.disks.length !== targets.length) {
    throw new FerryError(
      'TARGET_COUNT_MISMATCH',
      `${point.name} has ${point.disks.length} disk(s) but this machine has ${targets.length}; disks map one to one. Give the VM exactly ${point.disks.length} disk(s); nothing was written`,
    );
  }
  point.disks.forEach((src, i) => {
    const tgt = targets[i]!;
    if (tgt.size < src.size) {
      throw new FerryError('TARGET_TOO_SMALL', `target ${tgt.path} holds ${formatBytes(tgt.size)} but source disk ${src.key} needs ${formatBytes(src.size)}; nothing was written`);
    }
  });
}

async function chooseTargets(c: BootConsole, s: BootSettings, session: RestoreSession): Promise<TargetDisk[]> {
  c.step(4, 'Disks');
  for (;;) {
    const targets = await listTargetDisks();
    try {
      mapping(c, session.point, targets);
      if (session.targetDisks !== null && session.targetDisks !== targets.length) {
        throw new FerryError('TARGET_COUNT_MISMATCH', `the restore code was made for ${session.targetDisks} target disk(s); this machine has ${targets.length}; nothing was written`);
      }
      const resumed = session.verified.some((v) => v.nextBlock > 0);
      if (resumed) c.say('  An earlier attempt of this restore was interrupted: it continues from the last verified block.');
      if (s.auto) return targets;
      const answer = await c.ask(`  Type WRITE to ${resumed ? 'continue writing' : 'erase and write'} the target disk(s) above`);
      if (answer === 'WRITE') return targets;
      c.say('  Nothing was written.');
    } catch (err) {
      if (s.auto) throw err;
      c.problem(err);
    }
    if (!(await c.yes('  Look at the disks again (after changing the VM)?', true))) throw new FerryError('TARGET_COUNT_MISMATCH', 'stopped by the engineer; nothing was written');
  }
}

/**
 * `ferry-restore boot`: the restore ISO's wizard. Every answer can come from the kernel command line
 * (ferry.*); with ferry.auto=1 nothing is asked and anything missing or wrong ends the run with a clear
 * message. Returns the exit code.
 */
export async function runBoot(opts: BootOptions): Promise<number> {
  const c = opts.console ?? new BootConsole();
  c.say(`Ferry restore ${opts.version}`);
  if (!existsSync(RESTORE_ENVIRONMENT_MARKER)) {
    c.say(`!! \`ferry-restore boot\` runs only inside the Ferry restore ISO (no ${RESTORE_ENVIRONMENT_MARKER}): it would write to this machine's disks.`);
    c.say('   what to do: boot the restore ISO on the target machine, or use `ferry-restore code --target ...` to restore onto chosen disks or image files.');
    return BAD_SETTINGS;
  }
  let s: BootSettings;
  try {
    s = parseCmdline(opts.cmdline);
  } catch (err) {
    c.problem(err);
    return BAD_SETTINGS;
  }
  if (s.auto) {
    const missing = missingForAuto(s);
    if (missing.length > 0) {
      c.say(`!! an unattended restore (ferry.auto=1) needs these kernel options: ${missing.join(', ')}`);
      return BAD_SETTINGS;
    }
    c.say('Unattended restore (ferry.auto=1): settings from the kernel command line.');
  }
  let client: ApplianceClient | null = null;
  let refusal: RestoreReporter | null = null;
  try {
    await chooseNetwork(c, s);
    const appliance = await chooseAppliance(c, s);
    const opened = await openSession(c, s, appliance);
    client = opened.client;
    // A refusal before the restore starts (the disks) shows in the UI too; the restore's own failures report themselves.
    refusal = new RestoreReporter(client, opened.session.restoreId, (l) => c.say(`  ${l}`));
    const targets = await chooseTargets(c, s, opened.session);
    refusal = null;
    const reporter = new RestoreReporter(client, opened.session.restoreId, (l) => c.say(`  ${l}`));
    c.step(5, 'Restore');
    const result = await restoreSession(
      { client, session: opened.session, targets: targets.map((t) => t.path), verify: s.verify, progress: process.stdout, log: (l) => c.say(`  ${l}`) },
      reporter,
    );
    for (const d of result.disks) c.say(`  ${d.source} -> ${d.target}: ${formatBytes(d.bytesWritten)} written${d.verified ? ', verified' : ''}${d.gptRelocated ? ', GPT moved to the end' : ''}`);
    // The kernel still holds the targets' old (empty) partition tables: make it read the restored ones.
    for (const t of targets) await sh('partprobe', [t.path]).catch(() => sh('blockdev', ['--rereadpt', t.path]).catch((err: Error) => c.say(`  ${err.message}`)));
    await sh('udevadm', ['settle', '--timeout=30']).catch(() => '');
    let failed = 0;
    c.step(6, 'Make the restored system bootable here');
    if (s.compat) {
      await reporter.send({ phase: 'compatibility' });
      // Reported in order, and all of them before the restore is reported done (which ends it on the appliance).
      let reports = Promise.resolve();
      const steps = await opts.compatibility({
        targets: targets.map((t) => t.path),
        firmware: existsSync('/sys/firmware/efi') ? 'uefi' : 'bios',
        packagesDir: opts.packagesDir ?? '/ferry/packages',
        report: (step) => {
          c.say(`  [${step.status === 'ok' ? ' ok ' : step.status === 'skipped' ? 'skip' : 'FAIL'}] ${step.name}: ${step.detail}`);
          reports = reports.then(() => reporter.step(step));
        },
      });
      await reports;
      failed = steps.filter((st) => st.status === 'failed').length;
    } else {
      const skipped: RestoreStep = { name: 'compatibility', status: 'skipped', detail: 'ferry.compat=0: the restored disks are as the source left them' };
      c.say(`  [skip] ${skipped.name}: ${skipped.detail}`);
      await reporter.step(skipped);
    }
    await reporter.send({ phase: 'done', progress: { bytesDone: 1, bytesTotal: 1, disk: null, message: failed ? `${failed} compatibility step(s) failed` : 'restored' } });
    await sh('sync', []).catch(() => '');
    c.say('');
    c.say(`FERRY-RESTORE-DONE ${result.point.name}${failed ? ` (${failed} compatibility step(s) failed: see above)` : ''}`);
    if (failed) return FAILED;
    if (s.reboot) {
      c.say('Rebooting into the restored system...');
      await sh('reboot', ['-f']).catch(() => sh('sh', ['-c', 'echo b > /proc/sysrq-trigger']));
    } else {
      c.say('Powering off (ferry.reboot=0).');
      await sh('poweroff', ['-f']).catch(() => sh('sh', ['-c', 'echo o > /proc/sysrq-trigger']));
    }
    return OK;
  } catch (err) {
    c.problem(err);
    if (refusal) await refusal.send({ phase: 'failed', error: { code: err instanceof FerryError ? err.code : 'INTERNAL', message: (err as Error).message } });
    c.say('FERRY-RESTORE-FAILED');
    return FAILED;
  } finally {
    client?.close();
    c.close();
  }
}
