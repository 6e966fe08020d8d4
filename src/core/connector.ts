/**
 * The contract between Wharf and a broker connector (DESIGN.md §3). A connector imports only this
 * folder and its own SDK; everything it knows of Wharf is the `Sink` it is started with.
 */
import type { LookupFunction } from 'node:net';
import type { Reader } from './settings.ts';

/** One message as the broker gave it. */
export interface BrokerMessage {
  /**
   * The broker's own identity of the message, the same on every redelivery:
   * `topic/partition/offset`, the SQS MessageId, the Pub/Sub message id, the AMQP message-id (or a
   * hash of the body when there is none). Messages without an idempotency key are deduplicated by it.
   */
  id: string;
  body: Buffer;
  /** Broker headers or attributes: names lower-cased, values as text. */
  headers: Record<string, string>;
  /** The Kafka key, SQS message group, Pub/Sub ordering key or AMQP routing key, where there is one. */
  key?: string | null;
  receivedAt: Date;
}

/**
 * What became of one message. `rejected` means poison: it is kept in the dead-letter table with
 * its reason, and the connector acks it like a stored one so it never blocks the stream.
 */
export type AcceptResult =
  | { status: 'stored'; event_id: string }
  | { status: 'duplicate'; event_id: string }
  | { status: 'rejected'; code: string; reason: string; dead_letter_id: string };

export interface Sink {
  /**
   * Stores a batch. Resolves, after commit, with one result per message in input order; the
   * connector then acks every one of them. Rejects as a whole on a transient failure (database
   * unreachable): nothing of the batch may be acked, and the connector backs off and lets the broker
   * redeliver (or retries the same batch).
   */
  accept(messages: BrokerMessage[]): Promise<AcceptResult[]>;
}

/**
 * `connecting`: not yet consuming (first connection, or after a loss, with backoff);
 * `running`: consuming; `stopping`/`stopped`: after `stop`.
 */
export type ConnectorState = 'connecting' | 'running' | 'stopping' | 'stopped';

export interface ConnectorHealth {
  state: ConnectorState;
  /** Messages received and not yet acked (or committed). */
  inFlight: number;
  /** Messages waiting in the broker where it says (Kafka consumer lag, SQS visible messages), else null. */
  lag: number | null;
  /**
   * The last connection or consume error; null once consuming again. It may quote broker texts:
   * the source manager scrubs the values at `secretKeys` from it, and from the connector's log lines.
   */
  lastError: string | null;
}

/** The part of pino a connector uses. */
export interface ConnectorLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * The egress policy, as webhooks obey it (config `egress`): a broker address is a tenant's choice
 * when a source comes through the API, so a connector reaches only what the policy allows.
 */
export interface EgressGuard {
  /** For `net.connect`/`tls.connect`'s `lookup`: resolves and drops refused addresses, at connect time. */
  lookup: LookupFunction;
  /**
   * Resolves `host` (or reads an IP literal, which `lookup` never sees) and rejects with a
   * WHARF_ERR_EGRESS_BLOCKED error saying why when no address of it may be reached.
   */
  check(host: string): Promise<void>;
  /** For an SDK that dials synchronously: the error refusing an IP literal, else null (names go through `lookup`). */
  refusal(host: string): Error | null;
}

export interface ConnectorDeps {
  logger: ConnectorLogger;
  /** `<project>/<source>`: names clients, consumer tags and log lines. */
  name: string;
  /** Every connection the connector opens goes through it. */
  egress: EgressGuard;
}

export interface Connector {
  /**
   * Begins consuming into `sink` and resolves at once: connecting, and reconnecting after a broker
   * restart or network loss, happen in the background with capped, jittered backoff (see `health`).
   */
  start(sink: Sink): Promise<void>;
  /**
   * Stops taking messages, waits up to `timeoutMs` for the batches in the sink, acks (commits) what
   * they stored, and closes the connection. What is not acked is redelivered by the broker later.
   */
  stop(options: { timeoutMs: number }): Promise<void>;
  health(): ConnectorHealth;
}

/** One broker type. `C` is its settings block, as `parse` returns it. */
export interface ConnectorModule<C = unknown> {
  type: string;
  /**
   * Checks the broker's settings block (the value under `kafka:`, `sqs:`, … ) and fills defaults.
   * Problems go to `r` with paths under `at` (`projects[0].sources[1].kafka`); the result is only
   * meaningful when none were recorded. Never loads the SDK.
   */
  parse(r: Reader, value: unknown, at: string): C;
  /** Keys of the block (dotted paths) that hold credentials: encrypted at rest, never shown. */
  secretKeys: readonly string[];
  /**
   * What the source reads, as normalised addresses without credentials (a queue, a topic for a
   * consumer group, a subscription): one address belongs to one project.
   */
  addresses(config: C): string[];
  /**
   * The hosts the source dials first (brokers, endpoints), each with the key of its block that names
   * it (`brokers[0]`, `url`): judged by the egress policy when a source is saved through the API, so
   * a refused address is a 400 then rather than only a connect error later.
   */
  hosts?(config: C): { host: string; key: string }[];
  /** Loads the SDK (lazily) and builds a stopped connector. */
  create(config: C, deps: ConnectorDeps): Promise<Connector>;
}
