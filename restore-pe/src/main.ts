import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ApplianceClient, FerryError, formatBytes, initHashing, exitWithError } from '@ferry/protocol';
import { restorePoint, type RestoreResult } from './restore.js';
import { openRestoreSession, RestoreReporter, restoreSession } from './session/session.js';
import { runBoot } from './boot/boot.js';
import { runCompatibility } from './compat/index.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function targetsOf(list: string): string[] {
  return list
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

function printResult(result: RestoreResult, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  for (const d of result.disks) {
    process.stdout.write(
      `${d.source} → ${d.target}: ${formatBytes(d.bytesWritten)} written${d.resumedAt > 0 ? ` (resumed at block ${d.resumedAt})` : ''}${d.verified ? ', verified' : ''}${d.gptRelocated ? ', GPT moved to the end' : ''}\n`,
    );
  }
  process.stdout.write(`restored ${result.point.name} in ${result.seconds.toFixed(1)} s\n`);
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const program = new Command('ferry-restore')
  .description('Ferry restore: writes a point from the appliance onto target disks, one target per source disk')
  .version(VERSION)
  .showHelpAfterError()
  // Usage errors exit 2 (bad input), not commander's default 1.
  .exitOverride();

program
  .command('point', { isDefault: true })
  .description('restore a point by id with an admin token (the default command)')
  .requiredOption('--appliance <url>', 'appliance URL, e.g. https://10.0.0.5:8443')
  .requiredOption('--fingerprint <fp>', 'appliance certificate fingerprint (SHA256:…)')
  .requiredOption('--token <token>', 'API token allowed to read the point')
  .requiredOption('--point <id>', 'point id to restore')
  .requiredOption('--target <paths>', 'target block devices or image files, comma-separated, in source disk order')
  .option('--no-verify', 'skip reading back and checking every written block')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { appliance: string; fingerprint: string; token: string; point: string; target: string; verify: boolean; json?: boolean }) => {
    if (!/^[1-9][0-9]{0,14}$/.test(opts.point)) throw new FerryError('BAD_REQUEST', `--point must be a point id (a positive integer), got "${opts.point}"`);
    await initHashing();
    const client = new ApplianceClient(opts.appliance, opts.fingerprint, opts.token);
    try {
      const result = await restorePoint({ client, pointId: Number(opts.point), targets: targetsOf(opts.target), verify: opts.verify, progress: process.stderr, log });
      printResult(result, opts.json);
    } finally {
      client.close();
    }
  });

program
  .command('code')
  .description('restore with a restore code from the appliance (resumes an interrupted restore; progress shows in the UI)')
  .requiredOption('--appliance <url>', 'appliance URL, e.g. https://10.0.0.5:8443')
  .requiredOption('--fingerprint <fp>', 'appliance certificate fingerprint (SHA256:…)')
  .requiredOption('--code <code>', 'restore code, XXXX-XXXX-XXXX-XXXX (`ferry-appliance restore-code`, or the UI)')
  .requiredOption('--target <paths>', 'target block devices or image files, comma-separated, in source disk order')
  .option('--no-verify', 'skip reading back and checking every written block')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { appliance: string; fingerprint: string; code: string; target: string; verify: boolean; json?: boolean }) => {
    await initHashing();
    const { client, session } = await openRestoreSession(opts.appliance, opts.fingerprint, opts.code);
    try {
      const reporter = new RestoreReporter(client, session.restoreId, log);
      const result = await restoreSession({ client, session, targets: targetsOf(opts.target), verify: opts.verify, progress: process.stderr, log }, reporter);
      await reporter.send({ phase: 'done', progress: { bytesDone: 1, bytesTotal: 1, disk: null, message: `restored ${result.point.name}` } }, true);
      printResult(result, opts.json);
    } finally {
      client.close();
    }
  });

program
  .command('boot')
  .description('the restore ISO: ask for network, appliance and restore code (or read ferry.* from the kernel command line), restore, make the system bootable, reboot')
  .option('--cmdline <text>', 'kernel command line to read ferry.* settings from (default: /proc/cmdline)')
  .action(async (opts: { cmdline?: string }) => {
    await initHashing();
    process.exitCode = await runBoot({ version: VERSION, cmdline: opts.cmdline ?? readFileSync('/proc/cmdline', 'utf8'), compatibility: runCompatibility });
  });

program.parseAsync(process.argv).catch((err: unknown) => exitWithError('ferry-restore', err));
