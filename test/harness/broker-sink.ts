/**
 * The broker sink as a connector drives it, without a broker: a source definition, messages as a
 * connector hands them over, and the sink on a test app's database and job queue.
 */
import type { App } from '../../src/app.ts';
import type { BrokerMessage } from '../../src/core/connector.ts';
import { createBrokerSink, type BrokerSource } from '../../src/ingest/broker-sink.ts';
import type { IngestLimits } from '../../src/ingest/limits.ts';

/** A RabbitMQ source `queue` of project `default` reading envelopes, with `over` merged into it. */
export function brokerSource(over: Partial<BrokerSource['definition']> = {}): BrokerSource {
  return {
    project_id: 'default',
    definition: {
      id: 'queue',
      name: 'queue',
      type: 'rabbitmq',
      format: 'envelope',
      event_type: null,
      event_type_header: null,
      forward_headers: [],
      max_body_bytes: 1_048_576,
      broker: {},
      ...over,
    },
  };
}

let n = 0;

/** A message with an id of its own; the body as given (bytes or text), or anything else as JSON. */
export function brokerMessage(body: unknown, over: Partial<BrokerMessage> = {}): BrokerMessage {
  return {
    id: `msg-${++n}`,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    headers: {},
    key: null,
    receivedAt: new Date(),
    ...over,
  };
}

/** The sink of `source` on the app's pool and pg-boss, as its connector would get it. */
export function brokerSink(app: App, limits: IngestLimits, source: BrokerSource = brokerSource()) {
  return createBrokerSink({ pool: app.pool, boss: app.boss, limits }, source);
}
