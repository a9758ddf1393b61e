import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_DOWNLOAD_PATH, AGENT_SHA256_HEADER, API_PREFIX, initHashing, type AgentInstall, type SourceSummary } from '@ferry/protocol';
import { ferryOk, ROOT, sh, type RunResult } from '../lib/cli.js';
import { startTestAppliance, type TestAppliance } from '../lib/jobs.js';
import { createPartitionedImage, fsckClean, treeChecksums, withMounted } from '../lib/disk-image.js';
import { textBlob, type BackupJson } from '../lib/fixture-data.js';

/*
 * The agent as one executable, as a field engineer meets it: `make agent-binary`, the appliance serves it, and
 * the one-line command from POST /agent-installs installs, enrolls and (here, without systemd) sets it up. The
 * command runs with a PATH that has no node, so the installed executable cannot lean on this machine's Node.
 */

const EXECUTABLE = path.join(ROOT, 'agent/out/ferry-agent');
const MIB = 1024 * 1024;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = '/'): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A directory of links to every system program except Node and its launchers: a PATH without node. */
async function pathWithoutNode(dir: string): Promise<string> {
  await mkdir(dir);
  const skip = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack']);
  for (const from of ['/usr/local/sbin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const names = await readdir(from).catch(() => [] as string[]);
    for (const name of names) {
      if (skip.has(name)) continue;
      await symlink(path.join(from, name), path.join(dir, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
  }
  return dir;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

async function filesUnder(dir: string): Promise<string[]> {
  const out = await sh('find', [dir, '-type', 'f']);
  return out.split('\n').filter(Boolean);
}

describe('the agent as one executable, installed by the one-line command', { timeout: 20 * 60_000 }, () => {
  let work: string;
  let appliance: TestAppliance;
  let nodeless: string;

  before(async () => {
    await initHashing(); // the appliance runs in this process
    // Cached: make rebuilds only when a source of the agent changed.
    const made = await run('make', ['-C', ROOT, 'agent-binary'], process.env);
    assert.equal(made.code, 0, `make agent-binary failed:\n${made.stdout}\n${made.stderr}`);
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-agent-binary-'));
    nodeless = await pathWithoutNode(path.join(work, 'bin'));
    appliance = await startTestAppliance();
  });

  after(async () => {
    await appliance?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('make agent-binary is cached, and the executable runs with an empty environment and names its own SHA-256', async () => {
    const again = await run('make', ['-C', ROOT, 'agent-binary'], process.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to be done/);
    const empty = await run(EXECUTABLE, ['disks', '--help'], {});
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /partition tables/);
    const v = await run(EXECUTABLE, ['version', '--json'], {});
    assert.equal(v.code, 0, v.stderr);
    const info = JSON.parse(v.stdout) as { version: string; sha256: string };
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'agent/package.json'), 'utf8')) as { version: string };
    assert.equal(info.version, pkg.version);
    assert.equal(info.sha256, await sha256(EXECUTABLE));
    assert.equal((await run(EXECUTABLE, ['--version'], {})).stdout.trim(), pkg.version);
  });

  test('the appliance serves the executable with its SHA-256, without a token', async () => {
    const headers = await sh('curl', ['-sS', '-k', '-o', '/dev/null', '-D', '-', `${appliance.server.url}${AGENT_DOWNLOAD_PATH}`]);
    assert.match(headers, /^HTTP\/1\.1 200/);
    assert.match(headers, new RegExp(`^${AGENT_SHA256_HEADER}: ${await sha256(EXECUTABLE)}\\r?$`, 'mi'));
  });

  test('the command from POST /agent-installs installs and enrolls without node, and the installed agent backs up a disk that restores equal', async () => {
    const noNode = await run('sh', ['-c', 'command -v node || echo none'], { PATH: nodeless });
    assert.equal(noNode.stdout.trim(), 'none', 'the PATH for the install has no node');

    const install = await appliance.admin.json<AgentInstall>(`${API_PREFIX}/agent-installs`, { method: 'POST', body: {} });
    assert.equal(install.applianceUrl, appliance.server.url);
    assert.equal(install.fingerprint, appliance.server.fingerprint);
    assert.equal(install.agent.sha256, await sha256(EXECUTABLE));
    assert.ok(install.command.includes(install.token) && install.command.includes(`--pinnedpubkey '${install.pin}'`), install.command);

    const root = path.join(work, 'root');
    await mkdir(root);
    const r = await run('sh', ['-c', install.command], { PATH: nodeless, FERRY_INSTALL_ROOT: root });
    assert.equal(r.code, 0, `the install command failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /the service was not started/);

    const installed = path.join(root, 'usr/local/sbin/ferry-agent');
    assert.equal(await sha256(installed), install.agent.sha256);
    assert.equal((await stat(installed)).mode & 0o777, 0o755);
    const unit = await readFile(path.join(root, 'etc/systemd/system/ferry-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/sbin\/ferry-agent run --state \/var\/lib\/ferry-agent$/m);
    const state = path.join(root, 'var/lib/ferry-agent');
    const sources = await appliance.admin.json<SourceSummary[]>(`${API_PREFIX}/sources`);
    assert.equal(sources.length, 1, 'the install enrolled one source');
    assert.match(r.stdout, new RegExp(`enrolled as agent \\d+ of source ${sources[0]!.id}`));

    // A real cycle with the installed executable, still without node.
    const image = path.join(work, 'source.img');
    await createPartitionedImage(image, 'mbr', 128, 96, 8);
    const expected = await withMounted(image, 1, async (dir) => {
      await mkdir(path.join(dir, 'etc'));
      for (let i = 0; i < 40; i++) await writeFile(path.join(dir, 'etc', `conf-${i}.txt`), textBlob(i, 20_000 + i * 101));
      await writeFile(path.join(dir, 'data.bin'), randomBytes(12 * MIB));
      return treeChecksums(dir);
    });
    const backup = await run(installed, ['backup', '--disk', image, '--state', state, '--json'], { PATH: nodeless });
    assert.equal(backup.code, 0, `backup with the installed executable failed:\n${backup.stderr}`);
    const result = JSON.parse(backup.stdout) as BackupJson;
    assert.equal(result.point.name, 'CYCLE_1');
    assert.ok(result.bytesSent < result.bytesRead, 'lz4 compressed the text files');

    const target = path.join(work, 'target.img');
    await sh('truncate', ['-s', '128M', target]);
    const { url, fingerprint } = appliance.server;
    const token = appliance.admin.credential ?? assert.fail('the test appliance has an admin token');
    await ferryOk('restore', ['--appliance', url, '--fingerprint', fingerprint, '--token', token, '--point', String(result.point.id), '--target', target]);
    await fsckClean(target, 1);
    assert.deepEqual(await withMounted(target, 1, (dir) => treeChecksums(dir), true), expected);
  });

  test('the command refuses an appliance with another certificate: nothing is downloaded or installed', async () => {
    const other = await startTestAppliance();
    try {
      const install = await appliance.admin.json<AgentInstall>(`${API_PREFIX}/agent-installs`, { method: 'POST', body: {} });
      // The same command, pointed at a server with another certificate (as an interceptor would be).
      const command = install.command.replace(install.applianceUrl, other.server.url);
      assert.notEqual(command, install.command);
      const root = path.join(work, 'root-refused');
      await mkdir(root);
      const r = await run('sh', ['-c', command], { PATH: nodeless, FERRY_INSTALL_ROOT: root });
      assert.notEqual(r.code, 0, `the command succeeded against another certificate:\n${r.stderr}`);
      assert.match(r.stderr, /public key does not match pinned public key/);
      assert.deepEqual(await filesUnder(root), [], 'nothing was installed');
      assert.deepEqual(await other.admin.json<SourceSummary[]>(`${API_PREFIX}/sources`), [], 'nothing enrolled on the other appliance');
    } finally {
      await other.close();
    }
  });
});
