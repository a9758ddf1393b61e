import path from 'node:path';
import { ChunkStore } from '../store/chunk-store.js';
import { IndexFiles } from '../store/index-file.js';
import { isEncrypted, unlockKeyring } from './keyring.js';

/** The chunk store and index files of a data directory, unlocked with the passphrase when it is encrypted (tests, tools). */
export async function openStores(dataDir: string, passphrase: string): Promise<{ chunks: ChunkStore; indexes: IndexFiles; encrypted: boolean }> {
  const encrypted = isEncrypted(dataDir);
  const keys = encrypted ? await unlockKeyring(dataDir, passphrase) : null;
  return { chunks: new ChunkStore(path.join(dataDir, 'chunks'), keys), indexes: new IndexFiles(path.join(dataDir, 'indexes'), keys), encrypted };
}
