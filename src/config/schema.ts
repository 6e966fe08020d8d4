import convict from 'convict';
import { DEFAULT_MAX_JSON_DEPTH, MAX_JSON_DEPTH_LIMIT } from '../ingest/limits.ts';
import { ALERT_TYPES, ENDPOINT_SETTINGS, trafficProblem, type AlertType, type BreakerSettings, type EndpointFields, type ProjectType, type RetrySettings, type SignatureSettings } from '../core/types.ts';
import { parseBreaker } from '../dispatch/breaker.ts';
import { RESERVED_HEADERS } from '../delivery/request.ts';
import { newSecretProblem } from '../delivery/signatures.ts';
import { cidrProblem as egressCidrProblem } from '../delivery/egress.ts';
import { NO_CREDENTIALS, type EndpointCredentials } from '../delivery/credentials.ts';
import { ENDPOINT_DEFAULTS, readEndpointSettings } from '../delivery/endpoint-settings.ts';
import { readSource, type SourceDefinition } from '../sources/settings.ts';
import { readSubscription, type SubscriptionDefinition } from '../ingest/subscription-settings.ts';
import { Reader, TOKEN, absent, got, kind, type SettingIssue } from '../core/settings.ts';
import { MIN_API_KEY_LENGTH, shortSecretProblem } from '../core/secrets.ts';

/** An endpoint declared in the file: the writable fields, its id, and what is sealed apart. */
export type EndpointConfig = EndpointFields & { id: string; secret: string | null; credentials: EndpointCredentials };

export interface ProjectConfig {
  id: string;
  name: string;
  type: ProjectType;
  /** `type` was given: it decides which traffic the project takes. */
  type_enforced: boolean;
  api_keys: string[];
  signature: SignatureSettings;
  retry: RetrySettings;
  breaker: BreakerSettings;
  /** The project's meta-event URL for alerts, with the secret that signs them. */
  meta_events: { url: string; secret: string; event_types: AlertType[] } | null;
  endpoints: EndpointConfig[];
  sources: SourceDefinition[];
  subscriptions: SubscriptionDefinition[];
  /** The project's own retention ages (`30d`, `off`), by kind; absent: `retention.defaults` applies. */
  retention?: RetentionAges;
}

/** What retention purges, each on its own clock (src/store/retention.ts says how they relate). */
export const RETENTION_KINDS = ['events', 'attempts', 'dead_letters', 'meta_events'] as const;
export type RetentionKind = (typeof RETENTION_KINDS)[number];
/** Ages as written (`30d`, `12h`, `1h30m`) or `off` (kept forever). */
export type RetentionAges = Partial<Record<RetentionKind, string>>;

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface WharfConfig {
  server: { host: string; port: number; body_limit: number; operator_token: string };
  /** `url` '' means embedded Postgres in `data_dir`. */
  database: { url: string; pool_size: number; prepared_statements: boolean };
  /** Absolute once loaded. */
  data_dir: string;
  /** '' means Wharf keeps a generated key in `data_dir`. */
  encryption_key: string;
  log: { level: LogLevel };
  /** CIDR ranges, IPv4 or IPv6. */
  egress: { allow: string[]; block: string[] };
  /** `polling_interval` and `shutdown_timeout` are in seconds. */
  dispatch: { batch_size: number; concurrency: number; max_in_flight: number; endpoint_concurrency: number; project_concurrency: number; polling_interval: number; linger_ms: number; record_linger_ms: number; max_response_bytes: number; shutdown_timeout: number };
  /** Seconds. */
  ingest: { reload_interval: number; shutdown_timeout: number; max_json_depth: number; api_broker_types: string[]; linger_ms: number };
  /** Customer portal (src/portal): `public_url` '' = derived from the server address; minutes. */
  portal: { public_url: string; session_minutes: number; frame_ancestors: string };
  /** Operator dashboard (src/dashboard): how long a sign-in lasts, in seconds. */
  dashboard: { session_seconds: number };
  /** `interval` and `batch_pause` are in seconds; `defaults` holds every kind (`off` unless set). */
  retention: { defaults: Required<RetentionAges>; interval: number; batch_size: number; batch_pause: number };
  projects: ProjectConfig[];
}

export const DEFAULT_SIGNATURE: SignatureSettings = Object.freeze({
  scheme: 'convoy',
  header: 'X-Convoy-Signature',
  hash: 'SHA256',
  encoding: 'hex',
});

export const DEFAULT_RETRY: RetrySettings = Object.freeze({ strategy: 'exponential', duration: 10, retry_count: 10 });

/** What a format throws. Convict sets `fullName` (the setting's key) on it before collecting it. */
export class SettingError extends Error {
  readonly issues: SettingIssue[];
  fullName?: string;
  constructor(issues: SettingIssue[]) {
    super(issues.map((i) => (i.unknown ? `unknown key ${i.path}` : `${i.path}${i.path ? ': ' : ''}${i.message}`)).join('; '));
    this.name = 'SettingError';
    this.issues = issues;
  }
}

// Convict folds every format error into one string, which loses the nested key paths of projects and
// can echo values; formats also record their errors here so the loader can report them properly.
let sink: SettingError[] | null = null;

/** Runs `validate` (which calls the formats) and returns what the formats rejected, in order. */
export function captureRejections(validate: () => void): { rejected: SettingError[]; error: unknown } {
  const rejected: SettingError[] = [];
  sink = rejected;
  try {
    validate();
    return { rejected, error: undefined };
  } catch (error) {
    return { rejected, error };
  } finally {
    sink = null;
  }
}

function reject(issues: SettingIssue[]): never {
  const err = new SettingError(issues);
  sink?.push(err);
  throw err;
}

const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)$/;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^(?:[A-Za-z0-9+/]{43}|[A-Za-z0-9_-]{43})=?$/;

/** The 32 key bytes `encryption_key` holds (64 hex characters or base64/base64url), or null. */
export function parseEncryptionKey(value: string): Buffer | null {
  if (HEX_KEY.test(value)) return Buffer.from(value, 'hex');
  if (!BASE64_KEY.test(value)) return null;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length === 32 ? bytes : null;
}

/** Why an `egress` entry is unusable, or null: the guard that applies the lists judges them. */
function cidrProblem(cidr: unknown): string | null {
  if (typeof cidr !== 'string') return `must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8${got(cidr)}`;
  return egressCidrProblem(cidr);
}

type Bounds = convict.SchemaObj & { min: number; max: number };

/** The shortest operator token taken: it guards metrics and readiness details of every project. */
export const MIN_OPERATOR_TOKEN = 32;

// Named formats, not plain functions: only a named format can bring its own coercion, and convict's
// default coercion would parseInt "5005abc" to 5005 (or JSON.parse a string given for a list).
// Strings reach numeric settings from the environment and from ${VAR} expansion.
const FORMATS: Record<string, { validate: (value: unknown, schema: Bounds) => void; coerce: (value: string) => unknown }> = {
  'wharf-port': {
    validate: (v: unknown) => {
      if (!(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535)) {
        reject([{ path: '', message: `must be a port number${got(v)}` }]);
      }
    },
    coerce: (v: string) => (INTEGER.test(v) ? Number(v) : v),
  },
  'wharf-int': {
    validate: (v: unknown, schema: Bounds) => {
      if (!(Number.isInteger(v) && (v as number) >= schema.min && (v as number) <= schema.max)) {
        reject([{ path: '', message: `must be an integer from ${schema.min} to ${schema.max}${got(v)}` }]);
      }
    },
    coerce: (v: string) => (INTEGER.test(v) ? Number(v) : v),
  },
  'wharf-number': {
    validate: (v: unknown, schema: Bounds) => {
      if (!(typeof v === 'number' && Number.isFinite(v) && v >= schema.min && v <= schema.max)) {
        reject([{ path: '', message: `must be a number from ${schema.min} to ${schema.max}${got(v)}` }]);
      }
    },
    coerce: (v: string) => (DECIMAL.test(v) ? Number(v) : v),
  },
  'wharf-bool': {
    validate: (v: unknown) => {
      if (typeof v !== 'boolean') reject([{ path: '', message: `must be true or false${got(v)}` }]);
    },
    coerce: (v: string) => (v === 'true' ? true : v === 'false' ? false : v),
  },
  'wharf-text': {
    validate: (v: unknown) => {
      if (typeof v !== 'string' || v.trim() === '') reject([{ path: '', message: `must be a non-empty string${got(v)}` }]);
    },
    coerce: (v: string) => v,
  },
  'wharf-broker-types': {
    validate: (v: unknown) => {
      const types = ['kafka', 'sqs', 'pubsub', 'rabbitmq'];
      if (!Array.isArray(v)) reject([{ path: '', message: `must be a list of broker types${got(v)}` }]);
      const issues = (v as unknown[]).flatMap((t, i): SettingIssue[] =>
        types.includes(t as string) ? [] : [{ path: `[${i}]`, message: `must be one of ${types.join(', ')}${got(t)}` }],
      );
      if (issues.length > 0) reject(issues);
    },
    coerce: (v: string) => v.split(',').map((t) => t.trim()).filter(Boolean),
  },
  'wharf-operator-token': {
    // Sensitive: only its length is ever said.
    validate: (v: unknown) => {
      if (typeof v !== 'string') reject([{ path: '', message: `must be a string${kind(v)}` }]);
      if (v !== '' && (v.length < MIN_OPERATOR_TOKEN || /\s/.test(v))) {
        reject([{ path: '', message: `must be "" or at least ${MIN_OPERATOR_TOKEN} characters without spaces (got ${v.length} characters)` }]);
      }
    },
    coerce: (v: string) => v,
  },
  'wharf-log-level': {
    validate: (v: unknown) => {
      if (!LOG_LEVELS.includes(v as LogLevel)) reject([{ path: '', message: `must be one of ${LOG_LEVELS.join(', ')}${got(v)}` }]);
    },
    coerce: (v: string) => v,
  },
  'wharf-database-url': {
    // Sensitive: a password may sit anywhere in it, so no message quotes it.
    validate: (v: unknown) => {
      const expected = 'must be "" (embedded Postgres) or a postgres:// or postgresql:// URL';
      if (typeof v !== 'string') reject([{ path: '', message: expected + got(v) }]);
      if (v === '') return;
      let protocol = '';
      try {
        protocol = new URL(v).protocol;
      } catch {
        reject([{ path: '', message: `${expected} (got a string that is not a URL)` }]);
      }
      if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
        reject([{ path: '', message: `${expected} (got a ${JSON.stringify(protocol)} URL)` }]);
      }
    },
    coerce: (v: string) => v,
  },
  'wharf-encryption-key': {
    // Sensitive: the length is enough to spot a truncated paste without revealing the key.
    validate: (v: unknown) => {
      const expected = 'must be 32 bytes written as 64 hex characters or base64, or "" to keep a generated key in data_dir';
      if (typeof v !== 'string') reject([{ path: '', message: expected + kind(v) }]);
      if (v !== '' && parseEncryptionKey(v) === null) {
        reject([{ path: '', message: `${expected} (got ${v.length} characters that are neither)` }]);
      }
    },
    coerce: (v: string) => v,
  },
  'wharf-cidr-list': {
    validate: (v: unknown) => {
      if (!Array.isArray(v)) reject([{ path: '', message: `must be a list of CIDR ranges${got(v)}` }]);
      const issues = v.flatMap((cidr, i): SettingIssue[] => {
        const problem = cidrProblem(cidr);
        return problem === null ? [] : [{ path: `[${i}]`, message: problem }];
      });
      if (issues.length > 0) reject(issues);
    },
    coerce: (v: string) => v,
  },
  'wharf-retention-age': {
    validate: (v: unknown) => {
      const problem = retentionAgeProblem(v);
      if (problem) reject([{ path: '', message: problem }]);
    },
    coerce: (v: string) => v,
  },
  'wharf-projects': {
    validate: (v: unknown) => {
      const { issues } = normalizeProjects(v);
      if (issues.length > 0) reject(issues);
    },
    coerce: (v: string) => v,
  },
  'wharf-public-url': {
    validate: (v: unknown) => {
      if (typeof v !== 'string') reject([{ path: '', message: `must be "" or an http(s) URL${got(v)}` }]);
      if (v === '') return;
      let u: URL | null = null;
      try {
        u = new URL(v);
      } catch {
        // reported below
      }
      if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username) {
        reject([{ path: '', message: `must be "" or an http(s) URL without query, fragment or credentials${got(v)}` }]);
      }
    },
    coerce: (v: string) => v,
  },
  'wharf-csp-sources': {
    // Goes into a Content-Security-Policy header: one directive's source list, nothing more.
    validate: (v: unknown) => {
      if (typeof v !== 'string' || v.trim() === '' || /[;,\r\n\0]/.test(v)) {
        reject([{ path: '', message: `must be a CSP source list such as 'none', 'self' or https://dashboard.example.com${got(v)}` }]);
      }
    },
    coerce: (v: string) => v,
  },
};
convict.addFormats(FORMATS);

/** What a setting's format says about `value`, asked directly rather than through convict. */
export function checkSetting(setting: Record<string, unknown>, value: unknown): SettingIssue[] {
  const format = typeof setting.format === 'string' ? FORMATS[setting.format] : undefined;
  try {
    format?.validate(value, setting as Bounds);
    return [];
  } catch (err) {
    if (err instanceof SettingError) return err.issues;
    throw err;
  }
}

export const configSchema = {
  server: {
    host: { doc: 'Address the API listens on (0.0.0.0 in a container).', format: 'wharf-text', default: '127.0.0.1', env: 'WHARF_HOST' },
    port: { doc: 'Port the API listens on (0 picks a free one).', format: 'wharf-port', default: 5005, env: 'WHARF_PORT' },
    body_limit: { doc: 'Largest request body the API accepts, in bytes.', format: 'wharf-int', min: 1, max: 104_857_600, default: 1_048_576 },
    operator_token: {
      doc: 'Bearer token that shows the details of /readyz and opens /metrics (at least 32 characters); "" keeps both closed.',
      format: 'wharf-operator-token',
      default: '',
      env: 'WHARF_OPERATOR_TOKEN',
      sensitive: true,
    },
  },
  database: {
    url: {
      doc: 'Postgres connection URL; "" runs an embedded Postgres in data_dir.',
      format: 'wharf-database-url',
      default: '',
      env: 'WHARF_DATABASE_URL',
      sensitive: true,
    },
    pool_size: { doc: 'Most database connections one Wharf process opens.', format: 'wharf-int', min: 1, max: 1000, default: 10 },
    prepared_statements: {
      doc:
        'Run repeated statements as named prepared statements (planned once per connection). Set false behind a pooler ' +
        'that cannot keep them, such as PgBouncer in transaction mode before 1.21. The embedded database never uses them.',
      format: 'wharf-bool',
      default: true,
      env: 'WHARF_DATABASE_PREPARED_STATEMENTS',
    },
  },
  data_dir: {
    doc: 'Directory for the embedded database and the generated encryption key; relative to the working directory.',
    format: 'wharf-text',
    default: './data',
    env: 'WHARF_DATA_DIR',
  },
  encryption_key: {
    doc: 'Key that encrypts endpoint secrets at rest: 32 bytes as 64 hex characters or base64; "" keeps a generated key in data_dir.',
    format: 'wharf-encryption-key',
    default: '',
    env: 'WHARF_ENCRYPTION_KEY',
    sensitive: true,
  },
  log: {
    level: { doc: 'Lowest log level written.', format: 'wharf-log-level', default: 'info', env: 'WHARF_LOG_LEVEL' },
  },
  egress: {
    allow: { doc: 'CIDR ranges deliveries and broker connections may reach even though they are private or loopback.', format: 'wharf-cidr-list', default: [] },
    block: { doc: 'CIDR ranges deliveries and broker connections may never reach.', format: 'wharf-cidr-list', default: [] },
  },
  dispatch: {
    batch_size: { doc: 'Deliveries one fetch asks for at most, rounded up to whole jobs (a job carries up to 8 deliveries of one endpoint).', format: 'wharf-int', min: 1, max: 10_000, default: 100 },
    concurrency: { doc: 'Deprecated and ignored: deliveries are sent and recorded one by one, up to max_in_flight at once.', format: 'wharf-int', min: 1, max: 1000, default: 2 },
    max_in_flight: { doc: 'Deliveries one process sends at once (fetched or handed over from its ingest, and not yet recorded); a fetch of whole jobs can pass it by up to 7.', format: 'wharf-int', min: 1, max: 100_000, default: 500 },
    endpoint_concurrency: {
      doc:
        'Deliveries of one endpoint in flight at once: an endpoint that hangs holds at most this many slots of a process. Queued ' +
        'deliveries keep to it across every replica; a replica also sends the first attempts it ingested itself within its own count.',
      format: 'wharf-int',
      min: 1,
      max: 100_000,
      default: 128,
    },
    project_concurrency: {
      doc:
        'Deliveries of one project in flight at once in one process; more wait in line for a free share (up to a quarter of it ' +
        'waiting, up to a second), then a second as the same attempt. Keeps one tenant from taking every slot.',
      format: 'wharf-int',
      min: 1,
      max: 100_000,
      default: 250,
    },
    polling_interval: { doc: 'Seconds between polls for due deliveries.', format: 'wharf-number', min: 0.5, max: 3600, default: 0.5 },
    linger_ms: {
      doc: 'Milliseconds a new-job notification waits for others before the fetch, while they come at least two per linger_ms: one fetch for several. 0: never wait.',
      format: 'wharf-int',
      min: 0,
      max: 1000,
      default: 5,
    },
    record_linger_ms: {
      doc:
        'Milliseconds an endpoint\'s answer waits for others before its outcome is recorded, while they come at least two per ' +
        'record_linger_ms: one transaction for several. The webhook has gone out already, so this holds back only when its ' +
        'attempt shows. A pg-boss job\'s outcomes wait only linger_ms (the job ends with them). 0: never wait.',
      format: 'wharf-int',
      min: 0,
      max: 1000,
      default: 25,
    },
    max_response_bytes: { doc: 'Bytes of each response body kept with its attempt.', format: 'wharf-int', min: 0, max: 10_485_760, default: 4096 },
    shutdown_timeout: { doc: 'Seconds a stop waits for in-flight deliveries.', format: 'wharf-number', min: 0, max: 3600, default: 30 },
  },
  ingest: {
    reload_interval: { doc: 'Seconds between checks for sources added, changed or removed (by the API of another replica, or the YAML).', format: 'wharf-number', min: 0.1, max: 3600, default: 2 },
    shutdown_timeout: { doc: 'Seconds a stop waits for broker messages in flight to be stored and acked.', format: 'wharf-number', min: 0, max: 3600, default: 30 },
    linger_ms: {
      doc:
        'Milliseconds an event posted to the REST API may wait for others before its transaction starts, while they arrive ' +
        'at least two per linger_ms (about 400/s at 5); a quieter gateway commits each at once. 0: never wait.',
      format: 'wharf-int',
      min: 0,
      max: 1000,
      default: 5,
    },
    max_json_depth: {
      doc: "Deepest nesting of objects and arrays an event's data may have; deeper is refused at every ingress (400, or a dead letter).",
      format: 'wharf-int',
      min: 1,
      max: MAX_JSON_DEPTH_LIMIT,
      default: DEFAULT_MAX_JSON_DEPTH,
    },
    api_broker_types: {
      doc: "Broker types (kafka, sqs, pubsub, rabbitmq) a project's API key may create sources of; [] (the default) allows HTTP sources only, and broker sources come from this file.",
      format: 'wharf-broker-types',
      default: [],
    },
  },
  portal: {
    public_url: { doc: 'Base URL customers reach Wharf at, used in portal links (e.g. https://hooks.example.com); "" = the address the API listens on.', format: 'wharf-public-url', default: '', env: 'WHARF_PORTAL_URL' },
    session_minutes: { doc: 'Minutes a portal session lasts after a link is opened.', format: 'wharf-int', min: 1, max: 10_080, default: 60 },
    frame_ancestors: { doc: "CSP frame-ancestors of portal pages: 'none', or the origins allowed to embed them (e.g. https://dashboard.example.com).", format: 'wharf-csp-sources', default: "'none'" },
  },
  dashboard: {
    session_seconds: {
      doc: 'Seconds a dashboard sign-in lasts (28800 = 8 hours); the session then ends and the operator signs in again.',
      format: 'wharf-int',
      min: 1,
      max: 2_592_000,
      default: 28_800,
      env: 'WHARF_DASHBOARD_SESSION_SECONDS',
    },
  },
  retention: {
    // `defaults`, not `default`: convict reads a `default` key as the value of a setting.
    defaults: Object.fromEntries(
      RETENTION_KINDS.map((k) => [k, { doc: `How long ${k.replace('_', ' ')} are kept in projects that set no retention.${k} of their own: an age such as 30d, 12h or 90m, or off (forever).`, format: 'wharf-retention-age', default: 'off' }]),
    ) as Record<RetentionKind, { doc: string; format: string; default: string }>,
    interval: { doc: 'Seconds between retention purges (one replica purges at a time).', format: 'wharf-number', min: 1, max: 86_400, default: 600 },
    batch_size: { doc: 'Rows one purge statement deletes at most (events: events, with their deliveries and attempts).', format: 'wharf-int', min: 1, max: 100_000, default: 1000 },
    batch_pause: { doc: 'Seconds a purge sleeps between batches, so it never crowds out dispatch.', format: 'wharf-number', min: 0, max: 60, default: 0.05 },
  },
  projects: {
    doc: 'Projects and their endpoints, reconciled into the database at start.',
    format: 'wharf-projects',
    default: [],
    // Holds API keys and endpoint secrets; keeps convict from ever printing them.
    sensitive: true,
  },
} satisfies convict.Schema<WharfConfig>;

// ---- projects: convict cannot describe a list of objects, so they are checked and normalised here.

const PROJECT_KEYS = ['id', 'name', 'type', 'api_keys', 'signature', 'retry', 'breaker', 'meta_events', 'endpoints', 'sources', 'subscriptions', 'retention'];
const META_EVENT_KEYS = ['url', 'secret', 'event_types'];
const SIGNATURE_KEYS = ['scheme', 'header', 'hash', 'encoding'];
const RETRY_KEYS = ['strategy', 'duration', 'retry_count'];
const ENDPOINT_KEYS = ['id', ...ENDPOINT_SETTINGS];

/**
 * Checks the `projects` setting and fills in every default. `issues` paths continue `projects`
 * (`[0].endpoints[1].http_timeout`); the projects are only meaningful when `issues` is empty.
 */
export function normalizeProjects(value: unknown): { projects: ProjectConfig[]; issues: SettingIssue[] } {
  const r = new Reader();
  if (!Array.isArray(value)) {
    r.bad('', `must be a list of projects${got(value)}`);
    return { projects: [], issues: r.issues };
  }
  const projectIds = new Map<string, string>();
  const apiKeys = new Map<string, string>();
  // An ingest URL belongs to one source, whatever its project.
  const maskIds = new Map<string, string>();
  const projects = value.flatMap((raw, pi): ProjectConfig[] => {
    const at = `[${pi}]`;
    const p = r.fields(raw, at, PROJECT_KEYS);
    if (p === null) return [];
    const id = r.id(p.id, `${at}.id`);
    const first = projectIds.get(id);
    if (id && first) r.bad(`${at}.id`, `must be unique among projects (got ${JSON.stringify(id)}, already used by projects${first})`);
    else projectIds.set(id, at);

    const name = r.text(p.name, `${at}.name`, id, { max: 200 });
    const type = r.choice(p.type, `${at}.type`, ['outgoing', 'incoming'], 'outgoing');

    const keys: string[] = [];
    r.list(p.api_keys, `${at}.api_keys`, 'strings').forEach((key, ki) => {
      const path = `${at}.api_keys[${ki}]`;
      if (typeof key !== 'string') return r.bad(path, `must be a string${kind(key)}`);
      if (key === '') return;
      const short = shortSecretProblem(key, MIN_API_KEY_LENGTH);
      if (short) return r.bad(path, `${short}; leave it empty and Wharf generates one`);
      const other = apiKeys.get(key);
      // A key opens exactly one project, so it cannot be shared; the message never shows the key.
      if (other) return r.bad(path, `must be unique (the same key is at projects${other})`);
      apiKeys.set(key, path);
      keys.push(key);
    });

    const signature = readSignature(r, p.signature, `${at}.signature`);
    const retryIn = (absent(p.retry) ? null : r.fields(p.retry, `${at}.retry`, RETRY_KEYS)) ?? {};
    const retry: RetrySettings = {
      strategy: r.choice(retryIn.strategy, `${at}.retry.strategy`, ['linear', 'exponential'], DEFAULT_RETRY.strategy),
      duration: r.integer(retryIn.duration, `${at}.retry.duration`, 1, 86_400, DEFAULT_RETRY.duration),
      retry_count: r.integer(retryIn.retry_count, `${at}.retry.retry_count`, 0, 50, DEFAULT_RETRY.retry_count),
    };

    const endpointIds = new Map<string, string>();
    const endpoints = r.list(p.endpoints, `${at}.endpoints`, 'endpoints').flatMap((rawEndpoint, ei): EndpointConfig[] => {
      const eat = `${at}.endpoints[${ei}]`;
      const e = r.fields(rawEndpoint, eat, ENDPOINT_KEYS);
      if (e === null) return [];
      const endpointId = r.id(e.id, `${eat}.id`);
      uniqueInProject(r, endpointIds, endpointId, eat);
      // Convoy's answer-and-API fields mean nothing in a file that declares the endpoint's state.
      for (const k of ['is_disabled', 'events'] as const) {
        if (k in e) r.bad(`${eat}.${k}`, k === 'is_disabled' ? 'is for the API (Convoy\'s); in this file, leave the endpoint out, or pause it through the API' : 'is a count Wharf keeps, not a setting');
      }
      const { secret, credentials, is_disabled: _disabled, ...settings } = readEndpointSettings(r, e, eat, signature.scheme);
      if (!('url' in e)) r.url(undefined, `${eat}.url`);
      const fields = { ...ENDPOINT_DEFAULTS, name: endpointId, url: '', ...settings };
      return [{ ...fields, id: endpointId, secret: secret ?? null, credentials: credentials ?? NO_CREDENTIALS }];
    });

    const sourceIds = new Map<string, string>();
    const sources = r.list(p.sources, `${at}.sources`, 'sources').flatMap((rawSource, si): SourceDefinition[] => {
      const sat = `${at}.sources[${si}]`;
      const source = readSource(r, rawSource, sat);
      if (source === null) return [];
      uniqueInProject(r, sourceIds, source.id, sat);
      const mask = source.type === 'http' ? source.broker.mask_id : '';
      if (typeof mask === 'string' && mask !== '') {
        const other = maskIds.get(mask);
        // The message never shows the mask: it is what keeps the URL unguessable.
        if (other) r.bad(`${sat}.http.mask_id`, `must be unique (the same mask_id is at projects${other}.http.mask_id)`);
        else maskIds.set(mask, sat);
      }
      return [source];
    });

    const subscriptionIds = new Map<string, string>();
    const subscriptions = r.list(p.subscriptions, `${at}.subscriptions`, 'subscriptions').flatMap((raw, si): SubscriptionDefinition[] => {
      const sat = `${at}.subscriptions[${si}]`;
      const sub = readSubscription(r, raw, sat);
      if (sub === null) return [];
      // Declared subscriptions keep the id given, so a change in the file updates the same one.
      if (!sub.id) r.bad(`${sat}.id`, 'is required for a subscription declared here');
      uniqueInProject(r, subscriptionIds, sub.id, sat);
      return [sub];
    });

    const breaker = parseBreaker(r, p.breaker, `${at}.breaker`);
    const meta_events = readMetaEvents(r, p.meta_events, `${at}.meta_events`, signature);
    const retention = readRetention(r, p.retention, `${at}.retention`);
    const typeEnforced = !absent(p.type);
    // A project that names its type takes only that kind of traffic (as Convoy's projects do).
    if (typeEnforced) {
      sources.forEach((s, i) => {
        const problem = trafficProblem({ id, type, type_enforced: true }, s.type === 'http' ? 'incoming' : 'outgoing');
        if (problem) r.bad(`${at}.sources[${i}].type`, problem);
      });
    }
    return [{ id, name, type, type_enforced: typeEnforced, api_keys: keys, signature, retry, breaker, meta_events, endpoints, sources, subscriptions, ...(retention ? { retention } : {}) }];
  });
  return { projects, issues: r.issues };
}

/** Notes `id` as declared at `at`; a second declaration is an issue naming the first. */
function uniqueInProject(r: Reader, seen: Map<string, string>, id: string, at: string): void {
  const first = seen.get(id);
  if (id && first) r.bad(`${at}.id`, `must be unique within the project (got ${JSON.stringify(id)}, already used by projects${first})`);
  else seen.set(id, at);
}

// Go's duration units (Convoy writes its retention policy as "720h") plus days; largest first.
const AGE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const MIN_AGE_SECONDS = 60;
const MAX_AGE_SECONDS = 36_500 * 86_400;

/** Seconds in a retention age (`30d`, `720h`, `1h30m`), null for `off`; undefined when unreadable. */
export function retentionAgeSeconds(value: string): number | null | undefined {
  if (value === 'off') return null;
  const m = AGE.exec(value);
  if (!m || value === '') return undefined;
  const [d, h, min, s] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number];
  return ((d * 24 + h) * 60 + min) * 60 + s;
}

/** Why `value` is no retention age, or null. */
export function retentionAgeProblem(value: unknown): string | null {
  const expected = 'must be an age such as 30d, 12h, 90m or 720h (at least 1m, at most 36500d), or off to keep forever';
  if (typeof value !== 'string') return expected + got(value);
  const seconds = retentionAgeSeconds(value);
  if (seconds === undefined || (seconds !== null && (seconds < MIN_AGE_SECONDS || seconds > MAX_AGE_SECONDS))) return expected + got(value);
  return null;
}

/**
 * A project's `retention` block: only the kinds it sets (the rest follow `retention.defaults`).
 * The config file's `projects[].retention` and the API's `config.retention` (api/project-routes.ts).
 */
export function readRetention(r: Reader, value: unknown, at: string): RetentionAges | null {
  if (absent(value)) return null;
  const block = r.fields(value, at, RETENTION_KINDS);
  if (block === null) return null;
  const ages: RetentionAges = {};
  for (const k of RETENTION_KINDS) {
    if (absent(block[k])) continue;
    const problem = retentionAgeProblem(block[k]);
    if (problem) r.bad(`${at}.${k}`, problem);
    else ages[k] = block[k] as string;
  }
  return ages;
}

function readMetaEvents(r: Reader, value: unknown, at: string, signature: SignatureSettings): ProjectConfig['meta_events'] {
  if (absent(value)) return null;
  const m = r.fields(value, at, META_EVENT_KEYS);
  if (m === null) return null;
  const url = r.url(m.url, `${at}.url`, 'the http or https URL alerts are sent to');
  const secret = r.text(m.secret, `${at}.secret`, '', { max: 1024, secret: true });
  if (secret === '') r.bad(`${at}.secret`, 'is required: alerts are always signed');
  else {
    const why = newSecretProblem(signature.scheme, secret);
    if (why) r.bad(`${at}.secret`, `${why} for the ${signature.scheme} scheme`);
  }
  const types = absent(m.event_types) ? [...ALERT_TYPES] : r.list(m.event_types, `${at}.event_types`, 'alert types').flatMap((t, i) => {
    if (ALERT_TYPES.includes(t as AlertType)) return [t as AlertType];
    r.bad(`${at}.event_types[${i}]`, `must be one of ${ALERT_TYPES.join(', ')}${got(t)}`);
    return [];
  });
  return { url, secret, event_types: types };
}

function readSignature(r: Reader, value: unknown, at: string): SignatureSettings {
  const s = (absent(value) ? null : r.fields(value, at, SIGNATURE_KEYS)) ?? {};
  const scheme = r.choice(s.scheme, `${at}.scheme`, ['convoy', 'standard-webhooks'], DEFAULT_SIGNATURE.scheme);
  if (scheme === 'standard-webhooks') {
    // Standard Webhooks fixes its headers, hash and encoding; a different value here would be
    // silently ignored by the signer, so it is refused instead.
    if (!absent(s.header)) r.bad(`${at}.header`, 'must be left out: standard-webhooks always sends webhook-id, webhook-timestamp and webhook-signature');
    if (!absent(s.hash) && s.hash !== 'SHA256') r.bad(`${at}.hash`, `must be SHA256 or left out for standard-webhooks${got(s.hash)}`);
    if (!absent(s.encoding) && s.encoding !== 'base64') r.bad(`${at}.encoding`, `must be base64 or left out for standard-webhooks${got(s.encoding)}`);
    return { scheme, header: DEFAULT_SIGNATURE.header, hash: 'SHA256', encoding: 'base64' };
  }
  let header = r.text(s.header, `${at}.header`, DEFAULT_SIGNATURE.header, { max: 200 });
  if (!TOKEN.test(header)) {
    r.bad(`${at}.header`, `must be an HTTP header name${got(header)}`);
    header = DEFAULT_SIGNATURE.header;
  } else if (RESERVED_HEADERS.has(header.toLowerCase()) || header.toLowerCase().startsWith('x-wharf-')) {
    r.bad(`${at}.header`, `must not be a header Wharf sets itself${got(header)}`);
  }
  return {
    scheme,
    header,
    hash: r.choice(s.hash, `${at}.hash`, ['SHA256', 'SHA512'], DEFAULT_SIGNATURE.hash),
    encoding: r.choice(s.encoding, `${at}.encoding`, ['hex', 'base64'], DEFAULT_SIGNATURE.encoding),
  };
}
