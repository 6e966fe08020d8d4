/**
 * Retention settings: `retention.defaults` and a project's own `retention` block, read from YAML;
 * off (keep forever) unless set; every mistake named with its key and the file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { retentionAgeSeconds } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { policiesOf } from '../../src/store/retention.ts';
import { uuidv7, uuidv7Floor, uuidv7Time } from '../../src/core/ids.ts';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-retention-config-'));
  file = join(dir, 'wharf.yaml');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
  writeFileSync(file, yaml);
  return loadConfig({ file, env, cwd: dir }).config;
};

const failure = (yaml: string): ConfigError => {
  writeFileSync(file, yaml);
  try {
    loadConfig({ file, env: {}, cwd: dir });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to throw');
};

describe('retention settings', () => {
  it('keeps everything forever unless set', () => {
    const config = load('projects: [{ id: p }]\n');
    expect(config.retention).toEqual({
      defaults: { events: 'off', attempts: 'off', dead_letters: 'off', meta_events: 'off' },
      interval: 600,
      batch_size: 1000,
      batch_pause: 0.05,
    });
    expect(config.projects[0]).not.toHaveProperty('retention');
    expect(policiesOf(config)('p')).toEqual({ events: null, attempts: null, dead_letters: null, meta_events: null });
  });

  it("merges a project's own ages over the defaults, kind by kind; other projects follow the defaults", () => {
    const config = load(`
retention:
  defaults: { events: 30d, attempts: 7d }
  interval: 60
  batch_size: 500
projects:
  - id: shop
    retention: { events: 90d, dead_letters: 12h, attempts: off }
  - id: plain
`);
    expect(config.retention).toMatchObject({ defaults: { events: '30d', attempts: '7d', dead_letters: 'off', meta_events: 'off' }, interval: 60, batch_size: 500 });
    expect(config.projects[0]?.retention).toEqual({ events: '90d', dead_letters: '12h', attempts: 'off' });
    const policy = policiesOf(config);
    expect(policy('shop')).toEqual({ events: { seconds: 90 * 86_400, text: '90d' }, attempts: null, dead_letters: { seconds: 12 * 3600, text: '12h' }, meta_events: null });
    expect(policy('plain')).toEqual({ events: { seconds: 30 * 86_400, text: '30d' }, attempts: { seconds: 7 * 86_400, text: '7d' }, dead_letters: null, meta_events: null });
    // A project only in the database (removed from the file) follows the defaults too.
    expect(policy('gone')).toEqual(policy('plain'));
  });

  it("reads Convoy's Go durations as well as days", () => {
    expect(retentionAgeSeconds('720h')).toBe(30 * 86_400);
    expect(retentionAgeSeconds('1h30m')).toBe(5400);
    expect(retentionAgeSeconds('2d12h')).toBe(60 * 3600);
    expect(retentionAgeSeconds('off')).toBeNull();
    expect(retentionAgeSeconds('30 days')).toBeUndefined();
    expect(retentionAgeSeconds('')).toBeUndefined();
  });

  it.each([
    ['retention: { defaults: { events: 30 } }', 'retention.defaults.events: must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever (got 30)'],
    ['retention: { defaults: { attempts: "1 week" } }', 'retention.defaults.attempts: must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever (got "1 week")'],
    ['retention: { defaults: { events: 30s } }', 'retention.defaults.events: must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever (got "30s")'],
    ['retention: { defaults: { logs: 30d } }', 'unknown key "retention.defaults.logs"'],
    ['retention: { batch_size: 0 }', 'retention.batch_size: must be an integer from 1 to 100000 (got 0)'],
    ['retention: { interval: 0 }', 'retention.interval: must be a number from 1 to 86400 (got 0)'],
    ['projects: [{ id: p, retention: { events: 30x } }]', 'projects[0].retention.events: must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever (got "30x")'],
    ['projects: [{ id: p, retention: { events: 0d } }]', 'projects[0].retention.events: must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever (got "0d")'],
    ['projects: [{ id: p, retention: { deliveries: 7d } }]', 'unknown key "projects[0].retention.deliveries"'],
    ['projects: [{ id: p, retention: 30d }]', 'projects[0].retention: must be a mapping (got "30d")'],
  ])('%s is refused, naming the key and the file', (yaml, message) => {
    const err = failure(yaml);
    expect(err.message).toBe(`${file}: ${message}`);
    expect(err.field).toBe(message.startsWith('unknown key') ? JSON.parse(message.slice('unknown key '.length)) : message.split(':')[0]);
  });

  it('takes the defaults from ${VAR}, as any value', () => {
    expect(load('retention: { defaults: { events: "${EVENTS_KEPT:-14d}" } }\n').retention.defaults.events).toBe('14d');
    expect(load('retention: { defaults: { events: "${EVENTS_KEPT}" } }\n', { EVENTS_KEPT: '48h' }).retention.defaults.events).toBe('48h');
  });

  it('finds ids older than a time through their UUIDv7 prefix', () => {
    const before = Date.now();
    const id = uuidv7();
    expect(uuidv7Time(id)).toBeGreaterThanOrEqual(before);
    expect(uuidv7Floor(before) <= id).toBe(true);
    expect(uuidv7Floor(before + 60_000) > id).toBe(true);
    expect(uuidv7Time('6f9619ff-8b86-4011-b42d-00c04fc964ff')).toBeNull();
    // A first attempt kept in its delivery's row has the delivery's id with version 8: the delivery's time.
    expect(uuidv7Time(`${id.slice(0, 14)}8${id.slice(15)}`)).toBe(uuidv7Time(id));
  });
});
