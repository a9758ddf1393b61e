import path from 'node:path';
import { mkdirSync } from 'node:fs';
import pino, { type Logger } from 'pino';

/** JSON log lines to DATA/logs/appliance.log, and to stderr for the console. */
export function createLogger(logDir: string, level: string): Logger {
  mkdirSync(logDir, { recursive: true });
  const file = pino.destination({ dest: path.join(logDir, 'appliance.log'), mkdir: true, sync: false });
  return pino({ level }, pino.multistream([{ stream: process.stderr, level: level as pino.Level }, { stream: file, level: level as pino.Level }]));
}
