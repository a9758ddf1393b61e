import { mkdirSync, accessSync, constants } from 'node:fs';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import type { Logger } from 'pino';
import { openCatalog, type Catalog } from './catalog/catalog.js';
import { AuthRepository } from './auth/repository.js';
import { AuthService } from './auth/service.js';
import { SourceRepository } from './sources/repository.js';
import { CycleRepository } from './cycles/repository.js';
import { CycleService } from './cycles/service.js';
import { PointService } from './points/service.js';
import { VerifyService } from './verify/service.js';
import { ChunkStore } from './store/chunk-store.js';
import { IndexFiles } from './store/index-file.js';
import type { Config } from './config.js';

/** Everything under one data directory, so the box can be switched off anywhere and shipped. */
export function dataPaths(dataDir: string) {
  return {
    catalog: path.join(dataDir, 'catalog.sqlite'),
    chunks: path.join(dataDir, 'chunks'),
    indexes: path.join(dataDir, 'indexes'),
    tls: path.join(dataDir, 'tls'),
    cert: path.join(dataDir, 'tls', 'cert.pem'),
    key: path.join(dataDir, 'tls', 'key.pem'),
    logs: path.join(dataDir, 'logs'),
  };
}

export interface Appliance {
  db: Catalog;
  auth: AuthService;
  sources: SourceRepository;
  cycles: CycleService;
  points: PointService;
  verify: VerifyService;
  close(): void;
}

/** Builds the appliance's objects; each gets only what it uses. */
export function buildAppliance(config: Config, log: Logger): Appliance {
  const p = dataPaths(config.dataDir);
  try {
    for (const dir of [config.dataDir, p.chunks, p.indexes, p.tls, p.logs]) mkdirSync(dir, { recursive: true, mode: 0o750 });
    accessSync(config.dataDir, constants.W_OK);
  } catch (err) {
    throw new FerryError('DATA_DIR_UNUSABLE', `cannot use ${config.dataDir} as the data directory: ${(err as Error).message}`, { cause: err });
  }
  const db = openCatalog(p.catalog);
  const sources = new SourceRepository(db);
  const cycleRepo = new CycleRepository(db);
  const chunks = new ChunkStore(p.chunks);
  const indexes = new IndexFiles(p.indexes);
  return {
    db,
    sources,
    auth: new AuthService(new AuthRepository(db), sources, config.enrollTokenTtlHours),
    cycles: new CycleService(cycleRepo, sources, chunks, indexes, config.blockSize, log),
    points: new PointService(cycleRepo, sources, chunks, indexes),
    verify: new VerifyService(cycleRepo, chunks, indexes),
    close: () => db.close(),
  };
}
