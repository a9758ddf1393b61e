import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { openDisk, type Disk } from './block-reader.js';
import { readDiskLayout } from './disk-layout.js';
import { LvmTool, uniqueVgName } from './lvm-test-images.js';
import { isMappable, logicalVolumeDisk } from './lvm.js';
import { capturedOverrides, removeStaleSnapshots, snapshotVolumes, stitchedDisk, volumeOverrides } from './snapshot.js';
import { attachLoop, detachLoop, makeTempDir, MiB, removeTempDir, run, writeAt } from './test-images.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

/** An image with two LVM physical volumes (two partitions, reached as loop windows) and the volumes `lvs` makes. */
function lvmImage(name: string, lvs: (tool: LvmTool, vg: string, a: string, b: string) => void): { img: string; vg: string; offsets: number[] } {
  const img = `${dir}/${name}.img`;
  const part = 24 * MiB;
  const offsets = [MiB, MiB + part];
  run('truncate', ['-s', String(2 * part + 2 * MiB), img]);
  run('sgdisk', ['-o', '-n', `1:2048:+${part / 1024}K`, '-t', '1:8e00', '-n', `2:${offsets[1]! / 512}:+${part / 1024}K`, '-t', '2:8e00', img]);
  const a = attachLoop(img, offsets[0], part);
  const vg = uniqueVgName(name);
  let b: string | undefined;
  let tool = new LvmTool([a]);
  try {
    b = attachLoop(img, offsets[1], part);
    tool = new LvmTool([a, b]);
    tool.run('pvcreate', ['-q', a, b]);
    tool.run('vgcreate', ['-q', '-s', '1M', vg, a, b]);
    lvs(tool, vg, a, b);
  } finally {
    tool.remove(vg);
    detachLoop(a);
    if (b) detachLoop(b);
  }
  return { img, vg, offsets };
}

void test('stitchedDisk() reads a volume from its snapshot chunk by chunk, captured metadata from memory, the rest live', async () => {
  const { img } = lvmImage('stitch', (tool, vg) => {
    tool.lvcreate(vg, 'striped', ['-i', '2', '-I', '64k', '-L', '8M']);
    tool.lvcreate(vg, 'linear', ['-L', '3M']);
  });
  // Random bytes over both physical volumes' data areas: every byte of the volumes is distinguishable.
  const live = await openDisk(img);
  const layout = await readDiskLayout(live);
  const group = layout.volumeGroups?.[0];
  assert.ok(group);
  const lv = group.lvs.find((l) => l.name === 'striped');
  assert.ok(lv && isMappable(lv));
  for (const p of group.pvs) writeAt(img, p.dataStart, randomBytes(p.start + p.size - p.dataStart));
  // The "snapshot": the volume's contents at one instant, in a file of its own (this kernel has no dm-snapshot).
  const frozen = await logicalVolumeDisk(live, lv).read(0, lv.size);
  writeFileSync(`${dir}/snap.img`, frozen);
  const captured = await capturedOverrides(live, group.metadata);
  const metadataBefore = await live.read(group.metadata[0]!.start, group.metadata[0]!.end - group.metadata[0]!.start);
  // Afterwards the live volume and the metadata change (writes, the snapshot's own metadata update).
  for (const p of group.pvs) writeAt(img, p.dataStart, randomBytes(p.start + p.size - p.dataStart));
  for (const m of group.metadata) writeAt(img, m.start, Buffer.alloc(m.end - m.start, 0x5a));

  const snap: Disk = await openDisk(`${dir}/snap.img`);
  try {
    const stitched = stitchedDisk(live, [...volumeOverrides(lv, snap), ...captured]);
    assert.ok((await logicalVolumeDisk(stitched, lv).read(0, lv.size)).equals(frozen), 'the volume reads as it was at the snapshot');
    const m = group.metadata[0]!;
    assert.ok((await stitched.read(m.start, m.end - m.start)).equals(metadataBefore), 'the metadata reads as before the snapshot');
    const linear = group.lvs.find((l) => l.name === 'linear');
    assert.ok(linear && isMappable(linear));
    const [area] = linear.allocated;
    assert.ok(area);
    assert.ok((await stitched.read(area.start, area.end - area.start)).equals(await live.read(area.start, area.end - area.start)), 'other volumes read live');
    // A read spanning a volume boundary, the metadata and live bytes is stitched in order.
    const from = group.pvs[0]!.start;
    const to = Math.max(...lv.allocated.map((e) => e.end));
    const whole = await stitched.read(from, to - from);
    for (let at = from; at < to; at += 65536) {
      const n = Math.min(65536, to - at);
      assert.ok(whole.subarray(at - from, at - from + n).equals(await stitched.read(at, n)), `stitched bytes at ${at}`);
    }
  } finally {
    await snap.close();
    await live.close();
  }
});

void test('snapshotVolumes() reads live and says so when the group has no free extents, or when lvcreate -s fails', async () => {
  const full = lvmImage('full', (tool, vg, a) => {
    tool.lvcreate(vg, 'data', ['-l', '100%FREE']);
    const dev = attachLoop(`${dir}/full.img`, MiB + tool.peStart(a), 8 * MiB);
    try {
      run('mkfs.ext4', ['-q', '-F', dev]);
    } finally {
      detachLoop(dev);
    }
  });
  const lines: string[] = [];
  const disk = await openDisk(full.img);
  try {
    const snaps = await snapshotVolumes(disk, await readDiskLayout(disk), (l) => lines.push(l));
    assert.equal(snaps.disk, disk, 'nothing to stitch');
    assert.equal(snaps.volumes.size, 0);
    await snaps.release();
  } finally {
    await disk.close();
  }
  assert.deepEqual(lines, [`crash-consistent (live read): no free extents in VG ${full.vg} for a snapshot of data`]);

  const roomy = lvmImage('roomy', (tool, vg, a) => {
    tool.lvcreate(vg, 'data', ['-L', '8M'], [a]);
    const dev = attachLoop(`${dir}/roomy.img`, MiB + tool.peStart(a), 8 * MiB);
    try {
      run('mkfs.ext4', ['-q', '-F', dev]);
    } finally {
      detachLoop(dev);
    }
  });
  lines.length = 0;
  const d2 = await openDisk(roomy.img);
  // lvcreate -s needs the volume group's devices: attach the image's physical volumes again for it.
  const loops = roomy.offsets.map((o) => attachLoop(roomy.img, o, 24 * MiB));
  // The volume's /dev/VG/LV node marks it active; without device-mapper a loop device stands in for it.
  const lvDev = attachLoop(roomy.img, MiB + MiB, 8 * MiB);
  mkdirSync(`/dev/${roomy.vg}`);
  symlinkSync(lvDev, `/dev/${roomy.vg}/data`);
  try {
    const snaps = await snapshotVolumes(d2, await readDiskLayout(d2), (l) => lines.push(l));
    // This kernel has no device-mapper: lvcreate -s fails, and the cycle goes on reading live.
    assert.equal(snaps.disk, d2);
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', new RegExp(`^crash-consistent \\(live read\\) of ${roomy.vg}/data: lvcreate -s failed`));
    await snaps.release();
  } finally {
    rmSync(`/dev/${roomy.vg}`, { recursive: true, force: true });
    detachLoop(lvDev);
    for (const l of loops) detachLoop(l);
    await d2.close();
  }
});

void test('removeStaleSnapshots() removes ferry-snap-* volumes left by a crash, not those of a running agent, nothing else', async () => {
  const img = `${dir}/stale.img`;
  run('truncate', ['-s', String(32 * MiB), img]);
  const a = attachLoop(img);
  const vg = uniqueVgName('stale');
  const tool = new LvmTool([a]);
  // Another agent process, alive (its command line names it), and one that has gone.
  const other = spawn('bash', ['-c', 'exec -a ferry-agent sleep 60'], { stdio: 'ignore' });
  try {
    tool.run('pvcreate', ['-q', a]);
    tool.run('vgcreate', ['-q', '-s', '1M', vg, a]);
    tool.lvcreate(vg, 'ferry-snap-root', ['-L', '2M', '--addtag', 'ferry_pid_999999999']);
    tool.lvcreate(vg, 'ferry-snap-home', ['-L', '2M']);
    tool.lvcreate(vg, 'ferry-snap-busy', ['-L', '2M', '--addtag', `ferry_pid_${other.pid}`]);
    tool.lvcreate(vg, 'root', ['-L', '2M']);
    const lines: string[] = [];
    await removeStaleSnapshots((l) => lines.push(l));
    assert.deepEqual(lines.sort(), [
      `removed the snapshot ${vg}/ferry-snap-home left by an earlier cycle that did not end`,
      `removed the snapshot ${vg}/ferry-snap-root left by an earlier cycle that did not end`,
    ]);
    assert.deepEqual(tool.segments(vg).map((s) => s.lv).sort(), ['ferry-snap-busy', 'root']);
  } finally {
    other.kill();
    tool.remove(vg);
    detachLoop(a);
  }
});
