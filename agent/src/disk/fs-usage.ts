import type { Disk } from './block-reader.js';
import { ext4UsedExtents } from './ext4-bitmap.js';
import { PROBE_BYTES, swapHeaderBytes, type FilesystemInfo } from './filesystem.js';
import { UsageMap } from './usage-map.js';
import { xfsUsedExtents } from './xfs-used.js';

/**
 * The bytes a filesystem of a kind we can map uses, as offsets from `start` (its first byte), or null when
 * all `length` bytes must be read: an unknown kind, or a filesystem whose state we cannot trust.
 */
export async function filesystemUsedExtents(disk: Disk, start: number, length: number, fs: FilesystemInfo): Promise<UsageMap | null> {
  switch (fs.type) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      // Partition space past the filesystem's last block (a partition grown before resize2fs) holds nothing.
      return ext4UsedExtents(disk, start, length);
    case 'xfs':
      return xfsUsedExtents(disk, start, length);
    case 'swap': {
      // Swap contents are disposable; the header page (signature, UUID, label) is all a restore needs.
      const page = swapHeaderBytes(await disk.read(start, Math.min(PROBE_BYTES, length)));
      if (page === null) return null;
      const map = new UsageMap();
      map.add(0, page);
      return map;
    }
    case 'btrfs':
    case 'lvm2':
    case 'crypto_LUKS':
    case 'vfat':
    case 'ntfs':
    case 'unknown':
      return null;
  }
}
