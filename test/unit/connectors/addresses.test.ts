/**
 * What each connector says a source reads (the address one project holds) and dials (the hosts the
 * API judges by the egress policy before saving): spellings of one address meet, others do not.
 */
import { describe, expect, it } from 'vitest';
import { connector as kafka } from '../../../connectors/kafka.ts';
import { connector as pubsub } from '../../../connectors/pubsub.ts';
import { connector as rabbitmq } from '../../../connectors/rabbitmq.ts';
import { connector as sqs } from '../../../connectors/sqs.ts';
import { settingsOf, settingsWithDefaultCredentials } from './settings.ts';

// SQS and Pub/Sub blocks that name no credentials opt in to the default chain, as a config file may.
const parsed = <C>(module: Parameters<typeof settingsOf>[0], block: unknown): C => {
  const settings = module === sqs || module === pubsub ? settingsWithDefaultCredentials(module, 'x') : settingsOf(module, 'x');
  const { config, issues } = settings.parse(block);
  expect(issues).toEqual([]);
  return config as C;
};
const meet = (a: string[], b: string[]): boolean => a.some((x) => b.includes(x));

describe('broker addresses', () => {
  it('Kafka: topic and group on any broker of the list, so overlapping bootstrap lists meet', () => {
    const one = kafka.addresses(parsed(kafka, { brokers: ['K1:9092', 'k2:9092'], topic: 'orders', consumer_group: 'g' }));
    const two = kafka.addresses(parsed(kafka, { brokers: ['k2:9092', 'k3:9092'], topic: 'orders', consumer_group: 'g' }));
    const otherGroup = kafka.addresses(parsed(kafka, { brokers: ['k2:9092'], topic: 'orders', consumer_group: 'h' }));
    expect(one).toContain('kafka://k1:9092/orders?group=g');
    expect(meet(one, two)).toBe(true);
    expect(meet(one, otherGroup)).toBe(false);
  });

  it('SQS: one queue under the hosts AWS answers it on is one address', () => {
    const at = (queue_url: string) => sqs.addresses(parsed(sqs, { queue_url }));
    expect(at('https://sqs.eu-west-1.amazonaws.com/123456789012/orders')).toEqual(['sqs://sqs.eu-west-1.amazonaws.com/123456789012/orders']);
    expect(at('https://eu-west-1.queue.amazonaws.com/123456789012/orders/')).toEqual(at('https://SQS.eu-west-1.amazonaws.com/123456789012/orders'));
    expect(at('https://sqs.eu-west-1.amazonaws.com/123456789012/billing')).not.toEqual(at('https://sqs.eu-west-1.amazonaws.com/123456789012/orders'));
  });

  it('RabbitMQ: host, port, vhost and queue, without the credentials', () => {
    const at = (url: string) => rabbitmq.addresses(parsed(rabbitmq, { url, queue: 'q' }));
    expect(at('amqp://a:secret-one@MQ.example')).toEqual(at('amqp://b:secret-two@mq.example:5672/'));
    expect(at('amqp://a:secret-one@mq.example/other')).not.toEqual(at('amqp://a:secret-one@mq.example/'));
    expect(at('amqp://a:secret-one@mq.example')[0]).not.toContain('secret');
  });

  it('Pub/Sub: a subscription id and its full name are one address', () => {
    const at = (block: Record<string, unknown>) => pubsub.addresses(parsed(pubsub, { project_id: 'acme', ...block }));
    expect(at({ subscription: 'orders' })).toEqual(at({ subscription: 'projects/acme/subscriptions/orders' }));
  });
});

describe('broker hosts judged before a source is saved', () => {
  it('names each host with the key that gives it', () => {
    expect(kafka.hosts!(parsed(kafka, { brokers: ['a.example:9092', '10.0.0.1:9093'], topic: 't', consumer_group: 'g' }))).toEqual([
      { host: 'a.example', key: 'brokers[0]' },
      { host: '10.0.0.1', key: 'brokers[1]' },
    ]);
    expect(rabbitmq.hosts!(parsed(rabbitmq, { url: 'amqps://u:secret-pw@mq.example:5671/v', queue: 'q' }))).toEqual([{ host: 'mq.example', key: 'url' }]);
    expect(sqs.hosts!(parsed(sqs, { queue_url: 'http://10.1.2.3:4566/000000000000/q', region: 'us-east-1' }))).toEqual([{ host: '10.1.2.3', key: 'queue_url' }]);
    expect(sqs.hosts!(parsed(sqs, { queue_url: 'http://a.example/000000000000/q', region: 'us-east-1', endpoint: 'http://b.example:4566' }))).toEqual([
      { host: 'b.example', key: 'endpoint' },
    ]);
    expect(sqs.hosts!(parsed(sqs, { queue_name: 'q', region: 'eu-west-1' }))).toEqual([{ host: 'sqs.eu-west-1.amazonaws.com', key: 'region' }]);
    expect(pubsub.hosts!(parsed(pubsub, { project_id: 'p', subscription: 'sub', emulator_host: '10.0.0.2:8085' }))).toEqual([{ host: '10.0.0.2', key: 'emulator_host' }]);
    expect(pubsub.hosts!(parsed(pubsub, { project_id: 'p', subscription: 'sub' }))).toEqual([{ host: 'pubsub.googleapis.com', key: 'api_endpoint' }]);
  });
});
