import { describe, expect, it } from 'vitest';
import { connector, decodeHeaders, toBrokerMessage } from '../../../connectors/kafka.ts';
import { settingsOf } from './settings.ts';

const AT = 'projects[0].sources[1].kafka';
const MINIMAL = { brokers: ['kafka:9092'], topic: 'orders', consumer_group: 'wharf' };

const { parse, issue } = settingsOf(connector, AT);

describe('kafka parse', () => {
  it('fills the defaults and reads topic as topics', () => {
    const { config, issues } = parse(MINIMAL);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      brokers: ['kafka:9092'],
      topics: ['orders'],
      consumer_group: 'wharf',
      client_id: 'wharf',
      from_beginning: false,
      sasl: null,
      tls: null,
      workers: 1,
      max_in_flight: 500,
      session_timeout: 30,
      fetch_max_wait_ms: 500,
    });
  });

  it('reads every setting, and what it returns parses again to itself', () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const block = {
      brokers: ['a.example:9092', '10.0.0.2:9093'],
      topics: ['orders', 'orders.v2', 'orders'],
      consumer_group: 'wharf-orders',
      client_id: 'wharf-1',
      from_beginning: 'true',
      sasl: { mechanism: 'scram-sha-512', username: 'svc', password: 'hunter2' },
      tls: { ca, reject_unauthorized: false, servername: 'kafka.internal' },
      workers: '4',
      max_in_flight: 50,
      session_timeout: 10,
      fetch_max_wait_ms: '100',
    };
    const { config, issues } = parse(block);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      brokers: ['a.example:9092', '10.0.0.2:9093'],
      topics: ['orders', 'orders.v2'],
      consumer_group: 'wharf-orders',
      client_id: 'wharf-1',
      from_beginning: true,
      sasl: { mechanism: 'scram-sha-512', username: 'svc', password: 'hunter2' },
      tls: { ca, reject_unauthorized: false, servername: 'kafka.internal' },
      workers: 4,
      max_in_flight: 50,
      session_timeout: 10,
      fetch_max_wait_ms: 100,
    });
    expect(parse(config)).toEqual({ config, issues: [] });
    expect(parse(parse(MINIMAL).config)).toEqual(parse(MINIMAL));
  });

  it('takes brokers as one comma-separated string', () => {
    expect(parse({ ...MINIMAL, brokers: 'a:1, b:2' }).config.brokers).toEqual(['a:1', 'b:2']);
  });

  it('reads tls: true as verified TLS with the default roots', () => {
    expect(parse({ ...MINIMAL, tls: true }).config.tls).toEqual({ ca: null, reject_unauthorized: true, servername: null });
    expect(parse({ ...MINIMAL, tls: false }).config.tls).toBeNull();
  });

  it('names each missing required key', () => {
    const { issues } = parse({});
    expect(issues).toEqual([
      { path: `${AT}.consumer_group`, message: 'is required: the consumer group whose committed offsets Wharf resumes from' },
      { path: `${AT}.brokers`, message: 'is required: a list of Kafka brokers as host:port' },
      { path: `${AT}.topic`, message: 'is required: the topic to consume (or topics: a list of them)' },
    ]);
  });

  it('refuses a block that is not a mapping', () => {
    expect(issue('kafka:9092')).toEqual({ path: AT, message: 'must be a mapping (got "kafka:9092")' });
  });

  it.each([
    ['kafka', 'must be host:port with a port from 1 to 65535 (IPv6 literals are not supported) (got "kafka")'],
    ['kafka:0', 'must be host:port with a port from 1 to 65535 (IPv6 literals are not supported) (got "kafka:0")'],
    ['kafka:70000', 'must be host:port with a port from 1 to 65535 (IPv6 literals are not supported) (got "kafka:70000")'],
    ['[::1]:9092', 'must be host:port with a port from 1 to 65535 (IPv6 literals are not supported) (got "[::1]:9092")'],
    ['kafka :9092', 'must be host:port with a port from 1 to 65535 (IPv6 literals are not supported) (got "kafka :9092")'],
  ])('refuses the broker %j', (broker, message) => {
    expect(issue({ ...MINIMAL, brokers: ['ok:1', broker] })).toEqual({ path: `${AT}.brokers[1]`, message });
  });

  it('refuses an empty broker list and a broker that is not a string', () => {
    expect(issue({ ...MINIMAL, brokers: [] })).toEqual({ path: `${AT}.brokers`, message: 'must list at least one broker as host:port' });
    expect(issue({ ...MINIMAL, brokers: [9092] }).path).toBe(`${AT}.brokers[0]`);
    expect(issue({ ...MINIMAL, brokers: { a: 1 } })).toEqual({ path: `${AT}.brokers`, message: 'must be a list of host:port (got a mapping)' });
  });

  it('wants exactly one of topic and topics, with valid names', () => {
    expect(issue({ ...MINIMAL, topics: ['b'] })).toEqual({ path: `${AT}.topics`, message: 'give either topic or topics, not both' });
    const bad = 'must be a Kafka topic name: 1-249 letters, digits, ".", "_" or "-"';
    expect(issue({ ...MINIMAL, topic: 'a b' })).toEqual({ path: `${AT}.topic`, message: `${bad} (got "a b")` });
    expect(issue({ ...MINIMAL, topic: '..' })).toEqual({ path: `${AT}.topic`, message: `${bad} (got "..")` });
    expect(issue({ ...MINIMAL, topic: undefined, topics: ['ok', 'x'.repeat(250)] }).path).toBe(`${AT}.topics[1]`);
    expect(issue({ ...MINIMAL, topic: undefined, topics: [] })).toEqual({ path: `${AT}.topics`, message: 'must list at least one topic' });
  });

  it.each([
    ['workers', 0, 'must be an integer from 1 to 64 (got 0)'],
    ['workers', 65, 'must be an integer from 1 to 64 (got 65)'],
    ['max_in_flight', 0, 'must be an integer from 1 to 10000 (got 0)'],
    ['max_in_flight', 1.5, 'must be an integer from 1 to 10000 (got 1.5)'],
    ['session_timeout', 5, 'must be an integer from 6 to 1800 (got 5)'],
    ['fetch_max_wait_ms', 5, 'must be an integer from 10 to 10000 (got 5)'],
    ['from_beginning', 'yes', 'must be true or false (got "yes")'],
    ['consumer_group', '', 'must not be empty'],
    ['client_id', 42, 'must be a string (got 42)'],
  ])('checks %s', (key, value, message) => {
    expect(issue({ ...MINIMAL, [key]: value })).toEqual({ path: `${AT}.${key}`, message });
  });

  it('checks the sasl block and never quotes the password', () => {
    expect(issue({ ...MINIMAL, sasl: { mechanism: 'gssapi', username: 'u', password: 'p' } })).toEqual({
      path: `${AT}.sasl.mechanism`,
      message: 'must be one of plain, scram-sha-256, scram-sha-512 (got "gssapi")',
    });
    expect(parse({ ...MINIMAL, sasl: {} }).issues.map((i) => i.path)).toEqual([
      `${AT}.sasl.mechanism`,
      `${AT}.sasl.username`,
      `${AT}.sasl.password`,
    ]);
    expect(issue({ ...MINIMAL, sasl: { mechanism: 'plain', username: 'u', password: 12345 } })).toEqual({
      path: `${AT}.sasl.password`,
      message: 'must be a string (got a number)',
    });
    expect(issue({ ...MINIMAL, sasl: { mechanism: 'plain', username: 'u', password: 'p', token: 'x' } })).toEqual({
      path: `${AT}.sasl.token`,
      message: '',
      unknown: true,
    });
  });

  it('checks the tls block', () => {
    expect(issue({ ...MINIMAL, tls: 'yes' })).toEqual({
      path: `${AT}.tls`,
      message: 'must be true, false or a mapping with ca, reject_unauthorized, servername (got "yes")',
    });
    expect(issue({ ...MINIMAL, tls: { ca: 'not a pem' } })).toEqual({
      path: `${AT}.tls.ca`,
      message: 'must be PEM text: one or more "-----BEGIN CERTIFICATE-----" blocks',
    });
    expect(issue({ ...MINIMAL, tls: { reject_unauthorized: 'no' } })).toEqual({
      path: `${AT}.tls.reject_unauthorized`,
      message: 'must be true or false (got "no")',
    });
    expect(issue({ ...MINIMAL, tls: { cert: 'x' } })).toEqual({ path: `${AT}.tls.cert`, message: '', unknown: true });
  });

  it('marks unknown keys', () => {
    expect(issue({ ...MINIMAL, group_id: 'x' })).toEqual({ path: `${AT}.group_id`, message: '', unknown: true });
  });

  it('declares the SASL password as its secret', () => {
    expect(connector.secretKeys).toEqual(['sasl.password']);
    expect(connector.type).toBe('kafka');
  });
});

describe('kafka messages', () => {
  it('lower-cases and decodes headers, joining repeated values', () => {
    expect(
      decodeHeaders({
        'X-Convoy-Message-Type': Buffer.from('fanout'),
        'x-tags': [Buffer.from('a'), 'b'],
        Trace: 'abc',
        trace: Buffer.from('def'),
        empty: undefined,
      }),
    ).toEqual({ 'x-convoy-message-type': 'fanout', 'x-tags': 'a, b', trace: 'abc, def', empty: '' });
    expect(decodeHeaders(undefined)).toEqual({});
  });

  it('identifies a message by topic/partition/offset and decodes its key', () => {
    const at = new Date();
    const message = toBrokerMessage(
      'orders',
      3,
      { key: Buffer.from('k-1'), value: Buffer.from('{}'), timestamp: '0', attributes: 0, offset: '42', headers: {} },
      at,
    );
    expect(message).toEqual({ id: 'orders/3/42', body: Buffer.from('{}'), headers: {}, key: 'k-1', receivedAt: at });
    const tombstone = toBrokerMessage('orders', 0, { key: null, value: null, timestamp: '0', attributes: 0, offset: '7', headers: {} }, at);
    expect(tombstone.key).toBeNull();
    expect(tombstone.body).toEqual(Buffer.alloc(0));
  });
});
