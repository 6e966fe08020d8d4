import { describe, expect, it } from 'vitest';
import { LOOPBACK_EGRESS } from '../../harness/egress.ts';
import { connector, type PubSubConfig } from '../../../connectors/pubsub.ts';
import type { ConnectorLogger } from '../../../src/core/connector.ts';
import type { SettingIssue } from '../../../src/core/settings.ts';
import { settingsWithDefaultCredentials } from './settings.ts';

const AT = 'projects[0].sources[2].pubsub';
const MINIMAL = { project_id: 'acme-prod', subscription: 'wharf-orders' };
const PRIVATE_KEY = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
const KEY = {
  type: 'service_account',
  project_id: 'acme-prod',
  private_key_id: 'abc123',
  private_key: PRIVATE_KEY,
  client_email: 'wharf@acme-prod.iam.gserviceaccount.com',
  client_id: '1234567890',
};

const { settings, parse, issue } = settingsWithDefaultCredentials(connector, AT);

const quiet: ConnectorLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('pubsub parse', () => {
  it('fills the defaults', () => {
    const { config, issues } = parse(MINIMAL);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      project_id: 'acme-prod',
      subscription: 'wharf-orders',
      credentials: null,
      use_default_credentials: true,
      api_endpoint: null,
      emulator_host: null,
      max_messages: 100,
      workers: 1,
      batch_size: 100,
      batch_wait_ms: 20,
      ack_deadline: 60,
    });
  });

  it('reads every setting, and what it returns parses again to itself', () => {
    const block = {
      project_id: 'example.com:acme',
      subscription: 'projects/other-project/subscriptions/orders.v2~x',
      credentials: JSON.stringify(KEY),
      api_endpoint: 'europe-west1-pubsub.googleapis.com:443',
      max_messages: '500',
      workers: 4,
      batch_size: 50,
      batch_wait_ms: 0,
      ack_deadline: 600,
    };
    const { config, issues } = parse(block);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      project_id: 'example.com:acme',
      subscription: 'projects/other-project/subscriptions/orders.v2~x',
      credentials: KEY,
      use_default_credentials: false,
      api_endpoint: 'europe-west1-pubsub.googleapis.com:443',
      emulator_host: null,
      max_messages: 500,
      workers: 4,
      batch_size: 50,
      batch_wait_ms: 0,
      ack_deadline: 600,
    });
    const again = parse(config);
    expect(again.issues).toEqual([]);
    expect(again.config).toEqual(config);
  });

  it('takes the key as a mapping, and an emulator host', () => {
    const { config, issues } = parse({ ...MINIMAL, credentials: KEY, emulator_host: 'localhost:8085' });
    expect(issues).toEqual([]);
    expect(config.credentials).toEqual(KEY);
    expect(config.emulator_host).toBe('localhost:8085');
  });

  it('reads empty values as unset', () => {
    const { config, issues } = parse({ ...MINIMAL, use_default_credentials: true, credentials: '', api_endpoint: '', emulator_host: null, workers: null });
    expect(issues).toEqual([]);
    expect(config).toMatchObject({ credentials: null, api_endpoint: null, emulator_host: null, workers: 1 });
  });

  it('requires project_id and subscription', () => {
    const { issues } = parse({});
    expect(issues).toEqual([
      { path: `${AT}.project_id`, message: 'is required: the Google Cloud project of the subscription' },
      { path: `${AT}.subscription`, message: 'is required: a subscription id, or projects/<project>/subscriptions/<id>' },
    ]);
  });

  it('names what is wrong with the project and the subscription', () => {
    expect(issue({ ...MINIMAL, project_id: 'acme/prod' })).toEqual({
      path: `${AT}.project_id`,
      message: 'must be a Google Cloud project id (letters, digits, "-", ".", ":") (got "acme/prod")',
    });
    expect(issue({ ...MINIMAL, project_id: 7 })).toEqual({ path: `${AT}.project_id`, message: 'must be a string (got 7)' });
    expect(issue({ ...MINIMAL, subscription: 'ab' })).toEqual({
      path: `${AT}.subscription`,
      message:
        'must be a subscription id (3-255 letters, digits and "-._~+%", starting with a letter) or projects/<project>/subscriptions/<id> (got "ab")',
    });
    expect(issue({ ...MINIMAL, subscription: 'projects/acme/topics/orders' }).path).toBe(`${AT}.subscription`);
    expect(issue({ ...MINIMAL, subscription: 'projects/a b/subscriptions/orders' })).toEqual({
      path: `${AT}.subscription`,
      message: 'has an invalid project in projects/<project>/subscriptions/<id> (got "projects/a b/subscriptions/orders")',
    });
    expect(issue({ ...MINIMAL, subscription: '' })).toEqual({ path: `${AT}.subscription`, message: 'must not be empty' });
  });

  it("needs a key of the source's own unless it talks to an emulator or the config file lends Wharf's identity", () => {
    expect(settings.issue(MINIMAL).path).toBe(`${AT}.credentials`);
    expect(settings.issue(MINIMAL).message).toContain("the source's own service-account key");
    expect(settings.parse({ ...MINIMAL, emulator_host: 'localhost:8085' }).issues).toEqual([]);
    expect(settings.parse({ ...MINIMAL, use_default_credentials: true }).issues).toEqual([]);
  });

  it('checks the service-account key without ever quoting it', () => {
    const cases: [unknown, SettingIssue][] = [
      [
        // Not JSON (an unterminated string holding the whole key): the message must not quote it.
        `{"private_key": "${PRIVATE_KEY}`,
        { path: `${AT}.credentials`, message: 'must be a service-account key: its JSON text or a mapping (the text is not valid JSON)' },
      ],
      ['[1]', { path: `${AT}.credentials`, message: 'must be a service-account key: its JSON text or a mapping' }],
      [42, { path: `${AT}.credentials`, message: 'must be a service-account key: its JSON text or a mapping' }],
      [
        { ...KEY, private_key: '' },
        { path: `${AT}.credentials`, message: 'must be a service-account key with client_email and private_key (missing private_key)' },
      ],
      [
        { private_key: PRIVATE_KEY },
        { path: `${AT}.credentials`, message: 'must be a service-account key with client_email and private_key (missing client_email)' },
      ],
      [
        { ...KEY, type: 'authorized_user' },
        {
          path: `${AT}.credentials.type`,
          message: 'must be service_account (got "authorized_user")',
        },
      ],
    ];
    for (const [credentials, expected] of cases) {
      const got = issue({ ...MINIMAL, credentials });
      expect(got).toEqual(expected);
      expect(got.message).not.toContain('MIIE');
    }
  });

  it('checks endpoints and that an emulator and an API endpoint are not both given', () => {
    expect(issue({ ...MINIMAL, api_endpoint: 'https://pubsub.googleapis.com' })).toEqual({
      path: `${AT}.api_endpoint`,
      message: 'must be host or host:port (no scheme) (got "https://pubsub.googleapis.com")',
    });
    expect(issue({ ...MINIMAL, api_endpoint: 'pubsub.example:99999' }).path).toBe(`${AT}.api_endpoint`);
    expect(issue({ ...MINIMAL, emulator_host: 'localhost' })).toEqual({
      path: `${AT}.emulator_host`,
      message: 'must be host:port (no scheme) (got "localhost")',
    });
    expect(issue({ ...MINIMAL, api_endpoint: 'pubsub.googleapis.com', emulator_host: 'localhost:8085' })).toEqual({
      path: `${AT}.emulator_host`,
      message: 'cannot be combined with api_endpoint: an emulator is reached without TLS, an API endpoint with it',
    });
  });

  it('bounds the numbers', () => {
    const cases: [string, unknown, string][] = [
      ['max_messages', 0, 'must be an integer from 1 to 100000 (got 0)'],
      ['workers', 33, 'must be an integer from 1 to 32 (got 33)'],
      ['batch_size', 1.5, 'must be an integer from 1 to 1000 (got 1.5)'],
      ['batch_wait_ms', -1, 'must be an integer from 0 to 10000 (got -1)'],
      ['ack_deadline', 5, 'must be an integer from 10 to 600 (got 5)'],
      ['ack_deadline', 'soon', 'must be an integer from 10 to 600 (got "soon")'],
    ];
    for (const [key, value, message] of cases) expect(issue({ ...MINIMAL, [key]: value })).toEqual({ path: `${AT}.${key}`, message });
  });

  it('reports unknown keys and a block that is not a mapping', () => {
    expect(issue({ ...MINIMAL, topic: 'orders' })).toEqual({ path: `${AT}.topic`, message: '', unknown: true });
    expect(issue('acme')).toEqual({ path: AT, message: 'must be a mapping (got "acme")' });
  });

  it('keeps the service-account key secret', () => {
    expect(connector.type).toBe('pubsub');
    expect(connector.secretKeys).toEqual(['credentials']);
  });
});

describe('pubsub connector lifecycle (the real SDK; nothing is contacted before start)', () => {
  it('stop before start, and twice, is harmless, and a stopped connector does not start', async () => {
    const config: PubSubConfig = parse({ ...MINIMAL, emulator_host: '127.0.0.1:9' }).config;
    const c = await connector.create(config, { logger: quiet, name: 'test/pubsub', egress: LOOPBACK_EGRESS });
    const a = c.stop({ timeoutMs: 10 });
    expect(c.stop({ timeoutMs: 10 })).toBe(a);
    await a;
    expect(c.health().state).toBe('stopped');
    await c.start({ accept: async (batch) => batch.map((m) => ({ status: 'stored', event_id: m.id })) });
    expect(c.health().state).toBe('stopped');
  });
});
