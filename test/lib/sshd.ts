import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sh } from './cli.js';
import type { LinkedNamespace } from './netns.js';

/*
 * Debian's sshd (openssh-server) in a network namespace the test made: the source of passive-mode tests. Key
 * logins only; the "source" shares this machine's filesystem.
 */

export interface Sshd {
  process: ChildProcess;
  /** Kills every process of the namespace: sshd, its sessions, and the agent they started. */
  stop(): Promise<void>;
}

/** `ports`: where it listens (22 first; another port stands for a second server behind the same address). */
export async function startSshd(ns: LinkedNamespace, dir: string, hostKey: string, ports: number[] = [22]): Promise<Sshd> {
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `ListenAddress ${ns.nsAddress}`,
      ...ports.map((p) => `Port ${p}`),
      `HostKey ${hostKey}`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'AllowTcpForwarding yes',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  await sh('mkdir', ['-p', '/run/sshd']);
  const [cmd, ...args] = ns.exec(['/usr/sbin/sshd', '-D', '-e', '-f', config]);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async (): Promise<void> => {
    const pids = (await sh('ip', ['netns', 'pids', ns.name]).catch(() => '')).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
  };
  // Ready when it accepts TCP connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await sh('ip', ['netns', 'exec', ns.name, 'bash', '-c', `exec 3<>/dev/tcp/${ns.nsAddress}/22`]).then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`sshd did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { process: child, stop };
}

/** The fingerprint `ssh-keygen -l` prints for a public key file. */
export async function keygenFingerprint(pub: string): Promise<string> {
  const out = await sh('ssh-keygen', ['-l', '-E', 'sha256', '-f', pub]);
  const m = /(SHA256:[A-Za-z0-9+/]{43})/.exec(out);
  assert.ok(m, `ssh-keygen printed a fingerprint for ${pub}: ${out}`);
  return m[1]!;
}
