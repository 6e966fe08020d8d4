/**
 * The broker connectors, by source `type`. Importing this is cheap: each module checks its settings
 * without its SDK, and loads the SDK (kafkajs, @aws-sdk/client-sqs, @google-cloud/pubsub, amqplib)
 * only when a source of its type is created.
 */
import type { ConnectorModule } from '../src/core/connector.ts';
import { connector as kafka } from './kafka.ts';
import { connector as pubsub } from './pubsub.ts';
import { connector as rabbitmq } from './rabbitmq.ts';
import { connector as sqs } from './sqs.ts';

export const BROKER_TYPES = ['kafka', 'sqs', 'pubsub', 'rabbitmq'] as const;
export type BrokerType = (typeof BROKER_TYPES)[number];

const CONNECTORS: Record<BrokerType, ConnectorModule<unknown>> = {
  kafka: kafka as ConnectorModule<unknown>,
  sqs: sqs as ConnectorModule<unknown>,
  pubsub: pubsub as ConnectorModule<unknown>,
  rabbitmq: rabbitmq as ConnectorModule<unknown>,
};

export function isBrokerType(type: string): type is BrokerType {
  return (BROKER_TYPES as readonly string[]).includes(type);
}

export function connectorFor(type: BrokerType): ConnectorModule<unknown> {
  return CONNECTORS[type];
}
