import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { FerryError } from '@ferry/protocol';
import { openSourceDisks, closeSourceDisks, withSourceDisks } from './source.js';
import { attachLoop, detachLoop, makeTempDir, MiB, removeTempDir, run, SMALL_XFS_ENV } from './test-images.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

function xfsImage(name: string): string {
  const img = `${dir}/${name}.img`;
  run('truncate', ['-s', String(64 * MiB), img]);
  run('mkfs.xfs', ['-q', '-f', img], undefined, SMALL_XFS_ENV);
  return img;
}

void test('openSourceDisks() reads an XFS mounted read-write whole, and only its used blocks once unmounted', async () => {
  const img = xfsImage('live');
  const dev = attachLoop(img);
  const mnt = `${dir}/mnt-live`;
  mkdirSync(mnt);
  const lines: string[] = [];
  try {
    run('mount', [dev, mnt]);
    try {
      writeFileSync(`${mnt}/f`, randomBytes(2 * MiB));
      const disks = await openSourceDisks([img], { log: (l) => lines.push(l) });
      try {
        assert.equal(disks[0]?.usage.usedBytes(), 64 * MiB);
      } finally {
        await closeSourceDisks(disks);
      }
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    detachLoop(dev);
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /XFS at .*mnt-live \(disk loop\d+\) is mounted read-write and read live: read whole/);
  const disks = await openSourceDisks([img]);
  try {
    const used = disks[0]?.usage.usedBytes() ?? 0;
    assert.ok(used > 2 * MiB && used < 32 * MiB, `unmounted, only used blocks are read (${used})`);
  } finally {
    await closeSourceDisks(disks);
  }
});

void test('openSourceDisks() applies exclusions and logs what they took out', async () => {
  const img = `${dir}/ext.img`;
  run('truncate', ['-s', String(64 * MiB), img]);
  run('mkfs.ext4', ['-q', '-F', img]);
  const dev = attachLoop(img);
  const mnt = `${dir}/mnt-ext`;
  mkdirSync(mnt);
  const lines: string[] = [];
  try {
    run('mount', [dev, mnt]);
    try {
      mkdirSync(`${mnt}/spool`);
      writeFileSync(`${mnt}/spool/big`, randomBytes(8 * MiB));
      run('sync', []);
      const disks = await openSourceDisks([img], { exclude: [`${mnt}/spool`], log: (l) => lines.push(l) });
      try {
        // A mounted ext4 needs journal recovery: read whole, minus the excluded file.
        assert.equal(disks[0]?.usage.usedBytes(), 64 * MiB - 8 * MiB);
      } finally {
        await closeSourceDisks(disks);
      }
    } finally {
      run('umount', [mnt]);
    }
  } finally {
    detachLoop(dev);
  }
  assert.deepEqual(lines, [`exclusion ${mnt}/spool: 1 files, ${8 * MiB} bytes of ${img} not read or sent`]);
});

void test('withSourceDisks() runs the pre-hook before and the post-hook after, also when the cycle fails; a failing pre-hook stops the cycle', async () => {
  const img = `${dir}/hooks.img`;
  run('truncate', ['-s', String(8 * MiB), img]);
  const trace = `${dir}/trace`;
  writeFileSync(trace, '');
  const hooks = { pre: `echo pre >> ${trace}`, post: `echo post >> ${trace}; echo done` };
  const lines: string[] = [];
  const size = await withSourceDisks([img], { hooks, log: (l) => lines.push(l) }, (disks) => {
    writeFileSync(trace, 'cycle\n', { flag: 'a' });
    return Promise.resolve(disks[0]?.disk.size);
  });
  assert.equal(size, 8 * MiB);
  assert.equal(readFileSync(trace, 'utf8'), 'pre\ncycle\npost\n');
  assert.ok(lines.includes('post-hook output: done'));

  writeFileSync(trace, '');
  await assert.rejects(withSourceDisks([img], { hooks }, () => Promise.reject(new Error('cycle broke'))), /cycle broke/);
  assert.equal(readFileSync(trace, 'utf8'), 'pre\npost\n', 'the post-hook runs after a failed cycle, whose error wins');

  writeFileSync(trace, '');
  await assert.rejects(
    withSourceDisks([img], { hooks: { pre: 'echo no database >&2; exit 3', post: `echo post >> ${trace}` } }, () => Promise.resolve(0)),
    (err: unknown) => err instanceof FerryError && err.code === 'HOOK_FAILED' && /exited with status 3: no database/.test(err.message),
  );
  assert.equal(readFileSync(trace, 'utf8'), 'post\n', 'the cycle does not run after a failed pre-hook; the post-hook does (to start what the pre-hook stopped)');
});
