/*
 * The incremental's yardstick, run as its own process: read every block a point holds data for (from its index)
 * out of the disk image and xxh64 it, one block at a time, as the cheapest possible change detection would.
 * Prints { bytes, seconds } (seconds from the first read to the last hash, without start-up).
 * Usage: read-hash.ts IMAGE INDEX
 */
import { open, readFile } from 'node:fs/promises';
import { BlockKind, INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES, decodeIndexHeader, initHashing, xxh64 } from '@ferry/protocol';

const [image, indexFile] = process.argv.slice(2);
if (!image || !indexFile) throw new Error('usage: read-hash.ts IMAGE INDEX');
await initHashing();
const index = await readFile(indexFile);
const header = decodeIndexHeader(index);
const buf = Buffer.alloc(header.blockSize);
const fh = await open(image, 'r');
let bytes = 0;
let sink = 0n;
const started = performance.now();
try {
  for (let n = 0; n < header.blockCount; n++) {
    if (index.readUInt8(INDEX_HEADER_BYTES + n * INDEX_ENTRY_BYTES) !== (BlockKind.Data as number)) continue;
    const length = Math.min(header.blockSize, header.diskSize - n * header.blockSize);
    const { bytesRead } = await fh.read(buf, 0, length, n * header.blockSize);
    sink ^= xxh64(buf.subarray(0, bytesRead));
    bytes += bytesRead;
  }
} finally {
  await fh.close();
}
process.stdout.write(`${JSON.stringify({ bytes, seconds: (performance.now() - started) / 1000, xor: sink.toString(16) })}\n`);
