/**
 * The hot statements' array parameters written by Wharf (src/store/params.ts) rather than by
 * node-postgres: what Postgres reads from them is what was given, NULLs and all, on both
 * databases; a value of the wrong shape is refused before it can reach a literal unescaped.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { floatArray, intArray, packTexts, textArray, timestampArray, uuidArray } from '../../src/store/params.ts';
import { uuidv7 } from '../../src/core/ids.ts';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';

describe.each(['postgres', 'embedded'] as const)('array parameters on %s', (kind) => {
  let db: TestDatabase;
  let client: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase(kind);
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  const read = async (sql: string, params: unknown[]): Promise<unknown> => (await client.query(sql, params)).rows[0].v;

  it('uuids, with NULLs', async () => {
    const ids = [uuidv7(), null, uuidv7().toUpperCase(), uuidv7()];
    expect(await read('SELECT $1::uuid[]::text[] AS v', [uuidArray(ids)])).toEqual(ids.map((id) => id?.toLowerCase() ?? null));
    expect(await read('SELECT cardinality($1::uuid[]) AS v', [uuidArray([])])).toBe(0);
  });

  it('integers and floats, with NULLs', async () => {
    const ints = [0, -1, 2_147_483_647, null, 42];
    expect(await read('SELECT $1::int[] AS v', [intArray(ints)])).toEqual(ints);
    const floats = [0, 0.1, -2.5e-7, 1e21, null, 3600, 1 / 3];
    expect(await read('SELECT $1::float8[] AS v', [floatArray(floats)])).toEqual(floats);
  });

  it('texts, quoted: NULL spelled out, braces, commas, quotes, backslashes and spaces stay text', async () => {
    const texts = ['proj_1', null, 'NULL', 'null', '', ' spaced ', '{a,b}', 'a"b', 'a\\b', '\\"', '"', '\\', 'é😀€', '{"x":"y\\"z"}', ','];
    expect(await read('SELECT $1::text[] AS v', [textArray(texts)])).toEqual(texts);
    expect(await read('SELECT $1::jsonb[]::text[] AS v', [textArray(['{}', '{"k": "a \\"q\\" \\\\ b"}'])])).toEqual(['{}', '{"k": "a \\"q\\" \\\\ b"}']);
    expect(await read('SELECT cardinality($1::text[]) AS v', [textArray([])])).toBe(0);
  });

  it('times, the same instants whatever the session time zone, with NULLs', async () => {
    const times = [new Date('2026-12-05T19:00:00.123Z'), null, new Date(0), new Date('1999-12-31T23:59:59.999Z')];
    await client.query("SET TIME ZONE 'Pacific/Kiritimati'");
    try {
      const got = (await read('SELECT array_agg(extract(epoch FROM t)::float8 * 1000 ORDER BY n) AS v FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n)', [timestampArray(times)])) as (number | null)[];
      expect(got.map((ms) => (ms === null ? null : Math.round(ms)))).toEqual(times.map((t) => t?.getTime() ?? null));
    } finally {
      await client.query('RESET TIME ZONE');
    }
  });

  it('texts packed in one bytea come back as they were, NULLs and empty ones too', async () => {
    const texts = [
      '{"x-note":"a \\"quoted\\" value","path":"C:\\\\dir"}',
      null,
      '',
      'é😀€ \u2028 {,} NULL "',
      'x'.repeat(70_000),
      '',
      null,
      '"',
    ];
    const p = packTexts(texts);
    const got = await read(
      `SELECT array_agg(convert_from(substring($1::bytea FROM u.at FOR u.len), 'UTF8') ORDER BY u.n) AS v
       FROM unnest($2::int[], $3::int[]) WITH ORDINALITY AS u(at, len, n)`,
      [p.bytes, intArray(p.starts), intArray(p.lengths)],
    );
    expect(got).toEqual(texts);
  });

  it.each([
    ['a uuid array with text that would end the literal', () => uuidArray([uuidv7(), '00000000-0000-0000-0000-000000000000},{x']), 'element 1 is not a uuid'],
    ['a uuid array with NULL spelled out', () => uuidArray(['NULL']), 'element 0 is not a uuid'],
    ['a uuid array with a number', () => uuidArray([7 as unknown as string]), 'element 0 is not a uuid (number)'],
    ['an integer array with a fraction', () => intArray([1, 1.5]), 'element 1 is not an integer'],
    ['an integer array with a numeric text', () => intArray(['1' as unknown as number]), 'element 0 is not an integer (string)'],
    ['a float array with NaN', () => floatArray([NaN]), 'element 0 is not a finite number'],
    ['a float array with Infinity', () => floatArray([Infinity]), 'element 0 is not a finite number'],
    ['a text array with a number', () => textArray(['a', 7 as unknown as string]), 'element 1 is not a string (number)'],
    ['a text array with an object', () => textArray([{} as unknown as string]), 'element 0 is not a string (object)'],
    ['a time array with an invalid date', () => timestampArray([new Date(NaN)]), 'element 0 is not a valid Date (object)'],
    ['a time array with a text', () => timestampArray([null, '2026-12-05' as unknown as Date]), 'element 1 is not a valid Date (string)'],
  ])('refuses %s', (_name, make, says) => {
    expect(make).toThrow(TypeError);
    expect(make).toThrow(says);
  });
});
