/**
 * Kafka source connector (kafkajs). One consumer in a consumer group; each partition's fetched
 * batch goes to the sink in chunks of at most `max_in_flight`, and a chunk's offsets are committed
 * only after the sink stored it. Chunks of a partition are handed over strictly in order and a failed
 * chunk is retried until it is stored, so a committed offset always means "this and every earlier
 * offset of the partition are in Postgres" (DESIGN.md §3). What is not committed when the group
 * rebalances or Wharf stops is fetched again from the committed offset and deduplicated downstream.
 */
import type * as KafkaJsModule from 'kafkajs';
import type { Admin, EachBatchPayload, IHeaders, ISocketFactory, Kafka, KafkaMessage, LogEntry, SASLOptions } from 'kafkajs';
import { Socket, connect as netConnect } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { connect as tlsConnect } from 'node:tls';
import { backoffMs, sleep, within } from '../src/core/backoff.ts';
import type {
  BrokerMessage,
  Connector,
  ConnectorDeps,
  ConnectorHealth,
  ConnectorLogger,
  ConnectorModule,
  ConnectorState,
  Sink,
  EgressGuard,
} from '../src/core/connector.ts';
import type { Reader } from '../src/core/settings.ts';
import { absent, got } from '../src/core/settings.ts';

const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaSasl {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

export interface KafkaTls {
  /** PEM text of the CA(s) to trust instead of Node's bundled roots; null keeps the defaults. */
  ca: string | null;
  reject_unauthorized: boolean;
  servername: string | null;
}

/** The `kafka:` block of a source, as `parse` returns it (itself a valid block: parsing it again gives it back). */
export interface KafkaConfig {
  brokers: string[];
  /** `topic: x` is read as `topics: [x]`. */
  topics: string[];
  consumer_group: string;
  client_id: string;
  from_beginning: boolean;
  sasl: KafkaSasl | null;
  /** null: plaintext. */
  tls: KafkaTls | null;
  /** Partitions processed at once (kafkajs `partitionsConsumedConcurrently`). */
  workers: number;
  /** Most messages of one partition handed to the sink in one `accept`. */
  max_in_flight: number;
  /** Seconds without a heartbeat before the group gives this consumer's partitions to another. */
  session_timeout: number;
  /**
   * How long a fetch waits for data when there is none (a broker answers as soon as there is).
   * Shorter: an idle consumer asks more often; librdkafka's mock cluster always waits it out.
   */
  fetch_max_wait_ms: number;
}

const KEYS = [
  'brokers',
  'topic',
  'topics',
  'consumer_group',
  'client_id',
  'from_beginning',
  'sasl',
  'tls',
  'workers',
  'max_in_flight',
  'session_timeout',
  'fetch_max_wait_ms',
] as const;

// kafkajs splits a broker address at ':' (no IPv6 literals), so a host is a name or an IPv4 address.
const BROKER = /^([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?):(\d{1,5})$/;
// Kafka's own rule for topic names.
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

const DEFAULTS: KafkaConfig = {
  brokers: [],
  topics: [],
  consumer_group: '',
  client_id: 'wharf',
  from_beginning: false,
  sasl: null,
  tls: null,
  workers: 1,
  max_in_flight: 500,
  session_timeout: 30,
  fetch_max_wait_ms: 500,
};

function parse(r: Reader, value: unknown, at: string): KafkaConfig {
  const f = r.fields(value, at, KEYS);
  if (!f) return { ...DEFAULTS };
  const consumerGroup = r.text(f.consumer_group, `${at}.consumer_group`, '', { max: 255 });
  if (absent(f.consumer_group)) r.bad(`${at}.consumer_group`, 'is required: the consumer group whose committed offsets Wharf resumes from');
  return {
    brokers: parseBrokers(r, f.brokers, `${at}.brokers`),
    topics: parseTopics(r, f, at),
    consumer_group: consumerGroup,
    client_id: r.text(f.client_id, `${at}.client_id`, DEFAULTS.client_id, { max: 255 }),
    from_beginning: r.boolean(f.from_beginning, `${at}.from_beginning`, DEFAULTS.from_beginning),
    sasl: parseSasl(r, f.sasl, `${at}.sasl`),
    tls: parseTls(r, f.tls, `${at}.tls`),
    workers: r.integer(f.workers, `${at}.workers`, 1, 64, DEFAULTS.workers),
    max_in_flight: r.integer(f.max_in_flight, `${at}.max_in_flight`, 1, 10_000, DEFAULTS.max_in_flight),
    session_timeout: r.integer(f.session_timeout, `${at}.session_timeout`, 6, 1800, DEFAULTS.session_timeout),
    fetch_max_wait_ms: r.integer(f.fetch_max_wait_ms, `${at}.fetch_max_wait_ms`, 10, 10_000, DEFAULTS.fetch_max_wait_ms),
  };
}

/** A list of host:port, or one comma-separated string (what `${KAFKA_BROKERS}` expands to). */
function parseBrokers(r: Reader, value: unknown, path: string): string[] {
  if (absent(value) || value === '') {
    r.bad(path, 'is required: a list of Kafka brokers as host:port');
    return [];
  }
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : r.list(value, path, 'host:port');
  const brokers: string[] = [];
  items.forEach((item, i) => {
    const where = typeof value === 'string' ? path : `${path}[${i}]`;
    const match = typeof item === 'string' ? BROKER.exec(item) : null;
    const port = match ? Number(match[3]) : 0;
    if (!match || port < 1 || port > 65535) {
      r.bad(where, `must be host:port with a port from 1 to 65535 (IPv6 literals are not supported)${got(item)}`);
    } else if (!brokers.includes(item as string)) brokers.push(item as string);
  });
  if (Array.isArray(value) && value.length === 0) r.bad(path, 'must list at least one broker as host:port');
  return brokers;
}

function parseTopics(r: Reader, f: Record<string, unknown>, at: string): string[] {
  if (!absent(f.topic) && !absent(f.topics)) {
    r.bad(`${at}.topics`, 'give either topic or topics, not both');
    return [];
  }
  if (absent(f.topic) && absent(f.topics)) {
    r.bad(`${at}.topic`, 'is required: the topic to consume (or topics: a list of them)');
    return [];
  }
  const single = !absent(f.topic);
  const items = single ? [f.topic] : r.list(f.topics, `${at}.topics`, 'topic names');
  if (!single && items.length === 0 && Array.isArray(f.topics)) r.bad(`${at}.topics`, 'must list at least one topic');
  const topics: string[] = [];
  items.forEach((item, i) => {
    const where = single ? `${at}.topic` : `${at}.topics[${i}]`;
    if (typeof item !== 'string' || !TOPIC.test(item) || item === '.' || item === '..') {
      r.bad(where, `must be a Kafka topic name: 1-249 letters, digits, ".", "_" or "-"${got(item)}`);
    } else if (!topics.includes(item)) topics.push(item);
  });
  return topics;
}

function parseSasl(r: Reader, value: unknown, path: string): KafkaSasl | null {
  if (absent(value)) return null;
  const f = r.fields(value, path, ['mechanism', 'username', 'password']);
  if (!f) return null;
  if (absent(f.mechanism)) r.bad(`${path}.mechanism`, `is required: one of ${SASL_MECHANISMS.join(', ')}`);
  if (absent(f.username)) r.bad(`${path}.username`, 'is required');
  if (absent(f.password)) r.bad(`${path}.password`, 'is required');
  return {
    mechanism: r.choice(f.mechanism, `${path}.mechanism`, SASL_MECHANISMS, 'plain'),
    username: r.text(f.username, `${path}.username`, '', { max: 1024 }),
    password: r.text(f.password, `${path}.password`, '', { max: 4096, secret: true }),
  };
}

/** `true` (verify against Node's roots), `false`/absent (plaintext), or a mapping. */
function parseTls(r: Reader, value: unknown, path: string): KafkaTls | null {
  if (absent(value) || value === false || value === 'false') return null;
  if (value === true || value === 'true') return { ca: null, reject_unauthorized: true, servername: null };
  if (typeof value !== 'object' || Array.isArray(value)) {
    r.bad(path, `must be true, false or a mapping with ca, reject_unauthorized, servername${got(value)}`);
    return null;
  }
  const f = r.fields(value, path, ['ca', 'reject_unauthorized', 'servername']);
  if (!f) return null;
  const ca = r.optional(f.ca, `${path}.ca`, 1_000_000);
  if (ca !== null && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    r.bad(`${path}.ca`, 'must be PEM text: one or more "-----BEGIN CERTIFICATE-----" blocks');
  }
  return {
    ca,
    reject_unauthorized: r.boolean(f.reject_unauthorized, `${path}.reject_unauthorized`, true),
    servername: r.optional(f.servername, `${path}.servername`, 253),
  };
}

// ---------------------------------------------------------------------------------------------
// Messages

function headerText(value: IHeaders[string]): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => headerText(v)).join(', ');
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** Header names lower-cased; repeated names (and names equal but for case) joined with ', '. */
export function decodeHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const key = name.toLowerCase();
    const text = headerText(value);
    out[key] = key in out ? `${out[key]}, ${text}` : text;
  }
  return out;
}

export function toBrokerMessage(topic: string, partition: number, message: KafkaMessage, receivedAt: Date): BrokerMessage {
  return {
    id: `${topic}/${partition}/${message.offset}`,
    // A tombstone (null value) reaches the sink as an empty body; it decides whether that is poison.
    body: message.value ?? Buffer.alloc(0),
    headers: decodeHeaders(message.headers),
    key: message.key === null ? null : message.key.toString('utf8'),
    receivedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// The connector

type KafkaJs = typeof KafkaJsModule;

/** How often the lag is asked of the brokers, at most. */
const LAG_REFRESH_MS = 3_000;
/** What stop() still gives the consumer to leave the group when its timeout is spent. */
const LEAVE_GRACE_MS = 2_000;

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function kafkaOptions(config: KafkaConfig): { ssl?: ConnectionOptions | boolean; sasl?: SASLOptions } {
  const out: { ssl?: ConnectionOptions | boolean; sasl?: SASLOptions } = {};
  if (config.tls) {
    const tls: ConnectionOptions = { rejectUnauthorized: config.tls.reject_unauthorized };
    if (config.tls.ca) tls.ca = [config.tls.ca];
    if (config.tls.servername) tls.servername = config.tls.servername;
    out.ssl = tls;
  }
  if (config.sasl) out.sasl = { ...config.sasl } as SASLOptions;
  return out;
}

/**
 * kafkajs's own socket factory, with the egress guard: names are resolved through its `lookup`,
 * and an IP literal (which net.connect dials without a lookup) is judged before any socket opens.
 */
function guardedSockets(egress: EgressGuard): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const refused = egress.refusal(host);
    if (refused) {
      const socket = new Socket();
      process.nextTick(() => socket.destroy(refused));
      return socket;
    }
    const socket = ssl
      ? tlsConnect({ host, port, servername: host, ...(typeof ssl === 'object' ? ssl : {}), lookup: egress.lookup }, onConnect)
      : netConnect({ host, port, lookup: egress.lookup }, onConnect);
    socket.setKeepAlive(true, 60_000);
    return socket;
  };
}

/**
 * kafkajs log lines go to Wharf's logger, warnings and errors only, with plain fields (no stacks).
 * Credentials in them are the logger's to scrub (the source manager's logger does).
 */
function logCreatorFor(logger: ConnectorLogger, name: string, levels: KafkaJs['logLevel']) {
  return () =>
    ({ namespace, level, log }: LogEntry): void => {
      const fields: Record<string, unknown> = { source: name, kafka: namespace };
      for (const [k, v] of Object.entries(log)) {
        if (k === 'message' || k === 'timestamp' || k === 'stack') continue;
        if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) fields[k] = v;
      }
      const message = `kafkajs: ${String(log.message)}`;
      if (level === levels.ERROR) logger.error(fields, message);
      else if (level === levels.WARN) logger.warn(fields, message);
    };
}

class KafkaConnector implements Connector {
  readonly #config: KafkaConfig;
  readonly #deps: ConnectorDeps;
  readonly #kafka: Kafka;
  readonly #heartbeatMs: number;

  #state: ConnectorState = 'stopped';
  #lastError: string | null = null;
  #inFlight = 0;
  #sink: Sink | null = null;
  #closing = false;
  /** Wakes every backoff sleep when stop() begins. */
  readonly #abort = new AbortController();
  /** Resolved by stop() once the batches in the sink are done: the consumer may leave then. */
  #release: () => void = () => undefined;
  readonly #released: Promise<void>;
  #loop: Promise<void> | null = null;
  #stopped: Promise<void> | null = null;
  /** eachBatch calls under way. */
  readonly #batches = new Set<Promise<void>>();

  #lag: number | null = null;
  #lagAt = 0;
  #lagBusy = false;
  #admin: Admin | null = null;

  constructor(config: KafkaConfig, deps: ConnectorDeps, kafkajs: KafkaJs) {
    this.#config = config;
    this.#deps = deps;
    this.#heartbeatMs = Math.min(3_000, Math.floor((config.session_timeout * 1000) / 3));
    this.#released = new Promise((resolve) => {
      this.#release = resolve;
    });
    this.#kafka = new kafkajs.Kafka({
      clientId: config.client_id,
      brokers: config.brokers,
      ...kafkaOptions(config),
      // Every broker the cluster's metadata names is dialled through the egress policy too.
      socketFactory: guardedSockets(deps.egress),
      connectionTimeout: 3_000,
      // kafkajs retries each request a few times itself; longer outages are the connector's loop.
      retry: { initialRetryTime: 300, maxRetryTime: 10_000, retries: 3 },
      logLevel: kafkajs.logLevel.WARN,
      logCreator: logCreatorFor(deps.logger, deps.name, kafkajs.logLevel),
    });
  }

  start(sink: Sink): Promise<void> {
    if (this.#sink || this.#stopped) {
      return Promise.reject(new Error(`kafka source ${this.#deps.name} was already ${this.#stopped ? 'stopped' : 'started'}`));
    }
    this.#sink = sink;
    this.#state = 'connecting';
    this.#loop = this.#run();
    return Promise.resolve();
  }

  stop(options: { timeoutMs: number }): Promise<void> {
    this.#stopped ??= this.#stop(options.timeoutMs);
    return this.#stopped;
  }

  health(): ConnectorHealth {
    this.#refreshLagSoon();
    return {
      state: this.#state,
      inFlight: this.#inFlight,
      lag: this.#state === 'running' ? this.#lag : null,
      lastError: this.#lastError,
    };
  }

  // --- lifecycle -------------------------------------------------------------------------------

  /** Consumer after consumer until stop(): each ends when it crashes for good or cannot connect. */
  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#closing) {
      const joined = await this.#session();
      if (this.#closing) break;
      // A consumer that got as far as the group starts the backoff over.
      attempt = joined ? 0 : attempt + 1;
      this.#state = 'connecting';
      await sleep(backoffMs(attempt, { baseMs: 500, capMs: 30_000 }), this.#abort.signal);
    }
  }

  /** One kafkajs consumer from connect to disconnect. True when it joined the group at least once. */
  async #session(): Promise<boolean> {
    const consumer = this.#kafka.consumer({
      groupId: this.#config.consumer_group,
      sessionTimeout: this.#config.session_timeout * 1000,
      heartbeatInterval: this.#heartbeatMs,
      // Also bounds how long stopping waits for an idle fetch.
      maxWaitTimeInMs: this.#config.fetch_max_wait_ms,
      // A mistyped topic should show in health(), not be created empty.
      allowAutoTopicCreation: false,
    });
    let joined = false;
    const crashed = new Promise<void>((resolve) => {
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (this.#closing) return resolve();
        this.#state = 'connecting';
        this.#fail(`kafka consumer crashed${payload.restart ? ' (kafkajs restarts it)' : ''}: ${errorText(payload.error)}`);
        // With restart, kafkajs starts it again itself; without, this consumer is done.
        if (!payload.restart) resolve();
      });
    });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      joined = true;
      if (this.#closing) return;
      this.#state = 'running';
      this.#lastError = null;
    });
    try {
      await consumer.connect();
      if (this.#closing) return joined;
      await consumer.subscribe({ topics: this.#config.topics, fromBeginning: this.#config.from_beginning });
      if (this.#closing) return joined;
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.#config.workers,
        eachBatch: (payload) => this.#eachBatch(payload),
      });
      await Promise.race([crashed, this.#released]);
    } catch (err) {
      if (!this.#closing) {
        this.#fail(`cannot consume ${this.#config.topics.join(', ')} from Kafka brokers ${this.#config.brokers.join(',')}: ${errorText(err)}`);
      }
    } finally {
      if (this.#closing) await this.#released;
      await consumer.disconnect().catch((err: unknown) => {
        this.#deps.logger.debug({ source: this.#deps.name, err: errorText(err) }, 'kafka consumer disconnect failed');
      });
    }
    return joined;
  }

  async #stop(timeoutMs: number): Promise<void> {
    if (!this.#loop) {
      this.#state = 'stopped';
      return;
    }
    const deadline = Date.now() + timeoutMs;
    this.#closing = true;
    this.#state = 'stopping';
    this.#abort.abort();
    // The chunks inside accept finish and commit; batches that start now return at once.
    while (this.#batches.size > 0 && Date.now() < deadline) {
      await within(Promise.allSettled([...this.#batches]), deadline - Date.now());
    }
    this.#release();
    await within(this.#loop, Math.max(deadline - Date.now(), LEAVE_GRACE_MS));
    const admin = this.#admin;
    this.#admin = null;
    if (admin) await within(admin.disconnect(), 1_000);
    this.#state = 'stopped';
  }

  // --- consuming -------------------------------------------------------------------------------

  #eachBatch(payload: EachBatchPayload): Promise<void> {
    const work = this.#consumeBatch(payload);
    this.#batches.add(work);
    return work.finally(() => this.#batches.delete(work));
  }

  /**
   * Chunk by chunk, in offset order: a chunk is committed after the sink stored it, and the next is
   * handed over only then, so no offset is committed past one that is not stored.
   */
  async #consumeBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const receivedAt = new Date();
    const size = this.#config.max_in_flight;
    for (let i = 0; i < batch.messages.length; i += size) {
      if (this.#closing || !payload.isRunning() || payload.isStale()) return;
      const chunk = batch.messages.slice(i, i + size);
      this.#inFlight += chunk.length;
      try {
        const messages = chunk.map((m) => toBrokerMessage(batch.topic, batch.partition, m, receivedAt));
        const where = `${batch.topic}/${batch.partition} offsets ${chunk[0]!.offset}-${chunk[chunk.length - 1]!.offset}`;
        if (!(await this.#acceptUntilStored(messages, where, payload))) return;
        payload.resolveOffset(chunk[chunk.length - 1]!.offset);
        await this.#commit(payload);
      } finally {
        this.#inFlight -= chunk.length;
      }
    }
  }

  /**
   * Hands the chunk to the sink until it is stored, heartbeating meanwhile so a slow database does
   * not cost the partitions. False when the consumer stops first (the chunk stays uncommitted and is
   * fetched again); throws the heartbeat's error when the group moved on (kafkajs rejoins).
   */
  async #acceptUntilStored(messages: BrokerMessage[], where: string, payload: EachBatchPayload): Promise<boolean> {
    let beatError: unknown = null;
    const beat = setInterval(() => {
      payload.heartbeat().catch((err: unknown) => {
        beatError ??= err;
      });
    }, this.#heartbeatMs);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#sink!.accept(messages);
          return true;
        } catch (err) {
          this.#fail(`sink did not store ${where}, retrying: ${errorText(err)}`);
        }
        if (beatError) throw beatError;
        // Capped lower than reconnects: a database back from an outage is used again within seconds.
        await sleep(backoffMs(attempt, { baseMs: 250, capMs: 10_000 }), this.#abort.signal);
        if (beatError) throw beatError;
        if (this.#closing || !payload.isRunning() || payload.isStale()) return false;
      }
    } finally {
      clearInterval(beat);
    }
  }

  /** Commits this partition's resolved offset (the offset after the last stored message). */
  async #commit(payload: EachBatchPayload): Promise<void> {
    const { topic, partition } = payload.batch;
    const topics = payload
      .uncommittedOffsets()
      .topics.filter((t) => t.topic === topic)
      .map((t) => ({
        topic,
        partitions: t.partitions.filter((p) => Number(p.partition) === partition).map((p) => ({ partition, offset: p.offset })),
      }))
      .filter((t) => t.partitions.length > 0);
    if (topics.length === 0) return;
    try {
      await payload.commitOffsetsIfNecessary({ topics });
    } catch (err) {
      // Stored but not committed: fetched again later and deduplicated by id.
      this.#fail(`cannot commit ${topic}/${partition}: ${errorText(err)}`);
      throw err;
    }
    // Stored and committed: whatever went wrong before is over.
    this.#lastError = null;
  }

  // --- health ----------------------------------------------------------------------------------

  #refreshLagSoon(): void {
    if (this.#state !== 'running' || this.#lagBusy || Date.now() - this.#lagAt < LAG_REFRESH_MS) return;
    this.#lagBusy = true;
    this.#lagAt = Date.now();
    void this.#refreshLag().finally(() => {
      this.#lagBusy = false;
    });
  }

  /** The group's lag: per partition, the high-water mark less the committed offset. */
  async #refreshLag(): Promise<void> {
    try {
      if (this.#closing) return;
      if (!this.#admin) {
        this.#admin = this.#kafka.admin();
        await this.#admin.connect();
      }
      const admin = this.#admin;
      const committed = await admin.fetchOffsets({ groupId: this.#config.consumer_group, topics: this.#config.topics });
      let lag = 0;
      for (const topic of this.#config.topics) {
        const done = committed.find((t) => t.topic === topic)?.partitions ?? [];
        for (const end of await admin.fetchTopicOffsets(topic)) {
          const at = Number(done.find((p) => p.partition === end.partition)?.offset ?? -1);
          const high = Number(end.high);
          // Nothing committed yet: from the beginning all is waiting; from the end, nothing was.
          if (at >= 0) lag += Math.max(0, high - at);
          else if (this.#config.from_beginning) lag += high - Number(end.low);
        }
      }
      this.#lag = lag;
    } catch (err) {
      this.#lag = null;
      this.#deps.logger.debug({ source: this.#deps.name, err: errorText(err) }, 'kafka lag unknown');
      const admin = this.#admin;
      this.#admin = null;
      await admin?.disconnect().catch(() => undefined);
    }
  }

  /** Broker and kafkajs texts: the source manager scrubs credentials from health() and the logger. */
  #fail(message: string): void {
    this.#lastError = message;
    this.#deps.logger.warn({ source: this.#deps.name }, message);
  }
}

export const connector: ConnectorModule<KafkaConfig> = {
  type: 'kafka',
  secretKeys: ['sasl.password'],
  // One address per broker listed: two sources that name the same cluster through different (but
  // overlapping) bootstrap lists still meet on the broker they share.
  addresses: (c) =>
    c.brokers.flatMap((b) => c.topics.map((t) => `kafka://${b.toLowerCase()}/${encodeURIComponent(t)}?group=${encodeURIComponent(c.consumer_group)}`)),
  hosts: (c) => c.brokers.map((b, i) => ({ host: b.slice(0, b.lastIndexOf(':')), key: `brokers[${i}]` })),
  parse,
  async create(config, deps) {
    const mod = (await import('kafkajs')) as KafkaJs & { default?: KafkaJs };
    return new KafkaConnector(config, deps, mod.default ?? mod);
  },
};
