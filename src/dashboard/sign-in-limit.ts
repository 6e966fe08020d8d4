/**
 * Failed dashboard sign-ins are limited so that guessing a key or the operator token is slow: per
 * client address, and across every address together (an attacker with many addresses is slowed
 * too). Each limit is a bucket of attempts that refills at a steady rate; a failed sign-in takes
 * one. While either bucket is empty, every sign-in from there is refused before the credential is
 * looked at, a right one included: otherwise the answer would still tell a right guess from a
 * wrong one.
 *
 * Memory is bounded whatever the attacker sends: at most `maxAddresses` buckets are kept; a bucket
 * that has refilled says nothing and is forgotten, and past the cap the one that failed longest
 * ago goes first. The limits are this process's (each replica counts its own).
 */
import { isIPv6 } from 'node:net';

export interface Rate {
  /** Attempts that may fail in a row before waiting. */
  burst: number;
  /** Milliseconds until one more attempt is allowed. */
  refillMs: number;
}

export interface SignInLimitOptions {
  perAddress?: Rate;
  global?: Rate;
  maxAddresses?: number;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

export interface SignInLimit {
  /** Whole seconds before a sign-in from `address` may be tried; 0: now. */
  retryAfter(address: string): number;
  /** Counts a failed sign-in from `address`. */
  failed(address: string): void;
  /** Addresses remembered (for tests: it never passes the cap). */
  size(): number;
}

/** 5 in a row, then one every 12 s (5 a minute); 100 a minute from everywhere together. */
export const DEFAULT_PER_ADDRESS: Rate = { burst: 5, refillMs: 12_000 };
export const DEFAULT_GLOBAL: Rate = { burst: 100, refillMs: 600 };
const DEFAULT_MAX_ADDRESSES = 10_000;
/** Full buckets forgotten per failure, oldest first: enough to keep pace, never a long loop. */
const SWEEP = 8;

interface Bucket {
  tokens: number;
  at: number;
}

const level = (b: Bucket, rate: Rate, now: number): number => Math.min(rate.burst, b.tokens + (now - b.at) / rate.refillMs);
const take = (b: Bucket, rate: Rate, now: number): Bucket => ({ tokens: Math.max(0, level(b, rate, now) - 1), at: now });
const wait = (b: Bucket, rate: Rate, now: number): number => {
  const l = level(b, rate, now);
  return l >= 1 ? 0 : Math.ceil(((1 - l) * rate.refillMs) / 1000);
};

/**
 * The part of an address that names one client: an IPv4 address (also when IPv4-mapped), or an
 * IPv6 address's /64, which a single client usually holds whole.
 */
export function clientKey(address: string): string {
  const ip = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail] = ip.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? front : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export function createSignInLimit(o: SignInLimitOptions = {}): SignInLimit {
  const now = o.now ?? Date.now;
  const perAddress = o.perAddress ?? DEFAULT_PER_ADDRESS;
  const global = o.global ?? DEFAULT_GLOBAL;
  const max = o.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  // Insertion order is the order of the latest failure: the first entries failed longest ago.
  const addresses = new Map<string, Bucket>();
  let everyone: Bucket = { tokens: global.burst, at: now() };

  const forget = (t: number): void => {
    let looked = 0;
    for (const [key, b] of addresses) {
      if (looked++ >= SWEEP || level(b, perAddress, t) < perAddress.burst) break;
      addresses.delete(key);
    }
    for (const key of addresses.keys()) {
      if (addresses.size <= max) break;
      addresses.delete(key);
    }
  };

  return {
    retryAfter(address) {
      const t = now();
      const b = addresses.get(clientKey(address));
      return Math.max(wait(everyone, global, t), b ? wait(b, perAddress, t) : 0);
    },
    failed(address) {
      const t = now();
      everyone = take(everyone, global, t);
      const key = clientKey(address);
      const b = addresses.get(key) ?? { tokens: perAddress.burst, at: t };
      addresses.delete(key);
      addresses.set(key, take(b, perAddress, t));
      forget(t);
    },
    size: () => addresses.size,
  };
}
