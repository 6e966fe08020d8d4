import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../../src/delivery/sender.ts';

describe('parseRetryAfter (RFC 9110 §10.2.3)', () => {
  const now = Date.parse('2026-11-23T12:00:00Z');
  it.each([
    ['120', 120],
    [' 7 ', 7],
    ['0', 0],
    ['Mon, 23 Nov 2026 12:00:30 GMT', 30],
    ['Mon, 23 Nov 2026 12:00:00 GMT', 0],
    ['Mon, 23 Nov 2026 11:59:00 GMT', 0], // a date in the past means now
  ])('reads %j as %d s', (value, seconds) => {
    expect(parseRetryAfter(value, now)).toBe(seconds);
  });
  it.each([undefined, '', '-5', '1.5', 'soon', 'Mon, 99 Foo 2026'])('ignores %j', (value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });
});
