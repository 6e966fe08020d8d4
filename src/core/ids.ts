import { randomBytes, randomFillSync } from 'node:crypto';

/**
 * UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and serve as pagination cursors, and
 * btree inserts stay at the right edge. A counter in the random bits keeps ids from one process
 * strictly increasing within a millisecond.
 */
let lastMs = 0;
let seq = 0;

/**
 * Random bytes drawn from the OS a page at a time, as crypto.randomUUID does: a randomBytes call
 * per id was ~2 % of Wharf's CPU profile at full speed. Each byte is handed out once.
 */
const POOL_BYTES = 8192;
const pool = Buffer.alloc(POOL_BYTES);
let poolAt = POOL_BYTES;

function take(n: number): number {
  if (poolAt + n > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += n;
  return at;
}

/** The id's text is written here, one ASCII byte a character, then read out as one flat string. */
const TEXT = Buffer.alloc(36);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** Where each of the 16 bytes' two hex digits go in the text (the dashes stay). */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
for (const dash of [8, 13, 18, 23]) TEXT[dash] = 0x2d;

function hexByte(i: number, byte: number): void {
  TEXT[AT[i]!] = HEX_DIGITS[byte >>> 4]!;
  TEXT[AT[i]! + 1] = HEX_DIGITS[byte & 0xf]!;
}

export function uuidv7(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    seq = (seq + 1) & 0xfff;
    if (seq === 0) lastMs += 1;
    ms = lastMs;
  } else {
    lastMs = ms;
    seq = pool.readUInt16BE(take(2)) & 0x3ff;
  }
  // Written byte by byte into one text: no buffer of its own, no hex string cut apart and joined
  // again (issue 15: three ids a webhook). 48 bits of milliseconds: the top 16 and the low 32.
  const hi = Math.floor(ms / 0x100000000);
  const lo = ms >>> 0;
  hexByte(0, (hi >>> 8) & 0xff);
  hexByte(1, hi & 0xff);
  hexByte(2, lo >>> 24);
  hexByte(3, (lo >>> 16) & 0xff);
  hexByte(4, (lo >>> 8) & 0xff);
  hexByte(5, lo & 0xff);
  hexByte(6, 0x70 | (seq >> 8));
  hexByte(7, seq & 0xff);
  const r = take(8);
  hexByte(8, (pool[r]! & 0x3f) | 0x80);
  for (let i = 1; i < 8; i++) hexByte(8 + i, pool[r + i]!);
  return TEXT.toString('latin1', 0, 36);
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An ingest URL's unguessable part: 18 random bytes, base64url (24 characters). */
export function generateMaskId(): string {
  return randomBytes(18).toString('base64url');
}

/** The smallest UUIDv7 of millisecond `ms`: every id made before `ms` sorts below it. */
export function uuidv7Floor(ms: number): string {
  const h = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7000-8000-000000000000`;
}

/**
 * When a UUIDv7 was made (ms), or null for any other id. The id of a first attempt kept in its
 * delivery's row is its delivery's with the version 8 (migration 023): its delivery's time.
 */
export function uuidv7Time(id: string): number | null {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[78][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
