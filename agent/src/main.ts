import os from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import {
  API_PREFIX,
  ApplianceClient,
  DEFAULT_THROTTLE,
  FerryError,
  formatBytes,
  initHashing,
  normalizeFingerprint,
  type EnrollResponse,
  exitWithError,
} from '@ferry/protocol';
import { DEFAULT_STATE_DIR, loadState, saveState } from './state.js';
import { listDisks } from './disk/index.js';
import { examine, openSourceDisk, withSourceDisks } from './disk/source.js';
import { removeStaleSnapshots } from './disk/snapshot.js';
import { runCycle } from './backup/cycle.js';
import { LiveThrottle } from './backup/throttle.js';
import { runDaemon } from './control/daemon.js';
import { timestampedLog } from './control/log.js';
import { VERSION, versionInfo } from './version.js';
import { readPassiveEnrollment, replacePrevious } from './control/passive.js';


interface StateOpt {
  state: string;
}

function withState(cmd: Command): Command {
  return cmd.option('--state <dir>', 'agent state directory (enrollment, credential)', process.env.FERRY_AGENT_STATE ?? DEFAULT_STATE_DIR);
}

const program = new Command('ferry-agent')
  .description('Ferry agent: copies the used blocks of this server\'s disks to a Ferry appliance')
  .version(VERSION)
  .showHelpAfterError()
  // Usage errors exit 2 (bad input), not commander's 1, which verify uses for "damage found".
  .exitOverride();

withState(program.command('enroll').description('pin the appliance certificate and exchange a one-time token for this agent\'s credential'))
  .requiredOption('--appliance <url>', 'appliance URL, e.g. https://10.0.0.5:8443')
  .requiredOption('--fingerprint <fp>', 'appliance certificate fingerprint (SHA256:…), from `ferry-appliance fingerprint`')
  .requiredOption('--token <token>', 'one-time enrollment token, from `ferry-appliance enroll-token`')
  .option('--name <hostname>', 'source name shown on the appliance', os.hostname())
  .action(async (opts: StateOpt & { appliance: string; fingerprint: string; token: string; name: string }) => {
    const pinned = normalizeFingerprint(opts.fingerprint);
    const client = new ApplianceClient(opts.appliance, pinned);
    try {
      const res = await client.json<EnrollResponse>(`${API_PREFIX}/enroll`, {
        method: 'POST',
        body: { token: opts.token, hostname: opts.name, os: `${os.type()} ${os.release()}` },
      });
      await saveState(opts.state, {
        appliance: client.base.toString(),
        fingerprint: pinned,
        agentId: res.agentId,
        sourceId: res.sourceId,
        credential: res.credential,
        enrolledAt: new Date().toISOString(),
      });
      process.stdout.write(`enrolled as agent ${res.agentId} of source ${res.sourceId}; state in ${opts.state}\n`);
    } finally {
      client.close();
    }
  });

// --state is accepted (and unused) so every subcommand takes the same options in scripts and unit files.
withState(program.command('disks').description('list this machine\'s disks with their partition tables and filesystems'))
  .option('--disk <path...>', 'examine these block devices or image files instead of all disks')
  .option('--json', 'print JSON')
  .action(async (opts: { disk?: string[]; json?: boolean }) => {
    await initHashing();
    const found = [];
    if (opts.disk) {
      for (const p of opts.disk) {
        const { disk, key } = await openSourceDisk(p);
        try {
          const { layout, usage } = await examine(disk);
          found.push({ path: key, size: disk.size, layout, usedBytes: usage.usedBytes() });
        } finally {
          await disk.close();
        }
      }
    } else {
      for (const d of await listDisks()) found.push(d);
    }
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
      return;
    }
    for (const d of found) {
      const table = d.layout?.table;
      const problem = 'error' in d && d.error ? `  (${String(d.error)})` : '';
      process.stdout.write(`${d.path}  ${formatBytes(d.size)}  ${table ? table.type.toUpperCase() : 'unreadable'}${'usedBytes' in d ? `  used ${formatBytes(d.usedBytes)}` : ''}${problem}\n`);
      for (const p of table?.partitions ?? []) {
        const fs = p.filesystem;
        process.stdout.write(
          `  ${String(p.number).padStart(2)}  start ${formatBytes(p.startByte).padStart(9)}  size ${formatBytes(p.sizeBytes).padStart(9)}  ${fs.type}${fs.label ? ` "${fs.label}"` : ''}${fs.uuid ? ` ${fs.uuid}` : ''}\n`,
        );
      }
      for (const vg of d.layout?.volumeGroups ?? []) {
        process.stdout.write(`  LVM volume group ${vg.name}: ${vg.freeExtents} free extents of ${formatBytes(vg.extentSize)}${vg.readWhole ? ` (read whole: ${vg.readWhole})` : ''}\n`);
        for (const lv of vg.lvs) {
          const fs = lv.filesystem;
          process.stdout.write(
            `      ${lv.name}  size ${formatBytes(lv.size).padStart(9)}  ${fs ? `${fs.type}${fs.label ? ` "${fs.label}"` : ''}${fs.uuid ? ` ${fs.uuid}` : ''}` : `read whole: ${lv.readWhole ?? '?'}`}\n`,
          );
        }
      }
    }
  });

/** --exclude, --pre-hook and --post-hook, shared by `backup` and `run`. */
function withSourceOptions(cmd: Command): Command {
  return cmd
    .option('--exclude <path>', 'absolute path whose files\' blocks are not read or sent (repeatable); they restore as zeros', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--pre-hook <cmd>', 'command run by /bin/sh before the disks are read (backup: every run; run: the final cycle only)')
    .option('--post-hook <cmd>', 'command run by /bin/sh after the cycle, whether it succeeded or not (run: the final cycle only)');
}

/** `backup --network-mbps`: only the network is capped (disk share 100 %, the default queue depth). */
function networkCap(value: string): LiveThrottle {
  const mbps = Number(value);
  if (!(value.trim() !== '' && Number.isFinite(mbps) && mbps > 0)) {
    throw new InvalidArgumentError('Give a number of Mbit/s above 0 (e.g. 300), or leave the option out for no cap.');
  }
  return new LiveThrottle({ networkMbps: mbps, diskPercent: 100, queueDepth: DEFAULT_THROTTLE.queueDepth });
}

interface SourceOpts {
  exclude: string[];
  preHook?: string;
  postHook?: string;
}

withSourceOptions(withState(program.command('backup').description('run one backup cycle now: full if the appliance has no point yet, else incremental')))
  .option('--disk <path...>', 'block devices or image files to back up (default: every disk of this machine)')
  .option('--json', 'print the result as one JSON object')
  .option('--network-mbps <n>', 'cap the bytes sent at N Mbit/s for this cycle (the daemon takes its cap from the job; default here: unlimited)', networkCap)
  .action(async (opts: StateOpt & SourceOpts & { disk?: string[]; json?: boolean; networkMbps?: LiveThrottle }) => {
    const throttle = opts.networkMbps;
    await initHashing();
    const state = await loadState(opts.state);
    const paths = opts.disk ?? (await listDisks()).map((d) => d.path);
    if (paths.length === 0) throw new FerryError('DISK_UNREADABLE', 'no disks found; name them with --disk');
    const client = new ApplianceClient(state.appliance, state.fingerprint, state.credential);
    const log = timestampedLog();
    try {
      await removeStaleSnapshots(log);
      const result = await withSourceDisks(paths, { exclude: opts.exclude, hooks: { pre: opts.preHook, post: opts.postHook }, log }, (disks) =>
        runCycle({ client, disks, progress: process.stderr, throttle }),
      );
      if (opts.json) process.stdout.write(`${JSON.stringify({ ...result, resumed: undefined })}\n`);
      else {
        process.stdout.write(
          `${result.point.name} (point ${result.point.id}): read ${formatBytes(result.bytesRead)}, changed ${formatBytes(result.bytesChanged)}, ` +
            `sent ${formatBytes(result.bytesSent)}, stored ${formatBytes(result.bytesStored)} in ${result.seconds.toFixed(1)} s\n`,
        );
      }
    } finally {
      client.close();
    }
  });

withSourceOptions(withState(program.command('run').description('run as a service: keep a control connection to the appliance and run the backup cycles it asks for')))
  .option('--disk <path...>', 'block devices or image files to back up (default: every disk of this machine, looked up at each cycle)')
  .action(async (opts: StateOpt & SourceOpts & { disk?: string[] }) => {
    const source = { exclude: opts.exclude, preHook: opts.preHook, postHook: opts.postHook };
    const code = await runDaemon({ enrollment: { stateDir: opts.state }, disks: opts.disk, source, version: VERSION, log: timestampedLog() });
    // Exit even if a socket of a cycle that would not stop in time is still open.
    process.exit(code);
  });

// Started by the appliance over SSH for a passive source; not for engineers to type.
program
  .command('passive')
  .description('run as a passive source\'s agent: the appliance starts this over SSH and sends the enrollment on stdin')
  .option('--disk <path...>', 'block devices or image files to back up (default: every disk, looked up at each cycle)')
  .option('--pid-file <file>', 'replaces the agent whose pid this file holds (left over from a broken SSH session)')
  .action(async (opts: { disk?: string[]; pidFile?: string }) => {
    const log = timestampedLog();
    if (opts.pidFile) await replacePrevious(opts.pidFile, log);
    const { state, closed } = await readPassiveEnrollment(process.stdin);
    const code = await runDaemon({ enrollment: { state }, stop: closed, disks: opts.disk, version: VERSION, log });
    process.exit(code);
  });

program
  .command('version')
  .description('print the version; with --json also the SHA-256 of this executable (the single-file build), for scripts and the appliance')
  .option('--json', 'print { version, executable, sha256 } as JSON')
  .action(async (opts: { json?: boolean }) => {
    process.stdout.write(opts.json ? `${JSON.stringify(await versionInfo())}\n` : `${VERSION}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => exitWithError('ferry-agent', err));
