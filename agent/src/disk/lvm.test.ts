import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { openDisk, type Disk } from './block-reader.js';
import { readDiskLayout, usedExtents } from './disk-layout.js';
import { parseFilefrag } from './exclusions.js';
import { filesystemUsedExtents } from './fs-usage.js';
import { parseLvmText } from './lvm-metadata.js';
import { LvmTool, scatterOntoVolume, uniqueVgName } from './lvm-test-images.js';
import { isMappable, logicalVolumeDisk, lvPieces } from './lvm.js';
import { attachLoop, detachLoop, makeTempDir, MiB, removeTempDir, run, SMALL_XFS_ENV, writeAt } from './test-images.js';
import { UsageMap, type Extent } from './usage-map.js';

const dir = makeTempDir();
after(() => removeTempDir(dir));

const P1 = MiB;
const PART = 48 * MiB;
const P2 = P1 + PART;

/** Makes a flat filesystem image, mounts it to write `files`, and returns its bytes and each file's FIEMAP extents. */
function flatFilesystem(name: string, bytes: number, mkfs: () => void, files: Record<string, Buffer>, img: string): { data: Buffer; extents: Extent[] } {
  run('truncate', ['-s', String(bytes), img]);
  mkfs();
  const mnt = `${dir}/mnt-${name}`;
  mkdirSync(mnt);
  run('mount', ['-o', 'loop', img, mnt]);
  const extents: Extent[] = [];
  try {
    for (const [f, content] of Object.entries(files)) {
      mkdirSync(`${mnt}/${f}`.replace(/\/[^/]*$/, ''), { recursive: true });
      writeFileSync(`${mnt}/${f}`, content);
    }
    run('sync', []);
    const paths = Object.keys(files).map((f) => `${mnt}/${f}`);
    for (const ext of parseFilefrag(run('filefrag', ['-e', '-v', ...paths]), paths).values()) {
      for (const e of ext) extents.push({ start: e.physical, end: e.physical + e.length });
    }
  } finally {
    run('umount', [mnt]);
  }
  return { data: readFileSync(img), extents };
}

/** Bytes of the metadata extents, counted once where they overlap (the first metadata area lies in the label area). */
function metadataBytes(extents: Extent[]): number {
  const m = new UsageMap();
  for (const e of extents) m.add(e.start, e.end);
  return m.usedBytes();
}

function imageDisk(img: string): Promise<Disk> {
  return openDisk(img);
}

void test('an LVM volume group over two partitions: each logical volume is read through its segments and only its used blocks are read', async () => {
  const img = `${dir}/lvm.img`;
  run('truncate', ['-s', String(P2 + PART + MiB), img]);
  run('sgdisk', ['-o', '-n', `1:${P1 / 512}:+${PART / 1024}K`, '-t', '1:8e00', '-n', `2:${P2 / 512}:+${PART / 1024}K`, '-t', '2:8e00', img]);
  const a = attachLoop(img, P1, PART);
  let b: string | undefined;
  const vg = uniqueVgName('lvm');
  let tool = new LvmTool([a]);
  try {
    b = attachLoop(img, P2, PART);
    tool = new LvmTool([a, b]);
    tool.run('pvcreate', ['-q', a, b]);
    tool.run('vgcreate', ['-q', '-s', '1M', vg, a, b]);
    tool.lvcreate(vg, 'lvext', ['-L', '20M'], [a]);
    tool.lvcreate(vg, 'lvxfs', ['-i', '2', '-I', '64k', '-L', '40M']);
    tool.lvcreate(vg, 'lvswap', ['-L', '4M'], [b]);
    const extentSize = tool.extentSize(vg);
    const segs = tool.segments(vg);
    const partOf = new Map([
      [a, P1],
      [b, P2],
    ]);
    const peStart = new Map([a, b].map((d) => [d, tool.peStart(d)]));
    const write = (device: string, offset: number, data: Buffer): void => writeAt(img, partOf.get(device)! + offset, data);
    const pe = (d: string): number => peStart.get(d)!;
    assert.equal(segs.find((s) => s.lv === 'lvxfs')?.stripes, 2);

    const ext = flatFilesystem('ext', 20 * MiB, () => run('mkfs.ext4', ['-q', '-F', '-b', '4096', `${dir}/ext.img`]), { 'big.bin': randomBytes(5 * MiB), 'd/small': randomBytes(7000) }, `${dir}/ext.img`);
    const xfs = flatFilesystem(
      'xfs',
      40 * MiB,
      () => run('mkfs.xfs', ['-q', '-f', `${dir}/xfs.img`], undefined, SMALL_XFS_ENV),
      { 'one.bin': randomBytes(3 * MiB), 'sub/two.bin': randomBytes(700_000) },
      `${dir}/xfs.img`,
    );
    run('truncate', ['-s', String(4 * MiB), `${dir}/swap.img`]);
    run('mkswap', ['-q', `${dir}/swap.img`]);
    const flats = { lvext: ext.data, lvxfs: xfs.data, lvswap: readFileSync(`${dir}/swap.img`) };
    for (const [lv, data] of Object.entries(flats)) scatterOntoVolume(data, segs.filter((s) => s.lv === lv), extentSize, pe, write);

    // Free physical extents, as LVM reports them: these must not be read.
    const free: Extent[] = [];
    const report = JSON.parse(tool.run('pvs', ['--reportformat', 'json', '--segments', '-o', 'pv_name,pvseg_start,pvseg_size,lv_name', a, b])) as { report: { pvseg: Record<string, string>[] }[] };
    for (const s of report.report[0]?.pvseg ?? []) {
      if ((s.lv_name ?? '') !== '') continue;
      const start = partOf.get(s.pv_name ?? '')! + pe(s.pv_name ?? '') + Number(s.pvseg_start) * extentSize;
      free.push({ start, end: start + Number(s.pvseg_size) * extentSize });
    }
    assert.ok(free.reduce((n, e) => n + e.end - e.start, 0) >= 20 * MiB, 'the group keeps free extents');

    const disk = await imageDisk(img);
    try {
      const layout = await readDiskLayout(disk);
      const [group] = layout.volumeGroups ?? [];
      assert.ok(group, 'one volume group is found');
      assert.equal(group.name, vg);
      assert.equal(group.pvs.length, 2);
      assert.equal(group.freeExtents * extentSize, free.reduce((n, e) => n + e.end - e.start, 0));
      const byName = new Map(group.lvs.map((lv) => [lv.name, lv]));
      assert.deepEqual(
        group.lvs.map((lv) => [lv.name, lv.filesystem?.type]),
        [
          ['lvext', 'ext4'],
          ['lvxfs', 'xfs'],
          ['lvswap', 'swap'],
        ],
      );
      for (const [name, data] of Object.entries(flats)) {
        const lv = byName.get(name);
        assert.ok(lv && isMappable(lv), `${name} is mappable`);
        assert.ok((await logicalVolumeDisk(disk, lv).read(0, lv.size)).equals(data), `${name} reads back through its segments as written`);
      }

      const usage = await usedExtents(disk, layout);
      for (const f of free) assert.ok(!usage.overlaps(f.start, f.end), `free extents [${f.start}, ${f.end}) are not read`);
      for (const m of group.metadata) assert.deepEqual(usage.extentsIn(m.start, m.end), [m], 'labels and metadata areas are read');
      // Every file's data, found through the flat filesystem and LVM's segment layout, is read.
      for (const [name, files] of [['lvext', ext.extents] as const, ['lvxfs', xfs.extents] as const]) {
        const lv = byName.get(name)!;
        assert.ok(isMappable(lv));
        for (const e of files) for (const p of lvPieces(lv.segments, e.start, e.end)) assert.ok(usage.extentsIn(p.diskOffset, p.diskOffset + p.length).length === 1);
      }
      // Inside the volumes exactly the filesystems' used bytes are read.
      let expected = metadataBytes(group.metadata);
      for (const [name, data] of Object.entries(flats)) {
        writeFileSync(`${dir}/${name}.flat`, data);
        const flat = await openDisk(`${dir}/${name}.flat`);
        try {
          expected += (await filesystemUsedExtents(flat, 0, flat.size, byName.get(name)!.filesystem!))!.usedBytes();
        } finally {
          await flat.close();
        }
      }
      const inPartitions = usage.extentsIn(P1, P2 + PART).reduce((n, e) => n + e.end - e.start, 0);
      assert.equal(inPartitions, expected);
      assert.ok(inPartitions < (2 * PART) / 3, 'far less than the two physical volumes is read');
    } finally {
      await disk.close();
    }
  } finally {
    tool.remove(vg);
    detachLoop(a);
    if (b) detachLoop(b);
  }
});

void test('readDiskLayout() uses the newest metadata copy and reads a physical volume without metadata whole', async () => {
  const img = `${dir}/single.img`;
  run('truncate', ['-s', String(40 * MiB), img]);
  const a = attachLoop(img);
  const vg = uniqueVgName('seq');
  const tool = new LvmTool([a]);
  try {
    tool.run('pvcreate', ['-q', a]);
    tool.run('vgcreate', ['-q', '-s', '1M', vg, a]);
    for (let i = 0; i < 5; i++) tool.lvcreate(vg, `lv${i}`, ['-L', '2M']);
    tool.run('lvremove', ['--driverloaded', 'n', '-q', '-y', `${vg}/lv1`]);
  } finally {
    tool.remove(vg);
    detachLoop(a);
  }
  const disk = await openDisk(img);
  try {
    const layout = await readDiskLayout(disk);
    assert.equal(layout.filesystem?.type, 'lvm2');
    const group = layout.volumeGroups?.[0];
    assert.deepEqual(group?.lvs.map((lv) => lv.name), ['lv0', 'lv2', 'lv3', 'lv4'], 'the newest copy (after lvremove) wins');
    const usage = await usedExtents(disk, layout);
    // Empty volumes hold no filesystem: read whole. The rest of the physical volume is unallocated.
    assert.equal(usage.usedBytes(), metadataBytes(group?.metadata ?? []) + 4 * 2 * MiB);
  } finally {
    await disk.close();
  }
  // Wipe the metadata area's text: the physical volume can no longer be mapped and is read whole.
  writeAt(img, 4096, Buffer.alloc(512));
  const damaged = await openDisk(img);
  try {
    const layout = await readDiskLayout(damaged);
    assert.deepEqual(layout.volumeGroups, []);
    assert.equal((await usedExtents(damaged, layout)).usedBytes(), damaged.size);
  } finally {
    await damaged.close();
  }
});

void test('parseLvmText() reads sections, strings with escapes, numbers, lists and comments', () => {
  const root = parseLvmText('vg {\nid = "a\\"b" # comment\nseqno = 7\nstatus = ["READ", "WRITE"]\nphysical_volumes {\npv0 {\npe_start = 2048\n}\n}\n}\ncontents = "Text"\n\0\0');
  const vg = root.sections.get('vg');
  assert.equal(vg?.values.get('id'), 'a"b');
  assert.equal(vg?.values.get('seqno'), 7);
  assert.deepEqual(vg?.values.get('status'), ['READ', 'WRITE']);
  assert.equal(vg?.sections.get('physical_volumes')?.sections.get('pv0')?.values.get('pe_start'), 2048);
  assert.throws(() => parseLvmText('vg { id = "x"'), /ends inside/);
});
