export { crc32 } from './crc32.js';
export { parseMbr, parseEbr, isExtendedType, hasBootSignature, MBR_TYPE_PROTECTIVE } from './mbr.js';
export type { Mbr, MbrEntry, Ebr } from './mbr.js';
export {
  parseGptHeader,
  parseGptEntries,
  gptEntryArrayBytes,
  relocateGptBackup,
  formatGuid,
  encodeGuid,
  GPT_SIGNATURE,
} from './gpt.js';
export type { GptHeader, GptEntry, GptSource, DiskWrite } from './gpt.js';
export { deviceNumbers } from './dev-t.js';
