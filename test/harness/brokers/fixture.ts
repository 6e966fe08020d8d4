/**
 * What the conformance suite and the broker benchmark need of a broker: fresh channels to consume
 * and a way to publish to them through the broker's own SDK. Each broker's harness file exports one.
 */
export interface PublishMessage {
  body: Buffer | string;
  /** Broker headers / message attributes. */
  headers?: Record<string, string>;
}

export interface BrokerChannel {
  /** The source's broker block (the value under `kafka:`, `sqs:`, …) that consumes this channel. */
  block: Record<string, unknown>;
  /** Publishes through the broker's own SDK; resolves when the broker has them. */
  publish(messages: PublishMessage[]): Promise<void>;
  close?(): Promise<void>;
}

export interface BrokerFixture {
  type: 'kafka' | 'sqs' | 'pubsub' | 'rabbitmq';
  /** A fresh topic / queue / subscription that no other test uses; `name` is unique per call. */
  channel(name: string): Promise<BrokerChannel>;
  /** Restarts the broker and resolves once it answers again; only where the broker keeps its messages. */
  restart?: () => Promise<void>;
}
