import { mkdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { deviceNumbers } from '@ferry/protocol';
import { sh } from './cli.js';

/*
 * A source disk that behaves like a real one for the storage throttle's test: a loop device reads a fast
 * backing file, so a megabyte takes a fraction of a millisecond and its busy periods are shorter than the
 * kernel's 4 ms accounting tick. Here the loop device reads its backing file with O_DIRECT, and the processes
 * that read the loop device are put in a blkio cgroup that limits reads of the backing file's disk: the loop
 * driver charges its backing reads to the cgroup of whoever asked (Linux ≥ 5.14), so the loop device serves
 * those processes at the set rate, with real queueing, like a disk of that speed.
 */

const BLKIO = '/sys/fs/cgroup/blkio';

export interface SlowDisk {
  /** The loop device. */
  device: string;
  /** Puts a process (and every thread it has or makes) under the read limit. */
  admit(pid: number): Promise<void>;
  /** Bytes the admitted processes have read from the backing file's disk, through the limit. */
  bytesRead(): Promise<number>;
  close(): Promise<void>;
}

/** The whole disk (major:minor) a file's bytes are on: blk-throttle rules name disks, not partitions. */
async function diskOf(file: string): Promise<string> {
  const { major, minor } = deviceNumbers((await stat(file, { bigint: true })).dev);
  const sys = `/sys/dev/block/${major}:${minor}`;
  const isPartition = await stat(path.join(sys, 'partition')).then(
    () => true,
    () => false,
  );
  return isPartition ? (await readFile(path.join(sys, '..', 'dev'), 'utf8')).trim() : `${major}:${minor}`;
}

export async function slowDisk(image: string, mibPerSecond: number, name: string): Promise<SlowDisk> {
  try {
    await stat(path.join(BLKIO, 'blkio.throttle.read_bps_device'));
  } catch {
    throw new Error(`${BLKIO} (the cgroup v1 blkio controller) is not mounted: the slow test disk needs it`);
  }
  const group = path.join(BLKIO, name);
  await mkdir(group, { recursive: true });
  let device = '';
  const close = async (): Promise<void> => {
    if (device) await sh('losetup', ['-d', device]).catch(() => '');
    // A group can only go once it is empty: its processes are gone or moved back.
    const left = (await readFile(path.join(group, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    for (const pid of left) await writeFile(path.join(BLKIO, 'cgroup.procs'), pid).catch(() => undefined);
    await rmdir(group).catch(() => undefined);
  };
  try {
    await writeFile(path.join(group, 'blkio.throttle.read_bps_device'), `${await diskOf(image)} ${mibPerSecond * 1024 * 1024}\n`);
    device = (await sh('losetup', ['-f', '--show', '--direct-io=on', image])).trim();
    const dio = (await readFile(`/sys/block/${path.basename(device)}/loop/dio`, 'utf8')).trim();
    if (dio !== '1') throw new Error(`${device} does not read ${image} with direct I/O (the file system refused it)`);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    device,
    admit: (pid) => writeFile(path.join(group, 'cgroup.procs'), String(pid)),
    bytesRead: async () => {
      const lines = (await readFile(path.join(group, 'blkio.throttle.io_service_bytes'), 'utf8')).split('\n');
      return lines.map((l) => l.split(' ')).reduce((sum, [, op, n]) => (op === 'Read' ? sum + Number(n) : sum), 0);
    },
    close,
  };
}

export interface BusySample {
  /** Milliseconds during which the device had at least one request in flight. */
  busyMs: number;
  wallMs: number;
  samples: number;
}

// Runs in a worker thread: reads the device's in-flight request count every ~100 µs until told to stop.
const SAMPLER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const stop = new Int32Array(workerData.stop);
const fd = fs.openSync(workerData.file, 'r');
const buf = Buffer.alloc(64);
const nap = new Int32Array(new SharedArrayBuffer(4));
let last = performance.now();
const t0 = last;
let busy = 0, was = false, samples = 0;
while (Atomics.load(stop, 0) === 0) {
  const n = fs.readSync(fd, buf, 0, 64, 0);
  const now = performance.now();
  if (was) busy += now - last;
  const [r, w] = buf.toString('latin1', 0, n).trim().split(/\\s+/).map(Number);
  was = r + w > 0;
  last = now;
  samples++;
  Atomics.wait(nap, 0, 0, 0.1);
}
parentPort.postMessage({ busyMs: busy, wallMs: performance.now() - t0, samples });
`;

/**
 * Measures how long a block device has requests in flight, by sampling /sys/block/DEV/inflight about every
 * 100 µs from a worker thread. Unlike the kernel's io_ticks (/sys/block/DEV/stat, what iostat's %util reads),
 * which advances in whole 4 ms ticks at request starts and ends and so overstates short busy periods, the
 * sampling error here is random and averages out over a run.
 */
export function sampleBusy(device: string): { stop(): Promise<BusySample> } {
  const stop = new SharedArrayBuffer(4);
  const worker = new Worker(SAMPLER, { eval: true, workerData: { file: `/sys/block/${path.basename(device)}/inflight`, stop } });
  const result = new Promise<BusySample>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    stop: async () => {
      Atomics.store(new Int32Array(stop), 0, 1);
      const r = await result;
      await worker.terminate();
      return r;
    },
  };
}
