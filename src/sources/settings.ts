/**
 * A source's definition, as YAML (`projects[].sources[]`) and the sources API give it: the parts
 * every source has (format, event type, headers, size limit) and its broker's own block, which the
 * broker's connector module checks.
 */
import { BROKER_TYPES, connectorFor, type BrokerType } from '../../connectors/index.ts';
import { ID, Reader, TOKEN, absent, got, type SettingIssue } from '../core/settings.ts';
import { httpSecretKeys, parseHttpSource } from './http-settings.ts';
import { MAX_EVENT_TYPE_LENGTH, eventTypeProblem } from '../ingest/limits.ts';
import { redactKeys, restoreRedacted } from '../core/redact.ts';

export type SourceFormat = 'envelope' | 'raw';

/** Broker sources consume a broker; `http` sources take requests at `/ingest/{mask_id}`. */
export type SourceType = BrokerType | 'http';
export const SOURCE_TYPES: readonly SourceType[] = [...BROKER_TYPES, 'http'];

export interface SourceDefinition {
  id: string;
  name: string;
  type: SourceType;
  /** `envelope`: Convoy's JSON envelope. `raw`: the whole body is `data`, routed by subscriptions. */
  format: SourceFormat;
  /** raw: the event type when `event_type_header` is unset or absent from a message. */
  event_type: string | null;
  /** raw: the broker header/attribute (lower-case) that carries the event type. */
  event_type_header: string | null;
  /** Broker headers forwarded to endpoints as custom headers: names, or '*' for all. */
  forward_headers: string[] | '*';
  /** Larger messages are dead-lettered. */
  max_body_bytes: number;
  /** The type's block (`kafka:`, …, `http:`), as its parser returned it. */
  broker: Record<string, unknown>;
}

const DEFAULT_MAX_BODY_BYTES = 1_048_576;
const COMMON_KEYS = ['id', 'name', 'type', 'format', 'event_type', 'event_type_header', 'forward_headers', 'max_body_bytes'];
const KEYS = [...COMMON_KEYS, ...SOURCE_TYPES];

/** Checks one source block; problems go to `r` with paths under `at`. */
export function readSource(r: Reader, value: unknown, at: string): SourceDefinition | null {
  const s = r.fields(value, at, KEYS);
  if (s === null) return null;
  const name = r.text(s.name, `${at}.name`, '', { max: 200 });
  if (absent(s.name)) r.bad(`${at}.name`, 'is required');
  // The id defaults to the name, so a YAML source needs only one of them when the name is id-like.
  let id = '';
  if (!absent(s.id)) id = r.id(s.id, `${at}.id`);
  else if (ID.test(name)) id = name;
  else if (name) r.bad(`${at}.id`, `is required when name is not 1-64 letters, digits, "_", "." or "-"${got(name)}`);

  let type: SourceType | null = null;
  if (absent(s.type)) r.bad(`${at}.type`, `is required: one of ${SOURCE_TYPES.join(', ')}`);
  else if (typeof s.type === 'string' && (SOURCE_TYPES as readonly string[]).includes(s.type)) type = s.type as SourceType;
  else r.bad(`${at}.type`, `must be one of ${SOURCE_TYPES.join(', ')}${got(s.type)}`);

  // An HTTP source stores the provider's body as it came: always raw.
  if (type === 'http' && !absent(s.format) && s.format !== 'raw') r.bad(`${at}.format`, `must be raw or left out for an http source${got(s.format)}`);
  if (type === 'http' && !absent(s.event_type_header)) r.bad(`${at}.event_type_header`, 'does not apply to an http source: use http.event_type_location');
  const format = r.choice(s.format, `${at}.format`, ['envelope', 'raw'] as const, type === 'http' ? 'raw' : 'envelope');
  const eventType = r.optional(s.event_type, `${at}.event_type`, MAX_EVENT_TYPE_LENGTH);
  // Every message or request without a type of its own gets this one: refused here, once, rather
  // than on each of them.
  const typeProblem = eventType === null ? null : eventTypeProblem(eventType);
  if (typeProblem !== null) r.bad(`${at}.event_type`, typeProblem);
  const typeHeader = header(r, s.event_type_header, `${at}.event_type_header`);
  if (format === 'envelope') {
    if (eventType !== null) r.bad(`${at}.event_type`, 'applies to format raw only (an envelope carries its own event_type)');
    if (typeHeader !== null) r.bad(`${at}.event_type_header`, 'applies to format raw only (an envelope carries its own event_type)');
  } else if (eventType === null && typeHeader === null && type !== 'http') {
    r.bad(`${at}.event_type`, 'is required for format raw unless event_type_header names where each message carries it');
  }

  let forward: string[] | '*' = [];
  if (s.forward_headers === '*' || s.forward_headers === true) forward = '*';
  else if (s.forward_headers !== false) {
    forward = r.list(s.forward_headers, `${at}.forward_headers`, 'header names, or "*"').flatMap((h, i) => {
      const name = header(r, h, `${at}.forward_headers[${i}]`);
      return name === null ? [] : [name];
    });
  }
  const maxBody = r.integer(s.max_body_bytes, `${at}.max_body_bytes`, 1, 64 * 1_048_576, DEFAULT_MAX_BODY_BYTES);

  for (const other of SOURCE_TYPES) {
    if (other !== type && !absent(s[other])) r.bad(`${at}.${other}`, `does not belong to a source of type ${type ?? '(unset)'}`);
  }
  let broker: Record<string, unknown> = {};
  if (type !== null) {
    if (absent(s[type])) r.bad(`${at}.${type}`, `is required: the ${type} settings of this source`);
    else if (type === 'http') {
      broker = parseHttpSource(r, s.http, `${at}.http`) as unknown as Record<string, unknown>;
      const location = (broker as { event_type_location: unknown }).event_type_location;
      if (eventType === null && location === null) {
        r.bad(`${at}.event_type`, 'is required for an http source unless http.event_type_location says where each request carries it');
      }
    } else broker = connectorFor(type).parse(r, s[type], `${at}.${type}`) as Record<string, unknown>;
  }
  if (type === null) return null;
  return {
    id,
    name,
    type,
    format,
    event_type: eventType,
    event_type_header: typeHeader,
    forward_headers: forward,
    max_body_bytes: maxBody,
    broker,
  };
}

function header(r: Reader, value: unknown, path: string): string | null {
  const text = r.optional(value, path, 200);
  if (text === null) return null;
  if (!TOKEN.test(text)) {
    r.bad(path, `must be a header name${got(text)}`);
    return null;
  }
  return text.toLowerCase();
}

/** Checks a definition given as JSON (API) and returns it, or the issues with their paths. */
export function parseSource(value: unknown): { source: SourceDefinition | null; issues: SettingIssue[] } {
  const r = new Reader();
  const source = readSource(r, value, 'source');
  return { source: r.issues.length === 0 ? source : null, issues: r.issues };
}

type Mapping = Record<string, unknown>;

/** Dotted keys of a source's block that hold credentials. */
export function sourceSecretKeys(type: SourceType, block: Mapping): readonly string[] {
  return type === 'http' ? httpSecretKeys(block as { verifier?: { type?: unknown } }) : connectorFor(type).secretKeys;
}

/** The definition as the API shows it: credentials replaced by REDACTED. */
export function redactSource(source: SourceDefinition): SourceDefinition {
  return { ...source, broker: redactKeys(source.broker, sourceSecretKeys(source.type, source.broker)) };
}

/**
 * An update's block, where every secret sent back as REDACTED keeps the stored value, so a client
 * can PUT what it got from GET without knowing the credentials.
 */
export function keepRedactedSecrets(type: SourceType, next: unknown, stored: Mapping): unknown {
  return restoreRedacted(next, stored, sourceSecretKeys(type, stored));
}

/** The hosts a broker source dials, each with the key that names it (`kafka.brokers[0]`); none for an HTTP source. */
export function brokerHosts(source: SourceDefinition): { host: string; key: string }[] {
  if (source.type === 'http') return [];
  const module = connectorFor(source.type as BrokerType);
  return (module.hosts?.(source.broker) ?? []).map((h) => ({ host: h.host, key: `${source.type}.${h.key}` }));
}

/** What a broker source reads, as addresses one project may hold (none for an HTTP source). */
export function brokerAddresses(source: SourceDefinition): string[] {
  return source.type === 'http' ? [] : connectorFor(source.type as BrokerType).addresses(source.broker);
}
