import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { connector, PubSubConnector, type PubSubConfig, type PubSubSdk } from '../../../connectors/pubsub.ts';
import type { AcceptResult, BrokerMessage, ConnectorLogger } from '../../../src/core/connector.ts';
import type { SettingIssue } from '../../../src/core/settings.ts';
import { Reader } from '../../../src/core/settings.ts';

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

function parse(value: unknown) {
  const r = new Reader();
  const config = connector.parse(r, value, AT);
  return { config, issues: r.issues };
}

/** The one issue `value` has; fails when there are none or several. */
function issue(value: unknown): SettingIssue {
  const { issues } = parse(value);
  expect(issues).toHaveLength(1);
  return issues[0]!;
}

describe('pubsub parse', () => {
  it('fills the defaults', () => {
    const { config, issues } = parse(MINIMAL);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      project_id: 'acme-prod',
      subscription: 'wharf-orders',
      credentials: null,
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
    const { config, issues } = parse({ ...MINIMAL, credentials: '', api_endpoint: '', emulator_host: null, workers: null });
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

  it('checks the service-account key without ever quoting it', () => {
    const cases: [unknown, SettingIssue][] = [
      [
        `{"private_key": "${PRIVATE_KEY.slice(0, 30)}`,
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
          message: 'must be service_account (leave credentials out to use Application Default Credentials) (got "authorized_user")',
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

// ---------------------------------------------------------------------------------------------
// The connector with a stand-in SDK, for what pstest cannot do: fail a streaming pull for good.

class FakeMessage {
  readonly data: Buffer;
  readonly attributes: Record<string, string> = {};
  readonly received = Date.now() - 1000; // leased long ago: nacks go out at once
  readonly id: string;
  acked = 0;
  nacked = 0;
  constructor(id: string) {
    this.id = id;
    this.data = Buffer.from(id);
  }
  ack(): void {
    this.acked++;
  }
  nack(): void {
    this.nacked++;
  }
}

class FakeSubscription extends EventEmitter {
  readonly name: string;
  readonly options: Record<string, unknown> | undefined;
  readonly client: FakePubSub;
  closed = false;
  constructor(client: FakePubSub, name: string, options?: Record<string, unknown>) {
    super();
    this.client = client;
    this.name = name;
    this.options = options;
  }
  async getMetadata(): Promise<unknown[]> {
    const err = this.client.probeErrors.shift();
    if (err) throw err;
    return [{}];
  }
  async close(): Promise<void> {
    this.closed = true;
    this.emit('close');
  }
}

class FakePubSub {
  static last: FakePubSub | null = null;
  readonly options: Record<string, unknown>;
  /** Subscriptions opened for a streaming pull (the probes' are not kept). */
  readonly opened: FakeSubscription[] = [];
  probeErrors: Error[] = [];
  closed = false;
  constructor(options: Record<string, unknown>) {
    this.options = options;
    FakePubSub.last = this;
  }
  subscription(name: string, options?: Record<string, unknown>): FakeSubscription {
    const s = new FakeSubscription(this, name, options);
    if (options) this.opened.push(s);
    return s;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const fakeSdk = { PubSub: FakePubSub, Duration: { from: (d: object) => d } } as unknown as PubSubSdk;
const quiet: ConnectorLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function fakeConnector(block: Record<string, unknown>): PubSubConnector {
  const r = new Reader();
  const config: PubSubConfig = connector.parse(r, { ...MINIMAL, ...block }, AT);
  expect(r.issues).toEqual([]);
  return new PubSubConnector(fakeSdk, config, { logger: quiet, name: 'test/pubsub' });
}

async function until<T>(read: () => T, done: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const storeAll = async (batch: BrokerMessage[]): Promise<AcceptResult[]> => batch.map((m) => ({ status: 'stored', event_id: m.id }));

describe('pubsub connector with a stand-in SDK', () => {
  it('configures the client and the streaming pull from the block', async () => {
    const c = fakeConnector({ credentials: KEY, max_messages: 7, workers: 3, ack_deadline: 30, api_endpoint: 'pubsub.internal.example:8443' });
    expect(c.health()).toEqual({ state: 'stopped', inFlight: 0, lag: null, lastError: null });
    await c.start({ accept: storeAll });
    const client = FakePubSub.last!;
    expect(client.options).toEqual({
      projectId: 'acme-prod',
      credentials: KEY,
      apiEndpoint: 'pubsub.internal.example:8443',
      emulatorMode: false, // TLS, although the host is not *.googleapis.com
    });
    await until(() => client.opened.length, (n) => n === 1, 'the subscription opened');
    const sub = client.opened[0]!;
    expect(sub.name).toBe('projects/acme-prod/subscriptions/wharf-orders');
    expect(sub.options).toMatchObject({
      flowControl: { maxMessages: 7, allowExcessMessages: false },
      streamingOptions: { maxStreams: 3 },
      minAckDeadline: { seconds: 30 },
      maxAckDeadline: { seconds: 30 },
    });
    expect(c.health().state).toBe('running');
    await c.stop({ timeoutMs: 100 });
    expect(sub.closed).toBe(true);
    expect(client.closed).toBe(true);
    expect(c.health().state).toBe('stopped');
  });

  it('goes to the emulator in plaintext when emulator_host is set', async () => {
    const c = fakeConnector({ emulator_host: '127.0.0.1:8085', subscription: 'projects/other/subscriptions/orders' });
    await c.start({ accept: storeAll });
    expect(FakePubSub.last!.options).toMatchObject({ projectId: 'acme-prod', apiEndpoint: '127.0.0.1:8085', emulatorMode: true });
    expect(FakePubSub.last!.options.credentials).toBeUndefined();
    await until(() => FakePubSub.last!.opened.length, (n) => n === 1, 'the subscription opened');
    expect(FakePubSub.last!.opened[0]!.name).toBe('projects/other/subscriptions/orders');
    await c.stop({ timeoutMs: 100 });
  });

  it('consumes when the key may pull but not read the subscription (PERMISSION_DENIED on the probe)', async () => {
    const c = fakeConnector({});
    const denied = Object.assign(new Error('7 PERMISSION_DENIED: User not authorized'), { code: 7 });
    // The probe runs right after start, within this tick.
    const started = c.start({ accept: storeAll });
    FakePubSub.last!.probeErrors.push(denied);
    await started;
    await until(() => FakePubSub.last!.opened.length, (n) => n === 1, 'the subscription opened');
    expect(c.health()).toMatchObject({ state: 'running', lastError: null });
    await c.stop({ timeoutMs: 100 });
  });

  it('when the SDK gives up on the subscription: reports it without the key, closes it, and opens a new one', async () => {
    const c = fakeConnector({ credentials: KEY, batch_wait_ms: 0 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    await c.start({
      accept: async (batch) => {
        seen.push(...batch.map((m) => m.id));
        await held;
        return storeAll(batch);
      },
    });
    const client = FakePubSub.last!;
    await until(() => client.opened.length, (n) => n === 1, 'the subscription opened');
    const first = client.opened[0]!;
    const m1 = new FakeMessage('m1');
    const m2 = new FakeMessage('m2');
    first.emit('message', m1);
    await until(() => seen.length, (n) => n === 1, 'm1 in the sink');
    first.emit('message', m2); // waits behind m1 (one worker)
    expect(c.health().inFlight).toBe(2);

    // One more failure of the probe, so the reopen goes through the backoff once.
    client.probeErrors.push(Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 }));
    first.emit('error', Object.assign(new Error(`7 PERMISSION_DENIED: key ${PRIVATE_KEY} refused`), { code: 7 }));
    const h = c.health();
    expect(h.state).toBe('connecting');
    expect(h.lastError).toContain('projects/acme-prod/subscriptions/wharf-orders');
    expect(h.lastError).toContain('PERMISSION_DENIED');
    expect(h.lastError).not.toContain('MIIE');

    await until(() => first.closed, Boolean, 'the failed subscription closed');
    await until(() => client.opened.length, (n) => n === 2, 'a new subscription opened');
    await until(() => c.health().state, (s) => s === 'running', 'running again');
    expect(c.health().lastError).toBeNull();
    // m2 waited for a batch when its subscription closed (the SDK nacked it): it is let go.
    expect(c.health().inFlight).toBe(1);
    expect(seen).toEqual(['m1']);
    const m3 = new FakeMessage('m3');
    client.opened[1]!.emit('message', m3);
    release();
    await until(() => m3.acked, (n) => n === 1, 'm3 acked');
    expect(seen).toEqual(['m1', 'm3']);
    expect(m1.acked).toBe(1); // acked once stored (a no-op in the real SDK, whose close nacked it)
    expect(m2.acked).toBe(0);
    await c.stop({ timeoutMs: 100 });
    expect(c.health()).toMatchObject({ state: 'stopped', inFlight: 0 });
  });

  it('stop before start, and twice, is harmless', async () => {
    const c = fakeConnector({});
    const a = c.stop({ timeoutMs: 10 });
    expect(c.stop({ timeoutMs: 10 })).toBe(a);
    await a;
    expect(c.health().state).toBe('stopped');
    await c.start({ accept: storeAll });
    expect(c.health().state).toBe('stopped');
  });
});
