import { describe, expect, it } from 'vitest';
import { prepareMessage, type BrokerSource } from '../../../src/ingest/broker-sink.ts';
import { forwardedHeaders } from '../../../src/ingest/normalize.ts';
import { DEFAULT_MAX_JSON_DEPTH } from '../../../src/ingest/limits.ts';

const LIMITS = { maxJsonDepth: DEFAULT_MAX_JSON_DEPTH };

const source = (over: Partial<BrokerSource['definition']> = {}): BrokerSource => ({
  project_id: 'p',
  definition: {
    id: 's',
    name: 's',
    type: 'kafka',
    format: 'envelope',
    event_type: null,
    event_type_header: null,
    forward_headers: [],
    max_body_bytes: 100,
    broker: {},
    ...over,
  },
});
const msg = (body: string, headers: Record<string, string> = {}) => ({ id: 'topic/0/42', body: Buffer.from(body), headers });

describe('prepareMessage', () => {
  it('reads the envelope and keys the event by the broker identity when it has no idempotency_key', () => {
    const r = prepareMessage(source(), msg('{"endpoint_id":"e","event_type":"t","data":{"a":1}}'), LIMITS);
    expect(r).toEqual({
      ok: true,
      input: {
        project_id: 'p',
        source_id: 's',
        message_type: 'single',
        endpoint_id: 'e',
        owner_id: null,
        event_type: 't',
        data: '{"a":1}',
        custom_headers: {},
        idempotency_key: 's:topic/0/42',
        headers: {},
      },
    });
  });

  it.each([
    ['{"owner_id":"o","event_type":"t","data":1}', {}, 'fanout'],
    ['{"event_type":"t","data":1}', {}, 'broadcast'],
    ['{"owner_id":"o","event_type":"t","data":1}', { 'x-convoy-message-type': 'broadcast' }, 'broadcast'],
    ['{"owner_id":"o","event_type":"t","data":1,"custom_headers":{"X-Convoy-Message-Type":"fanout"}}', {}, 'fanout'],
  ])('routing of %s with headers %j is %s', (body, headers, type) => {
    const r = prepareMessage(source(), msg(body, headers), LIMITS);
    expect(r.ok && r.input.message_type).toBe(type);
    // The routing header is not sent on.
    expect(r.ok && Object.keys(r.input.custom_headers)).toEqual([]);
  });

  it.each([
    ['x'.repeat(101), 'WHARF_ERR_TOO_LARGE', "body is 101 bytes, over the source's max_body_bytes (100)"],
    ['{"event_type":', 'WHARF_ERR_NOT_JSON', 'body is not JSON'],
    ['[1]', 'WHARF_ERR_INVALID', 'body: must be a JSON object'],
    ['{"data":1}', 'WHARF_ERR_INVALID', 'event_type: is required'],
    ['{"event_type":"t"}', 'WHARF_ERR_INVALID', 'data: is required'],
    ['{"event_type":"t","data":1,"custom_headers":{"Host":"x"}}', 'WHARF_ERR_INVALID', 'custom_headers.Host'],
    ['{"event_type":"t","data":1,"custom_headers":{"x-convoy-message-type":"sideways"}}', 'WHARF_ERR_INVALID', 'x-convoy-message-type: must be single, fanout or broadcast'],
    ['{"event_type":"t","data":1,"endpoint_id":7}', 'WHARF_ERR_INVALID', 'endpoint_id: must be a string'],
    // Issue 12: what could not be delivered or read back is a dead letter with the reason.
    ['{"event_type":"a\\r\\nx-injected: 1","data":1}', 'WHARF_ERR_INVALID', 'event_type: must not contain control characters'],
    ['{"event_type":"caf\u00e9","data":1}', 'WHARF_ERR_INVALID', 'event_type: must be printable ASCII'],
    ['{"event_type":"t","data":1,"idempotency_key":"k\\u0000"}', 'WHARF_ERR_INVALID', 'idempotency_key: must not contain control characters'],
    [`{"event_type":"t","data":${'['.repeat(200)}${']'.repeat(200)}}`, 'WHARF_ERR_INVALID', 'data: nests objects and arrays deeper than 128 levels (ingest.max_json_depth)'],
  ])('refuses %s as %s', (body, code, reason) => {
    const r = prepareMessage(source({ max_body_bytes: Math.max(100, body.length < 200 ? 100 : 10_000) }), msg(body), LIMITS);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe(code);
    expect(!r.ok && r.reason).toContain(reason);
  });

  it('ignores envelope fields it does not know (a producer may add its own)', () => {
    expect(prepareMessage(source(), msg('{"event_type":"t","data":1,"sent_at":"now"}'), LIMITS).ok).toBe(true);
  });

  it('raw: keeps the body byte for byte, takes the type from the header or the default', () => {
    const raw = source({ format: 'raw', event_type: 'fallback', event_type_header: 'x-type' });
    const body = '{ "spaced" :  true }';
    const typed = prepareMessage(raw, msg(body, { 'x-type': 'typed' }), LIMITS);
    expect(typed.ok && [typed.input.event_type, typed.input.data, typed.input.message_type]).toEqual(['typed', body, 'broadcast']);
    const plain = prepareMessage(raw, msg(body), LIMITS);
    expect(plain.ok && plain.input.event_type).toBe('fallback');
    const none = prepareMessage(source({ format: 'raw', event_type: null, event_type_header: 'x-type' }), msg(body), LIMITS);
    expect(!none.ok && none.reason).toContain('has no x-type header');
  });

  it('raw: refuses an event type header that could not be sent on, and a body nested too deep', () => {
    const raw = source({ format: 'raw', event_type: 'fallback', event_type_header: 'x-type', max_body_bytes: 10_000 });
    const bad = prepareMessage(raw, msg('{}', { 'x-type': 'a\tb' }), LIMITS);
    expect(!bad.ok && bad.reason).toBe('x-type header: must not contain control characters (line breaks, NUL, tabs)');
    const deep = prepareMessage(raw, msg(`${'{"a":'.repeat(129)}1${'}'.repeat(129)}`), LIMITS);
    expect(!deep.ok && deep.reason).toBe('body: nests objects and arrays deeper than 128 levels (ingest.max_json_depth)');
    // A bracket inside a string is not nesting.
    expect(prepareMessage(raw, msg(JSON.stringify({ s: '['.repeat(500) })), LIMITS).ok).toBe(true);
  });

  it('stores NUL in header values as U+FFFD (jsonb cannot hold NUL)', () => {
    const r = prepareMessage(source(), msg('{"event_type":"t","data":1}', { 'x-a': 'a\u0000b' }), LIMITS);
    expect(r.ok && r.input.headers).toEqual({ 'x-a': 'a\uFFFDb' });
  });
});

describe('forwardedHeaders', () => {
  const headers = { 'x-trace': 't', 'x-other': 'o', host: 'h', 'x-wharf-event-id': 'i', 'x-convoy-message-type': 'single', 'x-bad': 'a\r\nb' };
  it('forwards the named ones', () => {
    expect(forwardedHeaders(headers, ['X-Trace'])).toEqual({ 'x-trace': 't' });
  });
  it("'*' forwards all but Wharf's, routing, reserved and unsendable ones", () => {
    expect(forwardedHeaders(headers, '*')).toEqual({ 'x-trace': 't', 'x-other': 'o' });
  });
});
