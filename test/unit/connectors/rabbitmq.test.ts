import { describe, expect, it } from 'vitest';
import { connector } from '../../../connectors/rabbitmq.ts';
import { Reader } from '../../../src/core/settings.ts';

const parse = (value: unknown) => {
  const r = new Reader();
  const config = connector.parse(r, value, 'rabbitmq');
  return { config, issues: r.issues.map((i) => (i.unknown ? `unknown ${i.path}` : `${i.path}: ${i.message}`)) };
};

describe('rabbitmq settings', () => {
  it('fills defaults', () => {
    expect(parse({ url: 'amqps://u:p@mq.example/vh', queue: 'orders' })).toEqual({
      issues: [],
      config: {
        url: 'amqps://u:p@mq.example/vh',
        queue: 'orders',
        declare_queue: true,
        exchange: null,
        exchange_type: 'topic',
        routing_key: '#',
        dead_letter_exchange: null,
        prefetch: 200,
        workers: 1,
        batch_size: 100,
        batch_wait_ms: 20,
        heartbeat: 30,
        tls: { ca: null, reject_unauthorized: true },
      },
    });
  });

  it('binds to an exchange with a routing key, and caps the batch at the prefetch', () => {
    const { config, issues } = parse({ url: 'amqp://h', queue: 'q', exchange: 'events', exchange_type: 'direct', routing_key: 'orders', prefetch: 10 });
    expect(issues).toEqual([]);
    expect(config).toMatchObject({ exchange: 'events', exchange_type: 'direct', routing_key: 'orders', batch_size: 10 });
  });

  it.each([
    [{ queue: 'q' }, 'rabbitmq.url: is required: an amqp:// or amqps:// URL'],
    [{ url: 'amqp://h' }, 'rabbitmq.queue: is required: the queue to consume'],
    [{ url: 'redis://u:hunter2@h', queue: 'q' }, 'rabbitmq.url: must be an amqp:// or amqps:// URL (got a "redis:" URL)'],
    [{ url: 'amqp://h', queue: 'q', routing_key: 'x' }, 'rabbitmq.routing_key: applies only with exchange (the binding of the queue)'],
    [{ url: 'amqp://h', queue: 'q', exchange: 'e', exchange_type: 'rss' }, 'rabbitmq.exchange_type: must be one of direct, topic, fanout, headers (got "rss")'],
    [{ url: 'amqp://h', queue: 'q', tls: { ca: 5 } }, 'rabbitmq.tls.ca: must be a string (got 5)'],
    [{ url: 'amqp://h', queue: 'q', batch_wait_ms: -1 }, 'rabbitmq.batch_wait_ms: must be an integer from 0 to 10000 (got -1)'],
    [{ url: 'amqp://h', queue: 'q', priority: 1 }, 'unknown rabbitmq.priority'],
  ])('%j → %s', (value, expected) => {
    const { issues } = parse(value);
    expect(issues).toContain(expected);
    expect(issues.join()).not.toContain('hunter2');
  });

  it('treats the URL as a credential', () => {
    expect(connector.secretKeys).toEqual(['url']);
  });
});
