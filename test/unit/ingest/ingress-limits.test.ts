/**
 * The shared checks every ingress applies (issue 12, items 5, 6 and NUL): event types and patterns,
 * header values, the NUL finder, and the same rules in the config file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nulField } from '../../../src/api/nul-guard.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/core/errors.ts';
import { headerValueProblem } from '../../../src/core/headers.ts';
import { headerSafe } from '../../../src/delivery/request.ts';
import { deeperThan, eventTypePatternProblem, eventTypeProblem, textDeeperThan } from '../../../src/ingest/limits.ts';

describe('event types', () => {
  it.each(['order.created', 'a', 'x'.repeat(200), 'Order Created v2', '~!@#$%^&()'])('takes %j', (t) => expect(eventTypeProblem(t)).toBeNull());
  it.each([
    ['', 'must not be empty'],
    ['x'.repeat(201), 'must be at most 200 characters (got 201)'],
    ['a\r\nx-injected: 1', 'must not contain control characters (line breaks, NUL, tabs)'],
    ['a\u0085b', 'must not contain control characters (line breaks, NUL, tabs)'],
    ['a\u007fb', 'must not contain control characters (line breaks, NUL, tabs)'],
    ['commande.créée', expect.stringMatching(/^must be printable ASCII/)],
    [' order', 'must not start or end with a space'],
  ])('refuses %j', (t, problem) => expect(eventTypeProblem(t)).toEqual(problem));

  it('patterns: "*", a type, or a prefix with ".*", under the same rule', () => {
    for (const p of ['*', 'order.*', 'order.created']) expect(eventTypePatternProblem(p)).toBeNull();
    expect(eventTypePatternProblem('a*b')).toBe('may hold "*" only alone or as a final ".*" (as in "order.*")');
    expect(eventTypePatternProblem('a\tb.*')).toBe('must not contain control characters (line breaks, NUL, tabs)');
    expect(eventTypePatternProblem('café.*')).toMatch(/^must be printable ASCII/);
  });
});

describe('header values', () => {
  it('take visible ASCII, spaces and tabs; refuse controls and other characters', () => {
    expect(headerValueProblem('Bearer abc; q=1\tx')).toBeNull();
    for (const v of ['a\r\nb', 'a\u0000', 'a\u0001', 'a\u007f', 'a\u009f']) expect(headerValueProblem(v)).toBe('must not contain control characters (line breaks, NUL)');
    expect(headerValueProblem('café')).toBe('must be printable ASCII: a header value cannot carry other characters as they are');
  });

  it('what reaches a request is sent safely even if stored before the checks', () => {
    expect(headerSafe('a\tb')).toBe('a\tb');
    expect(headerSafe('a\r\nx: 1')).toBe('a%0D%0Ax: 1');
    expect(headerSafe('café \ud800')).toBe('caf%C3%A9 %EF%BF%BD');
  });
});

describe('depth', () => {
  it('is measured without recursion, on values and on text (brackets in strings do not count)', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(deeperThan(deep, 1000)).toBe(true);
    expect(deeperThan([[1]], 2)).toBe(false);
    expect(deeperThan([[[1]]], 2)).toBe(true);
    expect(textDeeperThan('{"a":"[[[[[[","b":[1]}', 2)).toBe(false);
    expect(textDeeperThan('{"a":"\\"[[[","b":[[1]]}', 2)).toBe(true);
  });
});

describe('nulField', () => {
  it('names the first NUL as a field path, key or value, and skips what it is told to', () => {
    expect(nulField({ a: [1, { b: 'x\u0000' }] })).toBe('a[1].b');
    expect(nulField({ a: { ['k\u0000']: 1 } })).toBe('a.k\\u0000 (a key)');
    expect(nulField({ data: { s: '\u0000' }, ok: 'fine' }, ['data'])).toBeNull();
    expect(nulField(Buffer.from([0]))).toBeNull();
    expect(nulField('\u0000')).toBe('body');
  });

  it('walks a 100,000-deep body without recursion and shortens the path it names', () => {
    const text = `${'{"a":'.repeat(100_000)}"\\u0000"${'}'.repeat(100_000)}`;
    const field = nulField(JSON.parse(text));
    expect(field).toMatch(/^….*\.a\.a$/);
    expect(field!.length).toBe(200);
  });
});

describe('the config file applies the same rules', () => {
  const failure = (yaml: string): ConfigError => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-limits-'));
    try {
      writeFileSync(join(dir, 'wharf.yaml'), yaml);
      loadConfig({ file: join(dir, 'wharf.yaml'), env: {}, cwd: dir });
    } catch (err) {
      return err as ConfigError;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    throw new Error('the config loaded');
  };
  const project = (extra: string) => `projects:\n  - id: p\n    api_keys: ["${'k'.repeat(32)}"]\n${extra}`;

  it("refuses a source's event_type that could not be sent", () => {
    const err = failure(project('    sources:\n      - { id: q, name: q, type: http, event_type: "a\\r\\nb", http: { verifier: { type: noop } } }\n'));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain('projects[0].sources[0].event_type: must not contain control characters');
  });

  it("refuses a subscription's event type that no event could have", () => {
    const err = failure(
      project('    endpoints: [{ id: e, url: "https://example.com/h" }]\n    subscriptions:\n      - { endpoint_id: e, filter_config: { event_types: ["commande.créée"] } }\n'),
    );
    expect(err.message).toContain('projects[0].subscriptions[0].filter_config.event_types[0]: must be printable ASCII');
  });
});
