import { createCipheriv, createDecipheriv, createSecretKey, hash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ConfigError, WharfError } from '../core/errors.ts';

/** Seals secrets (endpoint secrets, source credentials) before they are stored. */
export interface SecretBox {
  encrypt(plain: string): string;
  /** Throws WHARF_ERR_DECRYPT when the value was sealed with another key or altered. */
  decrypt(sealed: string): string;
}

const PREFIX = 'v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_FILE = 'encryption.key';

/**
 * AES-256-GCM. Sealed values are `v1:` + base64(iv | tag | ciphertext); the version prefix
 * leaves room to change the scheme or rotate keys without guessing what a stored value is.
 */
export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) {
    throw new WharfError('WHARF_ERR_ENCRYPTION_KEY', `the encryption key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
  // A KeyObject holds a private copy, so a caller that reuses or zeroes its buffer cannot change
  // the key under us. It is also the fast way in: on Node 24, a cipher made from a Buffer key
  // spends most of its time turning it into a key object (an unseal took 15 µs, 4 µs from the
  // KeyObject; the dispatcher unseals an endpoint's secrets for each batch).
  const k = createSecretKey(key);

  return {
    encrypt(plain) {
      // A random 96-bit IV per value: GCM's security rests on never reusing an IV with one key.
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', k, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
    },
    decrypt(sealed) {
      if (!sealed.startsWith(PREFIX)) throw decryptError('it is not a v1 sealed value');
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64');
      if (raw.length < IV_BYTES + TAG_BYTES) throw decryptError('it is too short');
      try {
        const decipher = createDecipheriv('aes-256-gcm', k, raw.subarray(0, IV_BYTES));
        decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        // final() verifies the tag; update()'s output is unauthenticated until then and is
        // dropped with the exception, never returned or attached to the error.
        return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw decryptError('the encryption key is not the one it was sealed with, or the value was altered');
      }
    },
  };
}

function decryptError(why: string): WharfError {
  return new WharfError('WHARF_ERR_DECRYPT', `cannot decrypt a stored secret: ${why}`);
}

/**
 * The box for a configured key: 64 hex characters or base64 of 32 bytes. An empty key means the
 * key file in the data dir, created on first start, so the embedded default runs unconfigured
 * while a deployment can still pass its key from a secret store.
 */
export async function loadSecretBox(options: { key: string; dataDir: string }): Promise<SecretBox> {
  const configured = options.key.trim();
  if (configured !== '') {
    const key = parseKey(configured);
    if (!key) {
      throw new ConfigError(`encryption_key must be 64 hex characters or base64 of ${KEY_BYTES} bytes`, {
        key: 'encryption_key',
      });
    }
    return createSecretBox(key);
  }
  return createSecretBox(await readOrCreateKeyFile(join(options.dataDir, KEY_FILE), options.dataDir));
}

async function readOrCreateKeyFile(path: string, dataDir: string): Promise<Buffer> {
  const existing = await readKeyFile(path);
  if (existing) return existing;
  if (existing === null) throw emptyKeyFile(path);

  await mkdir(dataDir, { recursive: true });
  const key = randomBytes(KEY_BYTES);
  try {
    // 'wx' fails if another replica sharing the data dir created the file first; its key then
    // wins, since values may already be sealed with it.
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(`${key.toString('hex')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // The other replica may not have written its key yet.
  for (let i = 0; i < 20; i++) {
    const raced = await readKeyFile(path);
    if (raced) return raced;
    await delay(50);
  }
  throw emptyKeyFile(path);
}

/** The key in the file; undefined when there is no file, null when it is empty. */
async function readKeyFile(path: string): Promise<Buffer | undefined | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (text.trim() === '') return null;
  const key = parseKey(text.trim());
  if (!key) {
    throw new ConfigError(`${path} must hold 64 hex characters (or base64 of ${KEY_BYTES} bytes)`, {
      file: path,
      key: 'encryption_key',
    });
  }
  return key;
}

function emptyKeyFile(path: string): ConfigError {
  // A crash between creating and writing the file. Nothing can have been sealed with a key that
  // was never written, but the file is not replaced silently in case another replica owns it.
  return new ConfigError(`${path} is empty; delete it to have a new key generated`, { file: path, key: 'encryption_key' });
}

function parseKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const key = Buffer.from(text, 'base64');
    if (key.length === KEY_BYTES) return key;
  }
  return undefined;
}

/** API keys are long random strings, so one SHA-256 is enough; only the hash is stored. */
export function hashApiKey(key: string): string {
  // The one-shot hash: no Hash object a request (a third of the time, issue 15).
  return hash('sha256', key, 'hex');
}

export function generateApiKey(): string {
  return `wharf_${randomBytes(32).toString('base64url')}`;
}
