import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import os from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import path from 'node:path';

/** A disk of the VM. `ide` is the old hypervisor's controller, `virtio` the new one's. */
export interface VmDisk {
  file: string;
  interface: 'ide' | 'virtio';
  format?: 'raw' | 'qcow2';
  /** Writes go to a temporary overlay and are dropped when QEMU exits. */
  snapshot?: boolean;
}

/**
 * A NIC on a tap device made by the caller (in `netns` when that is set), or, without `tap`, alone on a QEMU
 * hub: its link is up, and nothing it sends leaves QEMU.
 */
export interface VmNic {
  tap?: string;
  mac?: string;
  model?: 'virtio-net-pci' | 'e1000';
}

export interface VmOptions {
  disks?: VmDisk[];
  cdrom?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  firmware?: 'bios' | 'uefi';
  memoryMiB?: number;
  cpus?: number;
  /** No NIC at all unless given: QEMU's default user-mode NIC would otherwise appear. */
  nics?: VmNic[];
  /** Runs QEMU under `ip netns exec NS`, so tap devices of that namespace can be used. */
  netns?: string;
  /** QEMU's -boot order, e.g. 'c' (first disk) or 'd' (cdrom). */
  bootOrder?: string;
  /** The test types on the serial console (Vm.type); otherwise QEMU's standard input is closed at once. */
  serialInput?: boolean;
  /** Also writes the serial output to this file, for reading after a failed test. */
  serialLog?: string;
  extraArgs?: string[];
}

export interface Vm {
  readonly process: ChildProcess;
  /** Everything the VM wrote to its serial console so far. */
  output(): string;
  /**
   * Resolves with the first match in the serial output at or after offset `from` (its `index` counts from the
   * start of the output); rejects after timeoutMs or when QEMU exits first.
   */
  waitFor(pattern: RegExp, timeoutMs: number, from?: number): Promise<RegExpExecArray>;
  /** Types on the serial console, as an engineer at a terminal would (end a line with \r). Needs `serialInput`. */
  type(text: string): void;
  /** Resolves with QEMU's exit code once it exits by itself (the guest powered off); rejects after timeoutMs. */
  exited(timeoutMs: number): Promise<number | null>;
  /** Stops QEMU (SIGKILL: the guest's state is of no interest) and removes its temporary files. */
  kill(): Promise<void>;
}

/** Debian's OVMF (package ovmf): the 4 MiB build, whose variable store each VM gets a copy of. */
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/** The QEMU command line for opts; the firmware variable store path is needed for UEFI only. */
export function qemuArgs(opts: VmOptions, ovmfVars?: string): string[] {
  // Software emulation: these machines have no KVM. The serial line is the only console.
  const args = ['-accel', 'tcg', '-m', String(opts.memoryMiB ?? 1024), '-smp', String(opts.cpus ?? 1)];
  args.push('-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot');
  if (opts.firmware === 'uefi') {
    if (ovmfVars === undefined) throw new Error('UEFI needs a copy of the OVMF variable store');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${ovmfVars}`);
  }
  for (const d of opts.disks ?? []) {
    args.push('-drive', `file=${d.file},if=${d.interface},format=${d.format ?? 'raw'}${d.snapshot ? ',snapshot=on' : ''}`);
  }
  if (opts.cdrom !== undefined) args.push('-cdrom', opts.cdrom);
  if (opts.kernel !== undefined) args.push('-kernel', opts.kernel);
  if (opts.initrd !== undefined) args.push('-initrd', opts.initrd);
  if (opts.append !== undefined) args.push('-append', opts.append);
  if (opts.bootOrder !== undefined) args.push('-boot', opts.bootOrder);
  const nics = opts.nics ?? [];
  if (nics.length === 0) args.push('-nic', 'none');
  nics.forEach((n, i) => {
    // A hub of its own per isolated NIC: not even two NICs of the same VM see each other.
    args.push('-netdev', n.tap !== undefined ? `tap,id=net${i},ifname=${n.tap},script=no,downscript=no` : `hubport,id=net${i},hubid=${i}`);
    args.push('-device', `${n.model ?? 'virtio-net-pci'},netdev=net${i}${n.mac !== undefined ? `,mac=${n.mac}` : ''}`);
  });
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** Starts a VM; callers kill() it in a finally. */
export async function startVm(opts: VmOptions): Promise<Vm> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-vm-'));
  let ovmfVars: string | undefined;
  if (opts.firmware === 'uefi') {
    ovmfVars = path.join(tmp, 'OVMF_VARS.fd');
    await copyFile(OVMF_VARS, ovmfVars);
  }
  const qemu = ['qemu-system-x86_64', ...qemuArgs(opts, ovmfVars)];
  const [cmd, ...args] = opts.netns !== undefined ? ['ip', 'netns', 'exec', opts.netns, ...qemu] : qemu;
  const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  // QEMU gone before the test typed: the write fails with EPIPE, which waitFor/exited report better.
  child.stdin.on('error', () => undefined);
  if (!opts.serialInput) child.stdin.end();

  let out = '';
  let stderr = '';
  const log: WriteStream | undefined = opts.serialLog !== undefined ? createWriteStream(opts.serialLog) : undefined;
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((l) => l());
  // A multi-byte character (systemd's "…") can be split between two chunks.
  const utf8 = new StringDecoder('utf8');
  child.stdout.on('data', (d: Buffer) => {
    out += utf8.write(d);
    log?.write(d);
    notify();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      exitCode = null;
      resolve();
      notify();
    });
    child.once('close', (code) => {
      exitCode = code;
      resolve();
      notify();
    });
  });

  const tail = () => `--- serial (last 3000 chars) ---\n${out.slice(-3000)}\n--- qemu stderr ---\n${stderr.slice(-2000)}`;

  return {
    process: child,
    output: () => out,
    waitFor(pattern, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        // The pattern's lastIndex must not carry over between checks.
        const re = new RegExp(pattern.source, pattern.flags.replace('g', '').replace('y', ''));
        const check = () => {
          const m = re.exec(out.slice(from));
          if (m) {
            m.index += from;
            return done(() => resolve(m));
          }
          if (exitCode !== undefined) {
            done(() => reject(new Error(`QEMU exited (${spawnError?.message ?? `code ${exitCode}`}) before ${pattern} appeared${from ? ` after offset ${from}` : ''}\n${tail()}`)));
          }
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${pattern} did not appear${from ? ` after offset ${from}` : ''} in ${timeoutMs / 1000} s\n${tail()}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    type(text) {
      if (!opts.serialInput) throw new Error('startVm({ serialInput: true }) lets a test type on the serial console');
      child.stdin.write(text);
    },
    async exited(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`QEMU did not exit by itself in ${timeoutMs / 1000} s\n${tail()}`)), timeoutMs);
      });
      try {
        await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
      if (spawnError) throw spawnError;
      return exitCode ?? null;
    },
    async kill() {
      child.stdin.end();
      if (exitCode === undefined) child.kill('SIGKILL');
      await exited;
      await new Promise<void>((resolve) => (log ? log.end(resolve) : resolve()));
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
