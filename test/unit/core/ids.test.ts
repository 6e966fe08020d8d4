import { describe, expect, it } from 'vitest';
import { UUID_RE, uuidv7 } from '../../../src/core/ids.ts';

describe('uuidv7', () => {
  it('gives well-formed, distinct, strictly increasing ids across many refills of its random pool', () => {
    const ids: string[] = [];
    // 8 random bytes an id and an 8 KiB pool: 20,000 ids draw it about twenty times over.
    for (let i = 0; i < 20_000; i++) ids.push(uuidv7());
    for (const id of ids) {
      expect(id).toMatch(UUID_RE);
      expect(id[14]).toBe('7'); // version
      expect('89ab').toContain(id[19]); // RFC 9562 variant
    }
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });

  it('carries its creation time in the first 48 bits', () => {
    const before = Date.now();
    const id = uuidv7();
    const ms = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 5);
  });

  it('does not hand out the same random bits twice (the pool advances)', () => {
    const tails = new Set<string>();
    for (let i = 0; i < 5_000; i++) tails.add(uuidv7().replace(/-/g, '').slice(17)); // the 60 random bits after the variant nibble
    expect(tails.size).toBe(5_000);
  });
});
