import { crc32 as zlibCrc32 } from 'node:zlib';

/** CRC-32 (IEEE 802.3, as used by GPT) of `data`, as an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  // zlib returns a signed-looking value on some paths; GPT stores it unsigned.
  return zlibCrc32(data) >>> 0;
}
