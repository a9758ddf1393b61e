import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runCompatibility, runCommand, type CompatStep } from './index.js';
import { inChroot, withFixtureRoot, withImageCopy } from './test-fixture.js';

// The dracut path and guest-tool removal on a real system: a Debian bookworm disk image whose initramfs is
// built by dracut, with open-vm-tools and hyperv-daemons installed (test/fixtures/debian-dracut.sh), on a loop
// device; its own dracut, lsinitrd, dpkg, grub-install run in a chroot. A RHEL-family system cannot be built
// here (only Debian's mirror is reachable), so rpm and the /boot/initramfs-<version>.img naming stay unproven.
// Needs root and loop devices.
const asRoot = process.getuid?.() === 0;
const skip = asRoot ? false : 'needs root and loop devices';

const execFileP = promisify(execFile);
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/debian-dracut.sh', import.meta.url));
/** The cached fixture image, built on first use (a few minutes). */
async function ensureDracutSource(): Promise<string> {
  try {
    const { stdout } = await execFileP('bash', [FIXTURE], { maxBuffer: 16 * 1024 * 1024 });
    return stdout.trim().split('\n').pop()!;
  } catch (err) {
    throw new Error(`${FIXTURE} failed: ${((err as { stderr?: string }).stderr ?? String(err)).slice(-4000)}`);
  }
}

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const hasModule = (files: string, m: string) => new RegExp(`/${m}\\.ko(\\.\\w+)?$`, 'm').test(files);
const VIRTIO = ['virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_pci'];
const GUEST_TOOLS = ['open-vm-tools', 'hyperv-daemons'];
/** A daemon of each: open-vm-tools' and hyperv-daemons' KVP daemon. */
const DAEMONS = ['/usr/bin/vmtoolsd', '/usr/sbin/hv_kvp_daemon'];

/** dpkg's view of a package in the chroot: its Status, or 'unknown' when dpkg has no record of it at all. */
async function packageStatus(root: string, name: string): Promise<string> {
  const r = await runCommand('dpkg-query', ['-W', '-f=${Status}', name], { chroot: root, okCodes: [1] });
  return r.code === 0 ? r.stdout.trim() : 'unknown';
}

test('on a Debian system that uses dracut, compatibility processing adds virtio with dracut and removes open-vm-tools and hyperv-daemons', { skip, timeout: 20 * 60_000 }, async (t) => {
  await withImageCopy(await ensureDracutSource(), 1, async (dev) => {
    const before = new Map<string, string>();
    await withFixtureRoot(dev, async (root) => {
      for (const v of await readdir(`${root}/lib/modules`)) before.set(v, await sha256(`${root}/boot/initrd.img-${v}`));
      for (const p of GUEST_TOOLS) assert.equal(await packageStatus(root, p), 'install ok installed', `the fixture has ${p}`);
      for (const f of DAEMONS) assert.ok(existsSync(`${root}${f}`), `the fixture has ${f}`);
    });
    assert.ok(before.size > 0, 'the fixture has a kernel');

    // The whole processing, as the ISO runs it: the fixture has GRUB's packages, so every step can succeed.
    // No guest-agent packages (that step is proven in compat.test.ts) and no NICs (no network config here).
    const steps = await runCompatibility({ targets: [dev], firmware: 'bios', packagesDir: '/nonexistent', nics: [], report: () => undefined });
    for (const st of steps) t.diagnostic(`${st.name}: ${st.status}: ${st.detail}`);
    const s = new Map(steps.map((st) => [st.name, st]));
    assert.deepEqual(
      steps.filter((st) => st.status === 'failed'),
      [],
      'no step failed',
    );
    assert.deepEqual(
      steps.map((st) => st.name),
      ['root', 'distribution', 'fstab', 'crypttab', 'boot-config', 'guest-tools', 'guest-agent', 'initramfs', 'network', 'bootloader', 'unmount'],
    );
    assert.match(s.get('distribution')!.detail, /Debian GNU\/Linux 12.*initramfs: dracut; packages: dpkg/);

    const tools = s.get('guest-tools')!;
    assert.equal(tools.status, 'ok');
    for (const p of GUEST_TOOLS) assert.match(tools.detail, new RegExp(`\\b${p}\\b`), `the guest-tools step names ${p}`);

    const initramfs: CompatStep = s.get('initramfs')!;
    assert.equal(initramfs.status, 'ok', initramfs.detail);
    assert.match(initramfs.detail, /\/etc\/dracut\.conf\.d\/90-ferry-virtio\.conf/);
    for (const v of before.keys()) {
      assert.ok(initramfs.detail.includes(`/boot/initrd.img-${v}: ${VIRTIO.join(', ')}`), `the step names the image and the drivers: ${initramfs.detail}`);
      assert.ok(initramfs.detail.includes(`previous images kept as /boot/initrd.img-${v}.ferry-backup`), initramfs.detail);
    }
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes('ferry-root-'), 'everything is unmounted');

    await withFixtureRoot(dev, async (root) => {
      for (const [v, original] of before) {
        const image = `/boot/initrd.img-${v}`;
        const files = await inChroot(root, 'lsinitrd', [image]);
        for (const m of VIRTIO) assert.ok(hasModule(files, m), `${m} in ${image} (lsinitrd)`);

        const backup = `${image}.ferry-backup`;
        assert.ok(existsSync(`${root}${backup}`), `the previous image is kept as ${backup}`);
        assert.equal(await sha256(`${root}${backup}`), original, 'the backup is the original image, unchanged');
        const old = await inChroot(root, 'lsinitrd', [backup]);
        for (const m of VIRTIO) assert.ok(!hasModule(old, m), `${m} was not in the original image`);
      }
      assert.match(await readFile(`${root}/etc/dracut.conf.d/90-ferry-virtio.conf`, 'utf8'), /^add_drivers\+=" virtio_blk virtio_scsi virtio_net virtio_pci "$/m);
      // The restored system's next kernel update runs dracut without --add-drivers: Ferry's config alone must
      // keep virtio in (the fixture's own config leaves it out). Only dracut's base module, to keep it short:
      // dracut installs the drivers its configuration names whatever modules it includes.
      const [v] = [...before.keys()];
      await inChroot(root, 'dracut', ['--force', '--modules', 'base', '/tmp/ferry-rebuilt.img', v!]);
      const rebuilt = await inChroot(root, 'lsinitrd', ['/tmp/ferry-rebuilt.img']);
      for (const m of VIRTIO) assert.ok(hasModule(rebuilt, m), `${m} in an image dracut builds later without --add-drivers`);

      // Purged, configuration files too: not "deinstall ok config-files".
      for (const p of GUEST_TOOLS) assert.match(await packageStatus(root, p), /^(unknown|unknown ok not-installed)$/, `${p} is purged`);
      for (const f of DAEMONS) assert.equal(existsSync(`${root}${f}`), false, `${f} is gone`);
      assert.equal(existsSync(`${root}/usr/sbin/policy-rc.d`), false, 'no policy-rc.d left behind');

      // The fstab step ran before the rebuild (dracut may copy fstab): the root is named by UUID now.
      assert.match(await readFile(`${root}/etc/fstab`, 'utf8'), /^UUID=\S+\s+\/\s+ext4/m);
    });
  });
});
