/**
 * Weak keys and secrets are refused in the config file (issue 12, low): the error names the key
 * path and the minimum, and never the value. The REST API's side: test/integration/weak-secrets.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { MIN_API_KEY_LENGTH, MIN_SECRET_LENGTH } from '../../src/core/secrets.ts';
import { generateSecret, standardKey } from '../../src/delivery/signatures.ts';
import { generateApiKey } from '../../src/store/crypto.ts';

const REPO = resolve(import.meta.dirname, '../..');
const GOOD_KEY = 'k'.repeat(MIN_API_KEY_LENGTH);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-weak-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The lines of the ConfigError that loading `yaml` (or `file`) throws. */
function problems(yaml: string | null, env: NodeJS.ProcessEnv = {}, file = join(dir, 'wharf.yaml')): string {
  if (yaml !== null) writeFileSync(file, yaml);
  try {
    loadConfig({ file, env, cwd: dir });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected loadConfig to throw');
}

describe('minimum key and secret lengths in the config file', () => {
  it('refuses a short project API key, naming the key path and the minimum', () => {
    const message = problems('projects: [{ id: p, api_keys: [tiny-key-123] }]\n');
    expect(message).toContain('projects[0].api_keys[0]: must be at least 32 characters (got 12)');
    expect(message).not.toContain('tiny-key-123');
  });

  it('names WHARF_API_KEY when the short key came from it', () => {
    const message = problems(null, { WHARF_API_KEY: 'tiny-key-123' }, join(REPO, 'config/wharf.yaml'));
    expect(message).toContain('projects[0].api_keys[0] (from WHARF_API_KEY): must be at least 32 characters (got 12)');
    expect(message).not.toContain('tiny-key-123');
    expect(loadConfig({ file: join(REPO, 'config/wharf.yaml'), env: { WHARF_API_KEY: GOOD_KEY } }).config.projects[0]?.api_keys).toEqual([GOOD_KEY]);
  });

  it('generates keys and secrets that pass its own minimums', () => {
    expect(generateApiKey().length).toBeGreaterThanOrEqual(MIN_API_KEY_LENGTH);
    expect(generateSecret('convoy').length).toBeGreaterThanOrEqual(MIN_SECRET_LENGTH);
    expect(standardKey(generateSecret('standard-webhooks')).length).toBeGreaterThanOrEqual(MIN_SECRET_LENGTH);
  });

  it.each([
    ['an endpoint secret', 'endpoints: [{ id: e, url: "https://hooks.example/x", secret: abc-123 }]', 'projects[0].endpoints[0].secret: must be at least 16 characters (got 7) for the convoy scheme'],
    ['an alert secret', 'meta_events: { url: "https://ops.example/alerts", secret: abc-123 }', 'projects[0].meta_events.secret: must be at least 16 characters (got 7) for the convoy scheme'],
    [
      'an HTTP source HMAC secret',
      'sources: [{ name: s, type: http, event_type: x, http: { verifier: { type: hmac, header: X-Sig, secret: abc-123 } } }]',
      'projects[0].sources[0].http.verifier.secret: must be at least 16 characters (got 7)',
    ],
    [
      'an HTTP source API key',
      'sources: [{ name: s, type: http, event_type: x, http: { verifier: { type: api_key, header_name: X-Key, header_value: abc-123 } } }]',
      'projects[0].sources[0].http.verifier.header_value: must be at least 16 characters (got 7)',
    ],
    [
      'an HTTP source basic auth password',
      'sources: [{ name: s, type: http, event_type: x, http: { verifier: { type: basic_auth, username: u, password: abc-123 } } }]',
      'projects[0].sources[0].http.verifier.password: must be at least 16 characters (got 7)',
    ],
  ])('refuses %s shorter than 16 characters', (_what, project, expected) => {
    const message = problems(`projects:\n  - id: p\n    ${project}\n`);
    expect(message).toContain(expected);
    expect(message).not.toContain('abc-123');
  });

  it('counts the decoded bytes of a Standard Webhooks secret', () => {
    // 20 characters of base64, 15 bytes of key: long enough to look strong, too short to be.
    const weak = `whsec_${Buffer.alloc(15, 7).toString('base64')}`;
    const message = problems(
      `projects:\n  - id: p\n    signature: { scheme: standard-webhooks }\n    endpoints: [{ id: e, url: "https://hooks.example/x", secret: "${weak}" }]\n`,
    );
    expect(message).toContain('projects[0].endpoints[0].secret: must hold at least 16 bytes of key material (got 15)');
    const source = problems(
      `projects:\n  - id: p\n    sources: [{ name: s, type: http, event_type: x, http: { verifier: { type: standard_webhooks, secret: "${weak}" } } }]\n`,
    );
    expect(source).toContain('projects[0].sources[0].http.verifier.secret: must hold at least 16 bytes of key material (got 15)');
  });
});
