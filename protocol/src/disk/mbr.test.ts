import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseEbr, parseMbr, isExtendedType } from './mbr.js';

const dir = mkdtempSync(`${tmpdir()}/ferry-disk-`);
after(() => rmSync(dir, { recursive: true, force: true }));

function sector(img: string, lba: number): Buffer {
  const buf = Buffer.alloc(512);
  const fd = openSync(img, 'r');
  try {
    readSync(fd, buf, 0, 512, lba * 512);
  } finally {
    closeSync(fd);
  }
  return buf;
}

interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  bootable?: boolean;
}

function sfdiskJson(img: string): { id: string; partitions: SfdiskPartition[] } {
  const out = JSON.parse(execFileSync('sfdisk', ['--json', img], { encoding: 'utf8' })) as {
    partitiontable: { id: string; partitions: SfdiskPartition[] };
  };
  return out.partitiontable;
}

function mbrImage(): string {
  const img = `${dir}/mbr.img`;
  execFileSync('truncate', ['-s', '64M', img]);
  const script = [
    'label: dos',
    'start=2048, size=16M, type=83, bootable',
    'start=34816, size=8M, type=82',
    'start=51200, type=5',
    'start=53248, size=4M, type=83',
    'start=63488, type=8e',
  ].join('\n');
  execFileSync('sfdisk', ['-q', img], { input: script });
  return img;
}

void test('parseMbr() and parseEbr() find the primary and logical partitions sfdisk created, with absolute LBAs', () => {
  const img = mbrImage();
  const expected = sfdiskJson(img);
  const mbr = parseMbr(sector(img, 0));
  assert.ok(mbr);
  assert.equal(mbr.protective, false);
  assert.equal(`0x${mbr.diskSignature.toString(16).padStart(8, '0')}`, expected.id);

  const found: { number: number; start: number; size: number; type: string; bootable: boolean }[] = [];
  let logicalNumber = 5;
  for (const e of mbr.entries) {
    found.push({ number: e.slot + 1, start: e.startLba, size: e.sectorCount, type: e.type.toString(16), bootable: e.bootable });
    if (!isExtendedType(e.type)) continue;
    for (let lba: number | null = e.startLba; lba !== null; ) {
      const ebr = parseEbr(sector(img, lba), lba, e.startLba);
      if (ebr.logical) {
        const l = ebr.logical;
        found.push({ number: logicalNumber++, start: l.startLba, size: l.sectorCount, type: l.type.toString(16), bootable: l.bootable });
      }
      lba = ebr.nextEbrLba;
    }
  }
  assert.deepEqual(
    found,
    expected.partitions.map((p) => ({
      number: Number(/(\d+)$/.exec(p.node)?.[1]),
      start: p.start,
      size: p.size,
      type: p.type,
      bootable: p.bootable ?? false,
    })),
  );
});

void test('parseMbr() returns null without the 0x55AA signature or with an invalid boot flag', () => {
  assert.equal(parseMbr(Buffer.alloc(512)), null);
  const s = sector(mbrImage(), 0);
  s[446] = 0x12;
  assert.equal(parseMbr(s), null);
});

void test('parseMbr() does not read the BPB of a whole-disk FAT filesystem as partitions', () => {
  const s = Buffer.alloc(512);
  s.set([0xeb, 0x58, 0x90], 0);
  s.write('FAT32   ', 82, 'latin1');
  s.fill(0x00, 446, 510);
  s.writeUInt32LE(0x12345678, 454);
  s.set([0x55, 0xaa], 510);
  assert.equal(parseMbr(s), null);
});

void test('parseMbr() recognises the protective MBR of a GPT disk', () => {
  const img = `${dir}/gpt.img`;
  execFileSync('truncate', ['-s', '8M', img]);
  execFileSync('sgdisk', ['-n1:0:0', img]);
  const mbr = parseMbr(sector(img, 0));
  assert.ok(mbr?.protective);
  assert.deepEqual(mbr.entries, [{ slot: 0, type: 0xee, bootable: false, startLba: 1, sectorCount: 16383 }]);
});

void test('parseEbr() rejects a sector without the EBR signature', () => {
  assert.throws(() => parseEbr(Buffer.alloc(512), 5000, 4000), /EBR at LBA 5000 has no 0x55AA signature/);
});
