import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { FerryError } from '@ferry/protocol';
import { writeFileDurable } from '../store/durable.js';
import { DataKeys, MASTER_BYTES, NONCE_BYTES, TAG_BYTES } from './data-keys.js';

/** `DATA/keys/keyring.json` (format: docs/spec/encryption.md). */
export function keyringPath(dataDir: string): string {
  return path.join(dataDir, 'keys', 'keyring.json');
}

export const MIN_PASSPHRASE_LENGTH = 12;
/** Calibration aims at this much time per derivation on the appliance (between 0.5 and 1 s). */
const TARGET_MS = 500;
const MIN_LOG_N = 14;
const MAX_LOG_N = 20;
const SCRYPT_R = 8;
const SCRYPT_P = 1;

const KeyringSchema = z.strictObject({
  format: z.literal('ferry-keyring'),
  version: z.literal(1),
  kdf: z.strictObject({
    algorithm: z.literal('scrypt'),
    N: z.number().int().min(1024).max(1 << MAX_LOG_N),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(16),
    salt: z.string().regex(/^[A-Za-z0-9+/]{43}=$/),
    measuredMs: z.number().min(0),
    /** Set when N came from FERRY_TEST_SCRYPT_N rather than calibration (tests only). */
    test: z.boolean().optional(),
  }),
  wrap: z.strictObject({
    algorithm: z.literal('aes-256-gcm'),
    nonce: z.string(),
    ciphertext: z.string(),
    tag: z.string(),
  }),
  createdAt: z.string(),
});
type Keyring = z.infer<typeof KeyringSchema>;

function derive(passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // scrypt needs 128·N·r bytes; Node refuses more than maxmem (32 MiB by default).
    scrypt(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** The wrap binds the parameters: a keyring whose N or salt was edited does not open, whatever the passphrase. */
function wrapAad(k: Keyring['kdf']): Buffer {
  return Buffer.from(`ferry-keyring:1:scrypt:${k.N}:${k.r}:${k.p}:${k.salt}`, 'utf8');
}

/** Why a passphrase is refused, or null. The passphrase protects every byte on the box in transit. */
export function passphraseProblem(passphrase: string): string | null {
  if (passphrase.trim().length === 0) return 'the passphrase is empty';
  if ([...passphrase].length < MIN_PASSPHRASE_LENGTH) return `the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`;
  if (new Set(passphrase).size < 5) return 'the passphrase repeats too few different characters';
  const lower = passphrase.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (/^(?:password|passphrase|ferry|qwerty|letmein|admin|changeme)+[0-9]*$/.test(lower) || /^(?:0123456789|1234567890)+/.test(lower)) {
    return 'the passphrase is a well-known one';
  }
  return null;
}

/** Picks scrypt's N so one derivation takes at least TARGET_MS here (r 8, p 1), measuring as it goes. */
async function calibrate(): Promise<{ N: number; measuredMs: number }> {
  const salt = randomBytes(32);
  for (let logN = MIN_LOG_N + 1; ; logN++) {
    const started = performance.now();
    await derive('calibration', salt, 1 << logN, SCRYPT_R, SCRYPT_P);
    const ms = performance.now() - started;
    if (ms >= TARGET_MS || logN === MAX_LOG_N) return { N: 1 << logN, measuredMs: Math.round(ms) };
  }
}

export interface CreateKeyringOptions {
  /** Tests only: a fixed scrypt N (recorded in the keyring with `test: true`) instead of calibration. */
  testN?: number | undefined;
}

/**
 * Makes a new master secret, wraps it under the passphrase and writes the keyring (mode 0600). Refuses an
 * existing keyring: overwriting it would make every stored byte unreadable.
 */
export async function createKeyring(dataDir: string, passphrase: string, opts: CreateKeyringOptions = {}): Promise<DataKeys> {
  const problem = passphraseProblem(passphrase);
  if (problem) throw new FerryError('PASSPHRASE_WEAK', problem);
  const file = keyringPath(dataDir);
  if (existsSync(file)) throw new FerryError('APPLIANCE_INITIALISED', `${file} exists: this appliance already has a passphrase`);
  let N: number;
  let measuredMs: number;
  if (opts.testN !== undefined) {
    if (!(Number.isInteger(Math.log2(opts.testN)) && opts.testN >= 1024 && opts.testN <= 1 << MAX_LOG_N)) {
      throw new FerryError('CONFIG_INVALID', `FERRY_TEST_SCRYPT_N must be a power of two from 1024 to ${1 << MAX_LOG_N}, got ${opts.testN}`);
    }
    N = opts.testN;
    const started = performance.now();
    await derive('calibration', randomBytes(32), N, SCRYPT_R, SCRYPT_P);
    measuredMs = Math.round(performance.now() - started);
  } else {
    ({ N, measuredMs } = await calibrate());
  }
  const salt = randomBytes(32);
  const kdf: Keyring['kdf'] = { algorithm: 'scrypt', N, r: SCRYPT_R, p: SCRYPT_P, salt: salt.toString('base64'), measuredMs, ...(opts.testN !== undefined ? { test: true } : {}) };
  const kek = await derive(passphrase, salt, N, SCRYPT_R, SCRYPT_P);
  const master = randomBytes(MASTER_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(wrapAad(kdf));
  const ciphertext = Buffer.concat([cipher.update(master), cipher.final()]);
  const keyring: Keyring = {
    format: 'ferry-keyring',
    version: 1,
    kdf,
    wrap: { algorithm: 'aes-256-gcm', nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') },
    createdAt: new Date().toISOString(),
  };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileDurable(file, `${JSON.stringify(keyring, null, 2)}\n`, 0o600);
  return DataKeys.fromMaster(master);
}

function readKeyring(dataDir: string): Keyring {
  const file = keyringPath(dataDir);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new FerryError('KEYRING_INVALID', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = KeyringSchema.safeParse(raw);
  if (!parsed.success) {
    throw new FerryError('KEYRING_INVALID', `${file} is not a Ferry keyring: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** The scrypt parameters recorded in the keyring (for status pages and the operator). */
export function keyringParameters(dataDir: string): Keyring['kdf'] {
  return readKeyring(dataDir).kdf;
}

/** Unwraps the master secret; PASSPHRASE_WRONG when the passphrase does not open it. */
export async function unlockKeyring(dataDir: string, passphrase: string): Promise<DataKeys> {
  const k = readKeyring(dataDir);
  const kek = await derive(passphrase, Buffer.from(k.kdf.salt, 'base64'), k.kdf.N, k.kdf.r, k.kdf.p);
  const tag = Buffer.from(k.wrap.tag, 'base64');
  const nonce = Buffer.from(k.wrap.nonce, 'base64');
  if (tag.length !== TAG_BYTES || nonce.length !== NONCE_BYTES) throw new FerryError('KEYRING_INVALID', `${keyringPath(dataDir)}: nonce or tag has the wrong length`);
  const decipher = createDecipheriv('aes-256-gcm', kek, nonce);
  decipher.setAAD(wrapAad(k.kdf));
  decipher.setAuthTag(tag);
  let master: Buffer;
  try {
    master = Buffer.concat([decipher.update(Buffer.from(k.wrap.ciphertext, 'base64')), decipher.final()]);
  } catch {
    throw new FerryError('PASSPHRASE_WRONG', 'the passphrase does not unlock this appliance');
  }
  if (master.length !== MASTER_BYTES) throw new FerryError('KEYRING_INVALID', `${keyringPath(dataDir)}: the wrapped secret has ${master.length} bytes`);
  return DataKeys.fromMaster(master);
}

/** Whether the data directory is encrypted: it has a keyring (or a `keys/` folder that lost it: KEYRING_INVALID). */
export function isEncrypted(dataDir: string): boolean {
  if (existsSync(keyringPath(dataDir))) return true;
  if (existsSync(path.dirname(keyringPath(dataDir)))) {
    throw new FerryError('KEYRING_INVALID', `${keyringPath(dataDir)} is missing but ${path.dirname(keyringPath(dataDir))} exists: the data is encrypted and cannot be read without its keyring`);
  }
  return false;
}

/**
 * The keys the stores of this data directory use: the unlocked ones when given, a locked stand-in (every use
 * fails with APPLIANCE_LOCKED) for an encrypted directory not unlocked in this process, none when unencrypted.
 */
export function storeKeys(dataDir: string, unlocked: DataKeys | null | undefined): DataKeys | null {
  if (unlocked) return unlocked;
  return isEncrypted(dataDir) ? DataKeys.locked() : null;
}
