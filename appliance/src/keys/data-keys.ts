import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { FerryError } from '@ferry/protocol';

/** AES-256-GCM nonce and tag sizes (docs/spec/encryption.md). */
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** The master secret: 32 bytes data key (AES-256-GCM) then 32 bytes id key (HMAC-SHA256). */
export const MASTER_BYTES = 64;

/** Thrown when a sealed box does not authenticate: wrong key, or bytes changed on disk. */
export class SealError extends Error {}

/**
 * The keys unwrapped from the keyring: the data key encrypts chunk and index contents and catalog secrets,
 * the id key names chunk files (HMAC of the chunk id, so equal plaintexts are not visible as equal names
 * to someone without the key). `DataKeys.locked()` stands for a keyring not unlocked in this process: every
 * use fails with APPLIANCE_LOCKED.
 */
export class DataKeys {
  readonly #data: Buffer | null;
  readonly #id: Buffer | null;
  readonly #master: Buffer | null;

  private constructor(master: Buffer | null) {
    this.#master = master;
    this.#data = master ? Buffer.from(master.subarray(0, 32)) : null;
    this.#id = master ? Buffer.from(master.subarray(32, 64)) : null;
  }

  static fromMaster(master: Buffer): DataKeys {
    if (master.length !== MASTER_BYTES) throw new Error(`the master secret is ${MASTER_BYTES} bytes, got ${master.length}`);
    return new DataKeys(Buffer.from(master));
  }

  static locked(): DataKeys {
    return new DataKeys(null);
  }

  get unlocked(): boolean {
    return this.#master !== null;
  }

  #need(): { data: Buffer; id: Buffer; master: Buffer } {
    if (!this.#data || !this.#id || !this.#master) {
      throw new FerryError(
        'APPLIANCE_LOCKED',
        'the data directory is encrypted and its keyring is not unlocked in this process: give the passphrase (--passphrase-file FILE, or type it when asked)',
      );
    }
    return { data: this.#data, id: this.#id, master: this.#master };
  }

  /** The storage key of a chunk id: HMAC-SHA256(idKey, id bytes). */
  chunkKey(id: Buffer): Buffer {
    return createHmac('sha256', this.#need().id).update(id).digest();
  }

  /** nonce ‖ AES-256-GCM(plaintext parts) ‖ tag, authenticated together with `aad`. */
  seal(parts: Buffer[], aad: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#need().data, nonce);
    cipher.setAAD(aad);
    const out = [nonce];
    for (const p of parts) out.push(cipher.update(p));
    out.push(cipher.final(), cipher.getAuthTag());
    return Buffer.concat(out);
  }

  /** Opens what seal() made; throws SealError when the bytes or the additional data were changed. */
  open(sealed: Buffer, aad: Buffer): Buffer {
    const key = this.#need().data;
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SealError(`sealed data is ${sealed.length} bytes, shorter than nonce and tag`);
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new SealError('authentication failed: the bytes were changed or belong elsewhere');
    }
  }

  /** A key for one purpose derived from the master secret (HKDF-SHA256), e.g. signing the transport manifest. */
  derive(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#need().master, Buffer.alloc(0), `ferry:${purpose}`, 32));
  }
}

const SECRET_PREFIX = 'ferry-sealed:1:';

/**
 * Secrets kept in catalog columns: sealed under the data key with the table, column and row id as
 * additional data (a value copied to another row or column does not open), stored as text. With no keys
 * (an unencrypted appliance) values stay as they are.
 */
export class CatalogSecrets {
  constructor(private readonly keys: DataKeys | null) {}

  seal(value: string, table: string, column: string, rowId: number): string {
    if (!this.keys) return value;
    return SECRET_PREFIX + this.keys.seal([Buffer.from(value, 'utf8')], aadOf(table, column, rowId)).toString('base64');
  }

  open(value: string, table: string, column: string, rowId: number): string {
    if (!value.startsWith(SECRET_PREFIX)) return value;
    if (!this.keys) throw new FerryError('KEYRING_INVALID', `${table}.${column} of row ${rowId} is encrypted but this appliance has no keyring`);
    try {
      return this.keys.open(Buffer.from(value.slice(SECRET_PREFIX.length), 'base64'), aadOf(table, column, rowId)).toString('utf8');
    } catch (err) {
      if (err instanceof SealError) throw new FerryError('KEYRING_INVALID', `${table}.${column} of row ${rowId} does not decrypt: ${err.message}`);
      throw err;
    }
  }
}

function aadOf(table: string, column: string, rowId: number): Buffer {
  return Buffer.from(`catalog:${table}/${column}/${rowId}`, 'utf8');
}
