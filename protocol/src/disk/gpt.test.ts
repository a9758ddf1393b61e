import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { encodeGuid, formatGuid, parseGptEntries, parseGptHeader, relocateGptBackup } from './gpt.js';
import type { DiskWrite } from './gpt.js';

const dir = mkdtempSync(`${tmpdir()}/ferry-disk-`);
after(() => rmSync(dir, { recursive: true, force: true }));
let count = 0;

function readAt(img: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(img, 'r');
  try {
    readSync(fd, buf, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return buf;
}

function apply(img: string, writes: DiskWrite[]): void {
  const fd = openSync(img, 'r+');
  try {
    for (const w of writes) writeSync(fd, w.data, 0, w.data.length, w.offset);
  } finally {
    closeSync(fd);
  }
}

/** sgdisk -v's verdict; it exits 0 even when it finds problems, so read the text. */
function sgdiskVerify(img: string): string {
  const r = spawnSync('sgdisk', ['-v', img], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

let template: string | undefined;

/** A 64 MiB GPT image with three partitions (one numbered 5, one with an attribute and a non-ASCII name). */
function gptImage(): string {
  if (template === undefined) {
    template = `${dir}/template.img`;
    execFileSync('truncate', ['-s', '64M', template]);
    // sgdisk pauses about a second after writing, so build once and copy.
    execFileSync('sgdisk', [
      '-n1:2048:+1M', '-t1:ef02', '-c1:BIOS boot',
      '-n2:0:+20M', '-t2:8300', '-c2:root fs ü', '-A2:set:2',
      '-n5:0:+8M', '-t5:8200',
      template,
    ]);
  }
  const img = `${dir}/gpt${count++}.img`;
  execFileSync('cp', ['--sparse=always', template, img]);
  return img;
}

interface SfdiskGpt {
  id: string;
  firstlba: number;
  lastlba: number;
  partitions: { node: string; start: number; size: number; type: string; uuid: string; name?: string; attrs?: string }[];
}

function sfdiskJson(img: string): SfdiskGpt {
  return (JSON.parse(execFileSync('sfdisk', ['--json', img], { encoding: 'utf8' })) as { partitiontable: SfdiskGpt })
    .partitiontable;
}

void test('parseGptHeader() and parseGptEntries() read what sgdisk wrote, as sfdisk sees it', () => {
  const img = gptImage();
  const expected = sfdiskJson(img);
  const header = parseGptHeader(readAt(img, 512, 512), { source: img, lba: 1 });
  assert.equal(header.diskGuid, expected.id.toLowerCase());
  assert.equal(header.myLba, 1);
  assert.equal(header.alternateLba, 64 * 2048 - 1);
  assert.equal(header.firstUsableLba, expected.firstlba);
  assert.equal(header.lastUsableLba, expected.lastlba);
  assert.equal(header.partitionEntryLba, 2);
  assert.equal(header.numEntries, 128);
  assert.equal(header.entrySize, 128);
  assert.equal(header.headerSize, 92);

  const entries = parseGptEntries(readAt(img, 1024, 128 * 128), header, { source: img });
  assert.deepEqual(
    entries.map((e) => ({ number: e.number, start: e.firstLba, size: e.lastLba - e.firstLba + 1, type: e.typeGuid, uuid: e.uniqueGuid, name: e.name })),
    expected.partitions.map((p) => ({
      number: Number(/(\d+)$/.exec(p.node)?.[1]),
      start: p.start,
      size: p.size,
      type: p.type.toLowerCase(),
      uuid: p.uuid.toLowerCase(),
      name: p.name ?? '',
    })),
  );
  assert.equal(entries[1]?.attributes, 1n << 2n, 'legacy BIOS bootable attribute');
});

void test('parseGptHeader() reads the backup header at the last LBA, pointing back at the primary', () => {
  const img = gptImage();
  const last = 64 * 2048 - 1;
  const backup = parseGptHeader(readAt(img, last * 512, 512), { source: img, lba: last });
  assert.equal(backup.myLba, last);
  assert.equal(backup.alternateLba, 1);
  assert.equal(backup.partitionEntryLba, last - 32);
  const entries = parseGptEntries(readAt(img, backup.partitionEntryLba * 512, 128 * 128), backup);
  assert.equal(entries.length, 3);
});

void test('parseGptHeader() rejects a damaged header, naming the disk and LBA', () => {
  const img = gptImage();
  const sector = readAt(img, 512, 512);
  sector[60] = (sector[60] ?? 0) ^ 0xff;
  assert.throws(() => parseGptHeader(sector, { source: img, lba: 1 }), new RegExp(`GPT header CRC mismatch on ${img} at LBA 1`));
  assert.throws(() => parseGptHeader(Buffer.alloc(512), { source: img, lba: 1 }), /signature "EFI PART" missing/);
  assert.throws(() => parseGptHeader(readAt(img, 512, 512), { source: img, lba: 7 }), /claims to live at LBA 1/);
});

void test('parseGptEntries() rejects an entry array whose CRC does not match the header', () => {
  const img = gptImage();
  const header = parseGptHeader(readAt(img, 512, 512));
  const entries = readAt(img, 1024, 128 * 128);
  entries[200] = (entries[200] ?? 0) ^ 1;
  assert.throws(() => parseGptEntries(entries, header, { source: img, lba: 2 }), new RegExp(`entry array CRC mismatch on ${img} at LBA 2`));
});

void test('formatGuid() and encodeGuid() use GPT mixed endianness and round-trip', () => {
  const bytes = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
  assert.equal(formatGuid(bytes), 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  assert.deepEqual(encodeGuid('C12A7328-F81F-11D2-BA4B-00A0C93EC93B'), bytes);
});

function growAndRelocate(img: string, newSize: number, fromBackup = false): DiskWrite[] {
  const oldLast = statSync(img).size / 512 - 1;
  execFileSync('truncate', ['-s', String(newSize), img]);
  const headerLba = fromBackup ? oldLast : 1;
  const header = readAt(img, headerLba * 512, 512);
  const entriesLba = parseGptHeader(header).partitionEntryLba;
  return relocateGptBackup(header, readAt(img, entriesLba * 512, 128 * 128), BigInt(newSize / 512), 512, readAt(img, 0, 512));
}

void test('relocateGptBackup() makes a GPT image valid on a larger disk (sgdisk -v finds no problems)', () => {
  const img = gptImage();
  const before = sfdiskJson(img);
  const newSize = 200 * 1024 * 1024;
  const writes = growAndRelocate(img, newSize);
  assert.doesNotMatch(sgdiskVerify(img), /No problems found/, 'a grown image is broken until relocated');
  apply(img, writes);
  assert.match(sgdiskVerify(img), /No problems found/);

  const sectors = newSize / 512;
  const after = sfdiskJson(img);
  assert.equal(after.lastlba, sectors - 34);
  assert.deepEqual(after.partitions, before.partitions);
  assert.equal(readAt(img, 446 + 12, 4).readUInt32LE(0), sectors - 1, 'protective MBR covers the new disk');
  const backup = parseGptHeader(readAt(img, (sectors - 1) * 512, 512), { lba: sectors - 1 });
  assert.equal(backup.alternateLba, 1);
  assert.equal(backup.partitionEntryLba, sectors - 33);
  assert.deepEqual(readAt(img, (64 * 2048 - 1) * 512, 8), Buffer.alloc(8), 'the stale backup header is wiped');
});

void test('relocateGptBackup() rebuilds the primary from the backup header when the primary is damaged', () => {
  const img = gptImage();
  const before = sfdiskJson(img);
  apply(img, [{ offset: 512, data: Buffer.alloc(512 * 33) }]);
  const newSize = 100 * 1024 * 1024;
  apply(img, growAndRelocate(img, newSize, true));
  assert.match(sgdiskVerify(img), /No problems found/);
  assert.deepEqual(sfdiskJson(img).partitions, before.partitions);
});

void test('relocateGptBackup() caps the protective MBR at 0xFFFFFFFF sectors on a disk beyond 2 TiB', () => {
  const img = gptImage();
  const newSize = 3 * 1024 ** 4;
  apply(img, growAndRelocate(img, newSize));
  assert.match(sgdiskVerify(img), /No problems found/);
  assert.equal(readAt(img, 446 + 12, 4).readUInt32LE(0), 0xffffffff);
});

void test('relocateGptBackup() refuses a target too small for the partitions', () => {
  const img = gptImage();
  const header = readAt(img, 512, 512);
  const entries = readAt(img, 1024, 128 * 128);
  // Partition 5 ends at LBA 61439; the backup needs 33 more sectors after the last usable one.
  assert.throws(() => relocateGptBackup(header, entries, 61439 + 33), /too small/);
  assert.ok(relocateGptBackup(header, entries, 61440 + 33).length > 0);
});

void test('relocateGptBackup() grows a protective MBR whatever size it claimed, but leaves a hybrid MBR alone', () => {
  const img = gptImage();
  apply(img, [{ offset: 446 + 12, data: Buffer.from([0xff, 0xff, 0xff, 0xff]) }]);
  const newSize = 100 * 1024 * 1024;
  apply(img, growAndRelocate(img, newSize));
  assert.equal(readAt(img, 446 + 12, 4).readUInt32LE(0), newSize / 512 - 1);

  const hybrid = gptImage();
  execFileSync('sgdisk', ['-h', '2', hybrid]);
  const mbrBefore = readAt(hybrid, 0, 512);
  apply(hybrid, growAndRelocate(hybrid, newSize));
  assert.deepEqual(readAt(hybrid, 0, 512), mbrBefore);
  assert.match(sgdiskVerify(hybrid), /No problems found/);
});
