import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, redactConfig } from '../../src/config/load.ts';
import { DEFAULT_RETRY, DEFAULT_SIGNATURE } from '../../src/config/schema.ts';
import { DEFAULT_BREAKER } from '../../src/dispatch/breaker.ts';
import { ConfigError } from '../../src/core/errors.ts';

const REPO = resolve(import.meta.dirname, '../..');
const KEY_HEX = 'a'.repeat(64);

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-config-'));
  file = join(dir, 'wharf.yaml');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (yaml: string, name = 'wharf.yaml'): string => {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
};

const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
  write(yaml);
  return loadConfig({ file, env, cwd: dir }).config;
};

/** The ConfigError loading `yaml` throws. */
const failure = (yaml: string, env: NodeJS.ProcessEnv = {}): ConfigError => {
  write(yaml);
  try {
    loadConfig({ file, env, cwd: dir });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to throw');
};

const endpoint = (fields: string): string => `
projects:
  - id: p
    endpoints:
      - id: first
        url: https://a.example/hook
      - id: second
        url: https://b.example/hook
        ${fields}
`;

describe('loadConfig', () => {
  it('applies every default to an empty file', () => {
    const config = load('');
    expect(config).toEqual({
      server: { host: '127.0.0.1', port: 5005, body_limit: 1_048_576, operator_token: '' },
      database: { url: '', pool_size: 10, prepared_statements: true },
      data_dir: join(dir, 'data'),
      encryption_key: '',
      log: { level: 'info' },
      egress: { allow: [], block: [] },
      dispatch: { batch_size: 100, concurrency: 2, max_in_flight: 500, endpoint_concurrency: 128, project_concurrency: 250, polling_interval: 0.5, linger_ms: 5, record_linger_ms: 25, max_response_bytes: 4096, shutdown_timeout: 30 },
      ingest: { reload_interval: 2, shutdown_timeout: 30, max_json_depth: 128, api_broker_types: [], linger_ms: 5 },
      portal: { public_url: '', session_minutes: 60, frame_ancestors: "'none'" },
      dashboard: { session_seconds: 28_800 },
      retention: { defaults: { events: 'off', attempts: 'off', dead_letters: 'off', meta_events: 'off' }, interval: 600, batch_size: 1000, batch_pause: 0.05 },
      projects: [],
    });
  });

  it('takes the dashboard session length from the file or WHARF_DASHBOARD_SESSION_SECONDS', () => {
    expect(load('dashboard: { session_seconds: 900 }').dashboard.session_seconds).toBe(900);
    expect(load('', { WHARF_DASHBOARD_SESSION_SECONDS: '3600' }).dashboard.session_seconds).toBe(3600);
    expect(failure('', { WHARF_DASHBOARD_SESSION_SECONDS: 'eight hours' }).message).toContain('dashboard.session_seconds (from WHARF_DASHBOARD_SESSION_SECONDS): must be an integer from 1 to 2592000');
  });

  it('fills in project and endpoint defaults', () => {
    const config = load(`
projects:
  - id: shop
    api_keys: ["", key-1-of-the-shop-project-0123456789]
    signature: { hash: SHA512 }
    retry: { retry_count: 3 }
    endpoints:
      - id: acme
        url: https://acme.example/hook
        secret: ""
`);
    expect(config.projects).toEqual([
      {
        id: 'shop',
        name: 'shop',
        type: 'outgoing',
        type_enforced: false,
        api_keys: ['key-1-of-the-shop-project-0123456789'],
        signature: { ...DEFAULT_SIGNATURE, hash: 'SHA512' },
        retry: { ...DEFAULT_RETRY, retry_count: 3 },
        breaker: DEFAULT_BREAKER,
        meta_events: null,
        endpoints: [
          {
            id: 'acme',
            name: 'acme',
            url: 'https://acme.example/hook',
            owner_id: null,
            description: '',
            secret: null,
            http_timeout: 10,
            advanced_signatures: true,
            support_email: null,
            notification_url: null,
            content_type: 'application/json',
            rate_limit: 0,
            rate_limit_duration: 60,
            credentials: { authentication: null, mtls_client_cert: null, ca_certificate: null },
          },
        ],
        sources: [],
        subscriptions: [],
      },
    ]);
  });

  it('expands ${VAR} and ${VAR:-default} in string values, and $${ to a literal', () => {
    const config = load(
      `
server: { host: "\${HOST}", port: "\${PORT:-6006}" }
data_dir: "\${BASE:-/srv}/wharf"
projects:
  - id: p
    api_keys: ["\${KEY}", "\${NONE:-}"]
    endpoints:
      - id: e
        url: "https://\${HOSTNAME:-hooks.example}/x"
        secret: "\${SECRET:-fallback-secret-value}"
        description: "costs $\${AMOUNT}"
        http_timeout: "\${TIMEOUT:-20}"
`,
      { HOST: '0.0.0.0', KEY: 'k'.repeat(32), SECRET: '', HOSTNAME: 'h.example' },
    );
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 6006 });
    expect(config.data_dir).toBe('/srv/wharf');
    expect(config.projects[0]?.api_keys).toEqual(['k'.repeat(32)]);
    expect(config.projects[0]?.endpoints[0]).toMatchObject({
      url: 'https://h.example/x',
      secret: 'fallback-secret-value',
      description: 'costs ${AMOUNT}',
      http_timeout: 20,
    });
  });

  it('names the variable, the key and the file when a variable is unset', () => {
    const err = failure(endpoint('secret: "${ACME_SECRET}"'));
    expect(err.message).toBe(
      `${file}: projects[0].endpoints[1].secret: environment variable ACME_SECRET is not set (write \${ACME_SECRET:-default} to give a default)`,
    );
    expect(err.code).toBe('WHARF_ERR_CONFIG');
    expect(err.file).toBe(file);
    expect(err.field).toBe('projects[0].endpoints[1].secret');
  });

  it('lets WHARF_* variables override the file', () => {
    const config = load('server: { port: 1234 }\ndatabase: { url: "" }\ndata_dir: ./here\n', {
      WHARF_PORT: '7007',
      WHARF_DATABASE_URL: 'postgres://wharf:pw@db:5432/wharf',
      WHARF_DATA_DIR: 'state',
      WHARF_ENCRYPTION_KEY: KEY_HEX,
      WHARF_LOG_LEVEL: 'debug',
    });
    expect(config.server.port).toBe(7007);
    expect(config.database.url).toBe('postgres://wharf:pw@db:5432/wharf');
    expect(config.data_dir).toBe(join(dir, 'state'));
    expect(config.encryption_key).toBe(KEY_HEX);
    expect(config.log.level).toBe('debug');
  });

  it('database.prepared_statements takes true or false, from the file or WHARF_DATABASE_PREPARED_STATEMENTS', () => {
    expect(load('database: { prepared_statements: false }\n').database.prepared_statements).toBe(false);
    expect(load('', { WHARF_DATABASE_PREPARED_STATEMENTS: 'false' }).database.prepared_statements).toBe(false);
    expect(load('database: { prepared_statements: false }\n', { WHARF_DATABASE_PREPARED_STATEMENTS: 'true' }).database.prepared_statements).toBe(true);
    const err = failure('database: { prepared_statements: "yes" }\n');
    expect(err.message).toBe(`${file}: database.prepared_statements: must be true or false (got "yes")`);
    expect(err.field).toBe('database.prepared_statements');
    expect(failure('', { WHARF_DATABASE_PREPARED_STATEMENTS: 'on' }).message).toContain('database.prepared_statements (from WHARF_DATABASE_PREPARED_STATEMENTS): must be true or false (got "on")');
  });

  it('reads overrides from options.env only, never from process.env', () => {
    process.env.WHARF_PORT = '7777';
    try {
      expect(load('').server.port).toBe(5005);
    } finally {
      delete process.env.WHARF_PORT;
    }
  });

  it('names the variable when an override is invalid', () => {
    expect(failure('', { WHARF_PORT: 'abc' }).message).toBe(`${file}: server.port (from WHARF_PORT): must be a port number (got "abc")`);
  });

  it('reads the file WHARF_CONFIG names, relative to cwd', () => {
    mkdirSync(join(dir, 'etc'));
    const other = write('server: { port: 6111 }\n', 'etc/other.yaml');
    const loaded = loadConfig({ env: { WHARF_CONFIG: 'etc/other.yaml' }, cwd: dir });
    expect(loaded.file).toBe(other);
    expect(loaded.config.server.port).toBe(6111);
  });

  it('prefers options.file over WHARF_CONFIG, and defaults to config/wharf.yaml', () => {
    write('server: { port: 6222 }\n');
    expect(loadConfig({ file: 'wharf.yaml', env: { WHARF_CONFIG: 'nope.yaml' }, cwd: dir }).config.server.port).toBe(6222);
    expect(() => loadConfig({ env: {}, cwd: dir })).toThrow(`${join(dir, 'config/wharf.yaml')}: config file not found`);
  });

  it('rejects an unknown top-level key, naming key and file', () => {
    expect(failure('server: { port: 1 }\nservr: { port: 2 }\n').message).toBe(`${file}: unknown key "servr"`);
    expect(failure('server: { prot: 2 }\n').message).toBe(`${file}: unknown key "server.prot"`);
    expect(failure('"server.port": 2\n').message).toBe(`${file}: unknown key "server.port"`);
  });

  it('rejects unknown keys inside projects, endpoints, signature and retry', () => {
    const err = failure(`
projects:
  - id: p
    colour: blue
    signature: { algo: x }
    retry: { tries: 3 }
    endpoints:
      - id: e
        url: https://e.example/
        timeout: 5
`);
    expect(err.message.split('\n')).toEqual([
      `${file}: unknown key "projects[0].colour"`,
      `${file}: unknown key "projects[0].signature.algo"`,
      `${file}: unknown key "projects[0].retry.tries"`,
      `${file}: unknown key "projects[0].endpoints[0].timeout"`,
    ]);
    expect(err.field).toBe('projects[0].colour');
  });

  const source = (fields: string) => `projects: [{ id: p, sources: [{ name: s, ${fields} }] }]`;

  it.each([
    ['server: { port: 99999 }', 'server.port: must be a port number (got 99999)'],
    ['server: { port: "80a" }', 'server.port: must be a port number (got "80a")'],
    ['server: { port: 80 }\nserver2: 1', 'unknown key "server2"'],
    ['server: 5', 'server: must be a mapping (got 5)'],
    ['dispatch: { polling_interval: 0.1 }', 'dispatch.polling_interval: must be a number from 0.5 to 3600 (got 0.1)'],
    ['log: { level: loud }', 'log.level: must be one of trace, debug, info, warn, error, fatal, silent (got "loud")'],
    ['egress: { allow: [10.0.0.0/8, 10.0.0.0/33] }', 'egress.allow[1]: must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8 (got "10.0.0.0/33")'],
    ['egress: { block: ["fd00::/8", "not-an-ip/8"] }', 'egress.block[1]: must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8 (got "not-an-ip/8")'],
    ['egress: { allow: 10.0.0.0/8 }', 'egress.allow: must be a list of CIDR ranges (got "10.0.0.0/8")'],
    [endpoint('http_timeout: abc'), 'projects[0].endpoints[1].http_timeout: must be an integer from 1 to 300 (got "abc")'],
    [endpoint('http_timeout: 301'), 'projects[0].endpoints[1].http_timeout: must be an integer from 1 to 300 (got 301)'],
    [endpoint('advanced_signatures: maybe'), 'projects[0].endpoints[1].advanced_signatures: must be true or false (got "maybe")'],
    ['projects: [{ id: p, endpoints: [{ id: e, url: "ftp://x.example/" }] }]', 'projects[0].endpoints[0].url: must be an http or https URL (got "ftp:")'],
    ['projects: [{ id: p, endpoints: [{ id: e, url: "not a url" }] }]', 'projects[0].endpoints[0].url: must be an absolute http or https URL (got "not a url")'],
    ['projects: [{ id: p, endpoints: [{ id: e }] }]', 'projects[0].endpoints[0].url: is required: the http or https URL deliveries are sent to'],
    ['projects: [{ id: p, signature: { hash: MD5 } }]', 'projects[0].signature.hash: must be one of SHA256, SHA512 (got "MD5")'],
    ['projects: [{ id: p, signature: { encoding: base32 } }]', 'projects[0].signature.encoding: must be one of hex, base64 (got "base32")'],
    ['projects: [{ id: p, signature: { scheme: jwt } }]', 'projects[0].signature.scheme: must be one of convoy, standard-webhooks (got "jwt")'],
    ['projects: [{ id: p, signature: { header: "X Sig" } }]', 'projects[0].signature.header: must be an HTTP header name (got "X Sig")'],
    ['projects: [{ id: p, signature: { scheme: standard-webhooks, hash: SHA512 } }]', 'projects[0].signature.hash: must be SHA256 or left out for standard-webhooks (got "SHA512")'],
    ['projects: [{ id: p, retry: { strategy: random } }]', 'projects[0].retry.strategy: must be one of linear, exponential (got "random")'],
    ['projects: [{ id: p, retry: { duration: 0 } }]', 'projects[0].retry.duration: must be an integer from 1 to 86400 (got 0)'],
    ['projects: [{ id: p, retry: { retry_count: 51 } }]', 'projects[0].retry.retry_count: must be an integer from 0 to 50 (got 51)'],
    ['projects: [{ id: p, type: sideways }]', 'projects[0].type: must be one of outgoing, incoming (got "sideways")'],
    ['projects: [{ id: "-bad" }]', 'projects[0].id: must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit (got "-bad")'],
    ['projects: [{ name: No id }]', 'projects[0].id: is required and must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit'],
    ['projects: [{ id: p }, { id: p }]', 'projects[1].id: must be unique among projects (got "p", already used by projects[0])'],
    ['projects: { id: p }', 'projects: must be a list of projects (got a mapping)'],
    ['projects: [p]', 'projects[0]: must be a mapping (got "p")'],
    ['egress: { allow: { a: 1 } }', 'egress.allow: must be a list of CIDR ranges (got a mapping)'],
    ['projects: [{ id: p, breaker: { failure_rate: 101 } }]', 'projects[0].breaker.failure_rate: must be an integer from 0 to 100 (got 101)'],
    ['projects: [{ id: p, meta_events: { url: "https://ops.example/alerts" } }]', 'projects[0].meta_events.secret: is required: alerts are always signed'],
    ['projects: [{ id: p, meta_events: { secret: s3cret-s3cret-s3cret } }]', 'projects[0].meta_events.url: is required: the http or https URL alerts are sent to'],
    ['projects: [{ id: p, meta_events: { url: "https://ops.example", secret: s3cret-s3cret-s3cret, event_types: [endpoint.deleted] } }]', 'projects[0].meta_events.event_types[0]: must be one of endpoint.status_changed, endpoint.failing (got "endpoint.deleted")'],
    ['projects: [{ id: p, breaker: { alert_after: -1 } }]', 'projects[0].breaker.alert_after: must be an integer from 0 to 1000000 (got -1)'],
    [endpoint('notification_url: "ftp://x.example"'), 'projects[0].endpoints[1].notification_url: must be an http or https URL (got "ftp:")'],
    [endpoint('content_type: text/xml'), 'projects[0].endpoints[1].content_type: must be one of application/json, application/x-www-form-urlencoded (got "text/xml")'],
    [endpoint('is_disabled: true'), "projects[0].endpoints[1].is_disabled: is for the API (Convoy's); in this file, leave the endpoint out, or pause it through the API"],
    [endpoint('rate_limit_duration: 0'), 'projects[0].endpoints[1].rate_limit_duration: must be an integer from 1 to 86400 (got 0)'],
    ['dashboard: { session_seconds: 0 }', 'dashboard.session_seconds: must be an integer from 1 to 2592000 (got 0)'],
    ['dashboard: { session_seconds: 8h }', 'dashboard.session_seconds: must be an integer from 1 to 2592000 (got "8h")'],
    ['ingest: { reload_interval: 0 }', 'ingest.reload_interval: must be a number from 0.1 to 3600 (got 0)'],
    ['ingest: { max_json_depth: 0 }', 'ingest.max_json_depth: must be an integer from 1 to 1000 (got 0)'],
    ['server: { operator_token: short-token }', 'server.operator_token: must be "" or at least 32 characters without spaces (got 11 characters)'],
    [source('type: mqtt'), 'projects[0].sources[0].type: must be one of kafka, sqs, pubsub, rabbitmq, http (got "mqtt")'],
    [source('type: rabbitmq'), 'projects[0].sources[0].rabbitmq: is required: the rabbitmq settings of this source'],
    [source('type: rabbitmq, rabbitmq: { queue: q }'), 'projects[0].sources[0].rabbitmq.url: is required: an amqp:// or amqps:// URL'],
    [source('type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q, prefetch: many }'), 'projects[0].sources[0].rabbitmq.prefetch: must be an integer from 1 to 65535 (got "many")'],
    [source('type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q, workers: 5, prefetch: 2 }'), 'projects[0].sources[0].rabbitmq.workers: must be at most prefetch (2): each worker needs at least one message in flight (got 5)'],
    [source('type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q }, format: xml'), 'projects[0].sources[0].format: must be one of envelope, raw (got "xml")'],
    [source('type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q }, forward_headers: ["bad header"]'), 'projects[0].sources[0].forward_headers[0]: must be a header name (got "bad header")'],
    ['projects: [{ id: p, sources: [{ name: "Has spaces", type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q } }] }]', 'projects[0].sources[0].id: is required when name is not 1-64 letters, digits, "_", "." or "-" (got "Has spaces")'],
    ['projects: [{ id: p, sources: [{ name: s, type: rabbitmq, rabbitmq: { url: "amqp://h", queue: q } }, { name: s, type: rabbitmq, rabbitmq: { url: "amqp://h", queue: r } }] }]', 'projects[0].sources[1].id: must be unique within the project (got "s", already used by projects[0].sources[0])'],
    [
      'projects: [{ id: p, endpoints: [{ id: e, url: "https://e.example/" }], subscriptions: [{ id: s, name: s, endpoint_id: e, filter_config: { filter: { body: { s: { $regex: "(?=a)b" } } } } }] }]',
      'projects[0].subscriptions[0].filter_config.filter.body.s.$regex: is not a pattern RE2 accepts (no backreferences or lookaround): invalid or unsupported Perl syntax: `(?=`',
    ],
    [
      'projects: [{ id: p, endpoints: [{ id: e, url: "https://e.example/" }], subscriptions: [{ id: s, name: s, endpoint_id: e, filter_config: { filter: { body: { s: { $regex: "[a-z]{1000}" } } } } }] }]',
      'projects[0].subscriptions[0].filter_config.filter.body.s.$regex: is too large: RE2 compiles it to 1002 instructions, at most 1000 (use smaller counted repetitions such as {100})',
    ],
    [
      'projects: [{ id: p, endpoints: [{ id: e, url: "https://e.example/" }], subscriptions: [{ id: s, endpoint_id: e, retry_config: { retry_count: 51 } }] }]',
      'projects[0].subscriptions[0].retry_config.retry_count: must be an integer from 0 to 50 (got 51)',
    ],
    [
      'projects: [{ id: p, endpoints: [{ id: e, url: "https://e.example/" }], subscriptions: [{ id: s, endpoint_id: e, retry_config: { duration: 1500ms } }] }]',
      'projects[0].subscriptions[0].retry_config.duration: must be whole seconds from 1 to 86400, as a number or a Go duration like "10s" or "1h3m" (got "1500ms")',
    ],
    [
      'projects: [{ id: p, type: outgoing, sources: [{ id: h, name: h, type: http, event_type: x, http: { verifier: { type: none } } }] }]',
      'projects[0].sources[0].type: project "p" is an outgoing project: its events come from the REST API and broker sources, not HTTP ingest',
    ],
    [
      'projects: [{ id: p, type: incoming, sources: [{ name: q, type: rabbitmq, rabbitmq: { url: "amqp://u:p@h", queue: q } }] }]',
      'projects[0].sources[0].type: project "p" is an incoming project: its events come from its HTTP sources, not the REST API or brokers',
    ],
  ])('rejects %j', (yaml, expected) => {
    expect(failure(yaml).message).toBe(`${file}: ${expected}`);
  });

  it('rejects a duplicate endpoint id within a project, but not across projects', () => {
    const twice = `
projects:
  - id: p
    endpoints:
      - { id: hook, url: "https://a.example/" }
      - { id: hook, url: "https://b.example/" }
`;
    expect(failure(twice).message).toBe(
      `${file}: projects[0].endpoints[1].id: must be unique within the project (got "hook", already used by projects[0].endpoints[0])`,
    );
    const apart = `
projects:
  - { id: p, endpoints: [{ id: hook, url: "https://a.example/" }] }
  - { id: q, endpoints: [{ id: hook, url: "https://b.example/" }] }
`;
    expect(load(apart).projects.map((p) => p.endpoints[0]?.id)).toEqual(['hook', 'hook']);
  });

  it("reads a subscription's retry_config in Convoy's shape, keeping only the parts given", () => {
    const yaml = `
projects:
  - id: p
    endpoints: [{ id: e, url: "https://e.example/" }]
    subscriptions:
      - { id: a, endpoint_id: e, retry_config: { type: linear, duration: 1h3m, retry_count: 1 } }
      - { id: b, endpoint_id: e, retry_config: { interval_seconds: 30 } }
      - { id: c, endpoint_id: e, retry_config: { type: "", duration: "" } }
`;
    expect(load(yaml).projects[0]!.subscriptions.map((s) => s.retry_config)).toEqual([
      { strategy: 'linear', duration: 3780, retry_count: 1 },
      { duration: 30 },
      null,
    ]);
  });

  it('reports every problem, one line each', () => {
    const lines = failure('server: { port: -1 }\ndispatch: { concurrency: 0 }\n').message.split('\n');
    expect(lines).toEqual([
      `${file}: server.port: must be a port number (got -1)`,
      `${file}: dispatch.concurrency: must be an integer from 1 to 1000 (got 0)`,
    ]);
  });

  it('rejects a bad encryption_key without echoing it', () => {
    const key = 'hunter2-not-a-real-key';
    const fromFile = failure(`encryption_key: ${key}\n`).message;
    expect(fromFile).toMatch(new RegExp(`^${file}: encryption_key: must be 32 bytes written as 64 hex characters or base64`));
    expect(fromFile).not.toContain(key);
    const fromEnv = failure('', { WHARF_ENCRYPTION_KEY: key }).message;
    expect(fromEnv).toContain('encryption_key (from WHARF_ENCRYPTION_KEY): must be 32 bytes');
    expect(fromEnv).not.toContain(key);
  });

  it('accepts an encryption_key as hex or base64 of 32 bytes', () => {
    expect(load(`encryption_key: ${KEY_HEX}\n`).encryption_key).toBe(KEY_HEX);
    const b64 = Buffer.alloc(32, 7).toString('base64');
    expect(load(`encryption_key: "${b64}"\n`).encryption_key).toBe(b64);
    expect(failure(`encryption_key: "${Buffer.alloc(31, 7).toString('base64')}"\n`).message).toContain('encryption_key: must be 32 bytes');
  });

  it('never echoes a database url, endpoint secret or API key in an error', () => {
    const url = 'mysql://root:sup3rs3cret@db/wharf';
    const dbMessage = failure(`database: { url: "${url}" }\n`).message;
    expect(dbMessage).toBe(`${file}: database.url: must be "" (embedded Postgres) or a postgres:// or postgresql:// URL (got a "mysql:" URL)`);

    const secretMessage = failure(`
projects:
  - id: p
    signature: { scheme: standard-webhooks }
    endpoints: [{ id: e, url: "https://e.example/", secret: "plain-s3cret" }]
`).message;
    expect(secretMessage).toMatch(new RegExp(`^${file}: projects\\[0\\]\\.endpoints\\[0\\]\\.secret: must be "whsec_"`));
    expect(secretMessage).not.toContain('plain-s3cret');

    const keyMessage = failure(`projects: [{ id: p, api_keys: [${'k'.repeat(32)}] }, { id: q, api_keys: [${'k'.repeat(32)}] }]\n`).message;
    expect(keyMessage).toBe(`${file}: projects[1].api_keys[0]: must be unique (the same key is at projects[0].api_keys[0])`);
  });

  it('names a missing file', () => {
    const missing = join(dir, 'missing.yaml');
    expect(() => loadConfig({ file: 'missing.yaml', env: {}, cwd: dir })).toThrow(expect.objectContaining({
      name: 'ConfigError',
      message: `${missing}: config file not found`,
      file: missing,
    }));
  });

  it('gives line and column for a YAML syntax error, without quoting the file', () => {
    const message = failure('server:\n  host: 127.0.0.1\n port: 5005\nencryption_key: topsecret\n').message;
    expect(message).toBe(`${file}: YAML syntax error at line 3, column 1: All mapping items must start at the same column`);
    expect(failure('a: "unterminated\n').message).toMatch(new RegExp(`^${file}: YAML syntax error at line \\d+, column \\d+: Missing closing "quote`));
  });

  it('rejects a file that is not a mapping', () => {
    expect(failure('- a\n- b\n').message).toBe(`${file}: must be a mapping of settings (got a list)`);
  });

  it('treats a key with no value as its default', () => {
    const config = load('server:\n  port:\negress:\nprojects:\n  - id: p\n    endpoints:\n      - { id: e, url: "https://e.example/", secret: ~ }\n');
    expect(config.server.port).toBe(5005);
    expect(config.egress).toEqual({ allow: [], block: [] });
    expect(config.projects[0]?.endpoints[0]?.secret).toBeNull();
  });
});

describe('shipped config files', () => {
  it('config/wharf.yaml loads unedited', () => {
    const { config, file: read } = loadConfig({ file: 'config/wharf.yaml', env: {}, cwd: REPO });
    expect(read).toBe(join(REPO, 'config/wharf.yaml'));
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 5005 });
    expect(config.database.url).toBe('');
    expect(config.data_dir).toBe(join(REPO, 'data'));
    expect(config.egress.allow).toEqual(['127.0.0.0/8', '::1/128']);
    expect(config.projects).toEqual([
      { id: 'default', name: 'Default', type: 'outgoing', type_enforced: false, api_keys: [], signature: DEFAULT_SIGNATURE, retry: DEFAULT_RETRY, breaker: DEFAULT_BREAKER, meta_events: null, endpoints: [], sources: [], subscriptions: [] },
    ]);
    expect(loadConfig({ file: 'config/wharf.yaml', env: { WHARF_API_KEY: 'chosen'.repeat(6) }, cwd: REPO }).config.projects[0]?.api_keys).toEqual([
      'chosen'.repeat(6),
    ]);
  });

  it('config/example.yaml loads once its variables are set', () => {
    const file = join(REPO, 'config/example.yaml');
    expect(() => loadConfig({ file, env: {} })).toThrow(/projects\[0\]\.api_keys\[0\]: environment variable SHOP_API_KEY is not set/);
    const { config } = loadConfig({ file, env: { SHOP_API_KEY: 'shop-key-0123456789-0123456789-01', ACME_SECRET: 'acme-secret-0123456789' } });
    const [shop, inbox] = config.projects;
    expect(shop?.endpoints.map((e) => [e.id, e.secret])).toEqual([
      ['acme', 'acme-secret-0123456789'],
      ['globex', null],
    ]);
    expect(shop?.api_keys).toEqual(['shop-key-0123456789-0123456789-01']);
    expect(inbox).toMatchObject({ type: 'incoming', signature: { scheme: 'standard-webhooks' } });
    // Without ACME_SECRET the example's own default applies.
    expect(loadConfig({ file, env: { SHOP_API_KEY: 'k'.repeat(32) } }).config.projects[0]?.endpoints[0]?.secret).toBe('change-me-acme-secret');
  });
});

describe('redactConfig', () => {
  it('hides the database password, encryption key, API keys and endpoint secrets', () => {
    const config = load(
      `
database: { url: "postgres://wharf:pa55word@db.internal:5432/wharf?sslmode=require&password=again" }
encryption_key: ${KEY_HEX}
projects:
  - id: p
    api_keys: [key-one-0123456789-0123456789-0123, key-two-0123456789-0123456789-0123]
    endpoints:
      - { id: with, url: "https://a.example/", secret: s3cret-value-0123456789 }
      - { id: without, url: "https://b.example/" }
`,
    );
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    for (const secret of ['pa55word', 'again', KEY_HEX, 'key-one', 'key-two', 's3cret-value']) expect(text).not.toContain(secret);
    expect(redacted).toMatchObject({
      database: { url: 'postgres://wharf:[redacted]@db.internal:5432/wharf?sslmode=require&password=[redacted]' },
      encryption_key: '[redacted]',
      projects: [
        {
          api_keys: ['[redacted]', '[redacted]'],
          endpoints: [
            { id: 'with', secret: '[redacted]' },
            { id: 'without', secret: null },
          ],
        },
      ],
    });
    // A copy: the config itself still holds the real values.
    expect(config.projects[0]?.endpoints[0]?.secret).toBe('s3cret-value-0123456789');
  });
});
