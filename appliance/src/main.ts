import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import pino from 'pino';
import { API_PREFIX, ApplianceClient, FerryError, formatBytes, initHashing, exitWithError } from '@ferry/protocol';
import { loadConfig, type ConfigInput } from './config.js';
import { buildAppliance, dataPaths } from './appliance.js';
import { startServer } from './server.js';
import { createLogger } from './log.js';
import { loadOrCreateCertificate } from './tls/certificate.js';
import { createKeyring, isEncrypted, unlockKeyring } from './keys/keyring.js';
import { passphraseFrom } from './keys/passphrase-input.js';
import type { DataKeys } from './keys/data-keys.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const WEB_ROOT = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const quietLog = () => pino({ level: 'silent' });

function dataOption(cmd: Command): Command {
  return cmd.option('--data <dir>', 'data directory (env FERRY_DATA; default /var/lib/ferry-appliance)');
}

/** Tests only: a cheap scrypt N for keyrings they make (recorded in the keyring, so unlocking needs no such setting). */
function testScryptN(): number | undefined {
  const n = process.env.FERRY_TEST_SCRYPT_N;
  return n ? Number(n) : undefined;
}

/** A data directory with neither a keyring nor a catalog: its passphrase must be set before anything is stored. */
function uninitialised(dataDir: string): boolean {
  return !isEncrypted(dataDir) && !existsSync(dataPaths(dataDir).catalog);
}

/** Offline commands that only touch the catalog: refuse a new data directory (it would become an unencrypted one). */
function catalogAppliance(config: ReturnType<typeof loadConfig>) {
  if (uninitialised(config.dataDir)) {
    throw new FerryError(
      'APPLIANCE_LOCKED',
      `${config.dataDir} is not initialised: run \`ferry-appliance init --data ${config.dataDir}\` (or start \`ferry-appliance serve\` and set the passphrase in a browser) first`,
    );
  }
  return buildAppliance(config, quietLog());
}

/**
 * Runs an offline command that changes the catalog, and records it in the audit log like a request: the actor is
 * the console's user (`cli:root`), the action `CLI <command>`.
 */
function withCatalog<T>(config: ReturnType<typeof loadConfig>, command: string, fn: (a: ReturnType<typeof buildAppliance>) => T): T {
  const a = catalogAppliance(config);
  const entry = { actor: `cli:${os.userInfo().username}`, role: 'admin', address: 'console', action: `CLI ${command}` };
  try {
    const out = fn(a);
    a.audit.record({ ...entry, outcome: 'ok', status: 0, code: null });
    return out;
  } catch (err) {
    const code = err instanceof FerryError ? err.code : null;
    a.audit.record({ ...entry, outcome: code ? 'refused' : 'failed', status: 2, code });
    throw err;
  } finally {
    a.close();
  }
}

/** Offline commands that read chunk or index contents: the keys of an encrypted directory, from the passphrase. */
async function offlineKeys(dataDir: string, passphraseFile: string | undefined): Promise<DataKeys | null> {
  if (uninitialised(dataDir)) throw new FerryError('APPLIANCE_LOCKED', `${dataDir} is not initialised: it holds no data yet`);
  if (!isEncrypted(dataDir)) return null;
  return unlockKeyring(dataDir, await passphraseFrom(passphraseFile));
}

async function serve(opts: ConfigInput & { passphraseFile?: string }): Promise<void> {
  const config = loadConfig(opts);
  await initHashing();
  const log = createLogger(dataPaths(config.dataDir).logs, config.logLevel);
  const file = opts.passphraseFile ?? process.env.FERRY_PASSPHRASE_FILE;
  const passphrase = file ? await passphraseFrom(file) : undefined;
  const server = await startServer(config, log, { version: VERSION, webRoot: WEB_ROOT, passphrase, testScryptN: testScryptN() });
  const shown = `https://${config.listenHost === '0.0.0.0' ? '<this machine>' : config.listenHost}:${server.port}/`;
  process.stdout.write(
    `Ferry appliance ${VERSION} listening on https://${config.listenHost}:${server.port}\n` +
      `Data directory: ${config.dataDir}\n` +
      `Certificate fingerprint: ${server.fingerprint}\n` +
      (server.state === 'uninitialised'
        ? `New appliance: open ${shown} in a browser and set the passphrase that encrypts its data (or run \`ferry-appliance init\`).\n`
        : server.state === 'locked'
          ? `Locked: open ${shown} and type the passphrase, or run \`ferry-appliance unlock --url ${shown.replace(/\/$/, '')} --fingerprint ${server.fingerprint}\`.\n`
          : 'Unlocked.\n'),
  );
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

const program = new Command('ferry-appliance')
  .description('Ferry appliance: receives block-level backups from agents and serves restores')
  .version(VERSION)
  .showHelpAfterError()
  // Usage errors exit 2 (bad input), not commander's 1, which verify uses for "damage found".
  .exitOverride();

dataOption(program.command('serve').description('run the appliance (HTTPS API and web UI)'))
  .option('--listen <host:port>', 'address to listen on (env FERRY_LISTEN; default 0.0.0.0:8443)')
  .addOption(new Option('--block-size <bytes>', 'block size for new cycles (env FERRY_BLOCK_SIZE; default 1048576)').hideHelp())
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace (env FERRY_LOG_LEVEL)')
  .addOption(new Option('--suspend-after <seconds>', 'suspend a job whose agent is unreachable this long (env FERRY_SUSPEND_AFTER_SECONDS; default 900)').hideHelp())
  .option('--passphrase-file <file>', 'unlock at start with the passphrase in this file; a new data directory is initialised with it (env FERRY_PASSPHRASE_FILE)')
  .action((opts: ConfigInput & { passphraseFile?: string }) => serve(opts));

dataOption(program.command('init').description('set the passphrase of a new appliance (encrypts everything it stores); asks twice on a terminal'))
  .option('--passphrase-file <file>', 'read the passphrase from this file instead (env FERRY_PASSPHRASE_FILE)')
  .option('--no-encryption', 'store chunks and indexes unencrypted (no passphrase; anyone holding the disks can read them)')
  .action(async (opts: ConfigInput & { passphraseFile?: string; encryption: boolean }) => {
    const config = loadConfig(opts);
    if (!uninitialised(config.dataDir)) throw new FerryError('APPLIANCE_INITIALISED', `${config.dataDir} is initialised already (it has a keyring or a catalog)`);
    if (!opts.encryption) {
      buildAppliance(config, quietLog()).close();
      process.stdout.write(`${config.dataDir}: initialised WITHOUT encryption\n`);
      return;
    }
    await createKeyring(config.dataDir, await passphraseFrom(opts.passphraseFile, { confirm: true }), { testN: testScryptN() });
    buildAppliance(config, quietLog()).close();
    process.stdout.write(`${config.dataDir}: initialised, encrypted. The passphrase is asked for after every start; it cannot be recovered.\n`);
  });

program
  .command('unlock')
  .description('unlock a running appliance over HTTPS (asks for the passphrase)')
  .requiredOption('--url <url>', 'the appliance, e.g. https://appliance:8443')
  .requiredOption('--fingerprint <fp>', "the appliance certificate's fingerprint (SHA256:…), printed at its start")
  .option('--passphrase-file <file>', 'read the passphrase from this file (env FERRY_PASSPHRASE_FILE)')
  .action(async (opts: { url: string; fingerprint: string; passphraseFile?: string }) => {
    const client = new ApplianceClient(opts.url, opts.fingerprint);
    try {
      const health = await client.json<{ status: string }>(`${API_PREFIX}/health`);
      if (health.status === 'ok') {
        process.stdout.write('the appliance is unlocked already\n');
        return;
      }
      if (health.status === 'uninitialised') throw new FerryError('APPLIANCE_LOCKED', 'the appliance has no passphrase yet: open its address in a browser to set one, or run `ferry-appliance init` on it');
      await client.json(`${API_PREFIX}/unlock`, { method: 'POST', body: { passphrase: await passphraseFrom(opts.passphraseFile) } });
      process.stdout.write('unlocked\n');
    } finally {
      client.close();
    }
  });

dataOption(program.command('fingerprint').description("print the appliance certificate's SHA-256 fingerprint")).action(async (opts: ConfigInput) => {
  const config = loadConfig(opts);
  const p = dataPaths(config.dataDir);
  const tls = await loadOrCreateCertificate(p.cert, p.key);
  process.stdout.write(`${tls.fingerprint}\n`);
});

dataOption(program.command('enroll-token').description('print a one-time enrollment token for an agent'))
  .option('--ttl-hours <hours>', 'hours the token stays valid', '24')
  .action((opts: ConfigInput & { ttlHours: string }) => {
    const config = loadConfig(opts);
    const ttl = Number(opts.ttlHours);
    if (!(ttl > 0 && ttl <= 720)) throw new FerryError('CONFIG_INVALID', `--ttl-hours must be between 0 and 720, got ${opts.ttlHours}`);
    const token = withCatalog(config, 'enroll-token', (a) => a.auth.createEnrollToken(ttl).token);
    process.stdout.write(`${token}\n`);
  });

dataOption(program.command('restore-code').description('print a restore code for a point: type it at the restore ISO on the target VM'))
  .requiredOption('--point <id>', 'point id to restore (GET /api/v1/points, or the job\'s point list)')
  .option('--target-disks <n>', 'how many disks the target VM has; the ISO refuses another count before writing')
  .option('--ttl-hours <hours>', 'hours the code stays valid', '24')
  .action((opts: ConfigInput & { point: string; targetDisks?: string; ttlHours: string }) => {
    const config = loadConfig(opts);
    const pointId = Number(opts.point);
    if (!/^[1-9][0-9]{0,14}$/.test(opts.point)) throw new FerryError('BAD_REQUEST', `--point must be a point id (a positive integer), got "${opts.point}"`);
    const targetDisks = opts.targetDisks === undefined ? undefined : Number(opts.targetDisks);
    if (targetDisks !== undefined && !(Number.isInteger(targetDisks) && targetDisks >= 1 && targetDisks <= 64)) {
      throw new FerryError('BAD_REQUEST', `--target-disks must be a whole number from 1 to 64, got "${opts.targetDisks}"`);
    }
    const ttlHours = Number(opts.ttlHours);
    if (!(ttlHours > 0 && ttlHours <= 24 * 14)) throw new FerryError('BAD_REQUEST', `--ttl-hours must be between 0 and 336, got ${opts.ttlHours}`);
    const { restore, code } = withCatalog(config, `restore-code --point ${pointId}`, (a) =>
      a.restores.createWithCode({ pointId, ttlHours, ...(targetDisks === undefined ? {} : { targetDisks }) }),
    );
    process.stdout.write(`${code}\n`);
    process.stderr.write(
      `restore ${restore.id} of ${restore.pointName} (${restore.sourceName}); the code is valid until ${restore.codeExpiresAt ?? '?'}.\n` +
        'Boot the Ferry restore ISO on the target VM and enter this code, the appliance address and its fingerprint (`ferry-appliance fingerprint`).\n',
    );
  });

const token = program.command('token').description('admin API tokens');
dataOption(token.command('create').description('print a new admin API token'))
  .requiredOption('--name <name>', 'what the token is for (shown in listings)')
  .action((opts: ConfigInput & { name: string }) => {
    const created = withCatalog(loadConfig(opts), 'token create', (a) => a.auth.createApiToken(opts.name));
    process.stdout.write(`${created}\n`);
  });

dataOption(program.command('verify').description('re-read every chunk and index, report damage by point (exit 1 if any)'))
  .option('--json', 'print the report as JSON')
  .option('--passphrase-file <file>', 'passphrase of an encrypted appliance (env FERRY_PASSPHRASE_FILE; asked on a terminal otherwise)')
  .action(async (opts: ConfigInput & { json?: boolean; passphraseFile?: string }) => {
    await initHashing();
    const config = loadConfig(opts);
    const keys = await offlineKeys(config.dataDir, opts.passphraseFile);
    const a = buildAppliance(config, quietLog(), { keys });
    try {
      const report = await a.verify.run((p) => {
        process.stderr.write(`verify: ${p.chunksChecked}/${p.chunksTotal} chunks, ${formatBytes(p.bytesChecked)}\n`);
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        for (const p of report.points) {
          process.stdout.write(`${p.ok ? 'ok     ' : 'DAMAGED'} point ${p.id} ${p.name} (source ${p.sourceId})\n`);
          for (const problem of p.problems) process.stdout.write(`          ${problem}\n`);
        }
        process.stdout.write(
          `${report.chunksChecked} chunks (${formatBytes(report.bytesChecked)}) checked, ${report.damagedChunks.length} damaged, ` +
            `${report.unreferencedChunks} unreferenced\n${report.ok ? 'verify: all points intact' : 'verify: DAMAGE FOUND — restore from the damaged points will fail'}\n`,
        );
      }
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      a.close();
    }
  });

const transport = program.command('transport').description('prepare the appliance for transport, and the arrival check (on a running appliance, over HTTPS)');
for (const [name, description] of [
  ['prepare', 'pause every live job, verify everything, write the signed manifest and report; says when the box can be powered off'],
  ['arrival', 'after transport: re-verify every chunk and the root hash against the manifest; jobs may resume only when it passes'],
  ['status', 'where the preparation or the arrival check stands'],
] as const) {
  const cmd = transport
    .command(name)
    .description(description)
    .requiredOption('--url <url>', 'the appliance, e.g. https://appliance:8443')
    .requiredOption('--fingerprint <fp>', "the appliance certificate's fingerprint (SHA256:…)")
    .option('--token <token>', 'an admin API token (env FERRY_TOKEN; `ferry-appliance token create`)')
    .option('--json', 'print the final status as JSON');
  if (name === 'arrival') cmd.option('--accept-damage', 'let jobs resume even if the check finds damage (the report still lists it)');
  cmd.action(async (opts: { url: string; fingerprint: string; token?: string; json?: boolean; acceptDamage?: boolean }) => {
    const token = opts.token ?? process.env.FERRY_TOKEN;
    if (!token) throw new FerryError('AUTH_REQUIRED', 'give an admin token: --token ferry_admin_… (or FERRY_TOKEN)');
    const client = new ApplianceClient(opts.url, opts.fingerprint, token);
    type Status = { phase: string; powerOffSafe: boolean; jobsAllowed: boolean; message: string; damagedPoints: { name: string; id: number; problems: string[] }[]; mismatches: string[] };
    try {
      let st =
        name === 'status'
          ? await client.json<Status>(`${API_PREFIX}/transport`)
          : await client.json<Status>(`${API_PREFIX}/transport/${name}`, { method: 'POST', body: name === 'arrival' ? { acceptDamage: opts.acceptDamage === true } : {} });
      let last = '';
      while (st.phase === 'preparing' || st.phase === 'arriving') {
        if (st.message !== last && !opts.json) process.stderr.write(`${st.phase}: ${st.message}\n`);
        last = st.message;
        await new Promise((r) => setTimeout(r, 1000));
        st = await client.json<Status>(`${API_PREFIX}/transport`);
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
      else {
        process.stdout.write(`${st.phase}: ${st.message}\n`);
        for (const p of st.damagedPoints) process.stdout.write(`  DAMAGED ${p.name} (point ${p.id}): ${p.problems.join('; ')}\n`);
        for (const m of st.mismatches) process.stdout.write(`  differs: ${m}\n`);
        if (st.powerOffSafe && st.phase === 'ready') process.stdout.write('The appliance can be powered off now.\n');
      }
      process.exitCode = st.phase === 'failed' || st.damagedPoints.length > 0 || st.mismatches.length > 0 ? 1 : 0;
    } finally {
      client.close();
    }
  });
}

program.parseAsync(process.argv).catch((err: unknown) => exitWithError('ferry-appliance', err));
