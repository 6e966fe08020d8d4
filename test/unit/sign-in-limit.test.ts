/** The dashboard's limit on failed sign-ins: per address, overall, and its bounded memory. */
import { describe, expect, it } from 'vitest';
import { clientKey, createSignInLimit } from '../../src/dashboard/sign-in-limit.ts';

describe('sign-in limit', () => {
  it('lets a burst fail, then one attempt per refill interval, per address', () => {
    let now = 0;
    const limit = createSignInLimit({ perAddress: { burst: 3, refillMs: 10_000 }, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(limit.retryAfter('192.0.2.1')).toBe(0);
      limit.failed('192.0.2.1');
    }
    expect(limit.retryAfter('192.0.2.1')).toBe(10);
    expect(limit.retryAfter('192.0.2.2')).toBe(0);
    now = 4_000;
    expect(limit.retryAfter('192.0.2.1')).toBe(6);
    now = 10_000;
    expect(limit.retryAfter('192.0.2.1')).toBe(0);
    limit.failed('192.0.2.1');
    expect(limit.retryAfter('192.0.2.1')).toBe(10);
  });

  it('limits every address together', () => {
    let now = 0;
    const limit = createSignInLimit({ perAddress: { burst: 5, refillMs: 1_000 }, global: { burst: 4, refillMs: 2_000 }, now: () => now });
    for (let i = 0; i < 4; i++) limit.failed(`198.51.100.${i}`);
    expect(limit.retryAfter('203.0.113.9')).toBe(2);
    now = 2_000;
    expect(limit.retryAfter('203.0.113.9')).toBe(0);
  });

  it('keeps at most maxAddresses, forgetting the one that failed longest ago, and forgets refilled ones', () => {
    let now = 0;
    const limit = createSignInLimit({ perAddress: { burst: 1, refillMs: 1_000 }, global: { burst: 1e9, refillMs: 1 }, maxAddresses: 100, now: () => now });
    for (let i = 0; i < 1_000; i++) limit.failed(`10.0.${i >> 8}.${i & 255}`);
    expect(limit.size()).toBe(100);
    expect(limit.retryAfter('10.0.0.0')).toBe(0);
    expect(limit.retryAfter('10.0.3.231')).toBe(1);
    now = 10_000;
    limit.failed('10.9.9.9');
    expect(limit.size()).toBeLessThan(100);
  });

  it('counts an IPv6 client by its /64 and an IPv4-mapped address as IPv4', () => {
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('192.0.2.7')).toBe('192.0.2.7');
  });
});
