import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ApplianceClient, FerryError, formatBytes, initHashing, exitWithError } from '@ferry/protocol';
import { restorePoint } from './restore.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command('ferry-restore')
  .description('Ferry restore: writes a point from the appliance onto target disks, one target per source disk')
  .version(VERSION)
  .requiredOption('--appliance <url>', 'appliance URL, e.g. https://10.0.0.5:8443')
  .requiredOption('--fingerprint <fp>', 'appliance certificate fingerprint (SHA256:…)')
  .requiredOption('--token <token>', 'API token allowed to read the point')
  .requiredOption('--point <id>', 'point id to restore')
  .requiredOption('--target <paths>', 'target block devices or image files, comma-separated, in source disk order')
  .option('--no-verify', 'skip reading back and checking every written block')
  .option('--json', 'print the result as JSON')
  .showHelpAfterError()
  // Usage errors exit 2 (bad input), not commander's default 1.
  .exitOverride()
  .action(async (opts: { appliance: string; fingerprint: string; token: string; point: string; target: string; verify: boolean; json?: boolean }) => {
    if (!/^[1-9][0-9]{0,14}$/.test(opts.point)) throw new FerryError('BAD_REQUEST', `--point must be a point id (a positive integer), got "${opts.point}"`);
    await initHashing();
    const client = new ApplianceClient(opts.appliance, opts.fingerprint, opts.token);
    try {
      const result = await restorePoint({
        client,
        pointId: Number(opts.point),
        targets: opts.target.split(',').map((t) => t.trim()).filter((t) => t.length > 0),
        verify: opts.verify,
        progress: process.stderr,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        for (const d of result.disks) {
          process.stdout.write(`${d.source} → ${d.target}: ${formatBytes(d.bytesWritten)} written${d.verified ? ', verified' : ''}${d.gptRelocated ? ', GPT moved to the end' : ''}\n`);
        }
        process.stdout.write(`restored ${result.point.name} in ${result.seconds.toFixed(1)} s\n`);
      }
    } finally {
      client.close();
    }
  });

program.parseAsync(process.argv).catch((err: unknown) => exitWithError('ferry-restore', err));
