/**
 * RabbitMQ (AMQP 0-9-1) through amqplib. Manual acks; `prefetch` bounds the unacked messages. Each
 * worker is a channel with its own consumer, whose messages go to the sink one batch at a time, in
 * delivery order, so one multiple-ack covers a stored batch exactly. A lost connection (broker
 * restart, network) is reopened with capped, jittered backoff; what was unacked comes back from the
 * broker and is deduplicated downstream.
 */
import { createHash } from 'node:crypto';
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { backoffMs, sleep, within } from '../src/core/backoff.ts';
import type { BrokerMessage, Connector, ConnectorDeps, ConnectorHealth, ConnectorModule, ConnectorState, Sink } from '../src/core/connector.ts';
import { absent, got, type Reader } from '../src/core/settings.ts';

export interface RabbitMQConfig {
  url: string;
  queue: string;
  /** Declare the queue (durable) at connect; off when it is managed elsewhere with other arguments. */
  declare_queue: boolean;
  exchange: string | null;
  exchange_type: 'direct' | 'topic' | 'fanout' | 'headers';
  routing_key: string;
  dead_letter_exchange: string | null;
  prefetch: number;
  workers: number;
  batch_size: number;
  batch_wait_ms: number;
  heartbeat: number;
  tls: { ca: string | null; reject_unauthorized: boolean };
}

const KEYS = [
  'url',
  'queue',
  'declare_queue',
  'exchange',
  'exchange_type',
  'routing_key',
  'dead_letter_exchange',
  'prefetch',
  'workers',
  'batch_size',
  'batch_wait_ms',
  'heartbeat',
  'tls',
];

function parse(r: Reader, value: unknown, at: string): RabbitMQConfig {
  const b = r.fields(value, at, KEYS) ?? {};
  let url = '';
  if (absent(b.url)) r.bad(`${at}.url`, 'is required: an amqp:// or amqps:// URL');
  else {
    // The URL may hold a password: messages never quote it.
    url = r.text(b.url, `${at}.url`, '', { max: 2048, secret: true });
    let protocol = '';
    try {
      protocol = new URL(url).protocol;
    } catch {
      if (url) r.bad(`${at}.url`, 'must be an amqp:// or amqps:// URL (got a string that is not a URL)');
    }
    if (protocol && protocol !== 'amqp:' && protocol !== 'amqps:') r.bad(`${at}.url`, `must be an amqp:// or amqps:// URL (got a ${JSON.stringify(protocol)} URL)`);
  }
  const queue = r.text(b.queue, `${at}.queue`, '', { max: 255 });
  if (absent(b.queue)) r.bad(`${at}.queue`, 'is required: the queue to consume');
  const exchange = r.optional(b.exchange, `${at}.exchange`, 255);
  const exchangeType = r.choice(b.exchange_type, `${at}.exchange_type`, ['direct', 'topic', 'fanout', 'headers'] as const, 'topic');
  const routingKey = r.text(b.routing_key, `${at}.routing_key`, exchangeType === 'topic' ? '#' : '', { max: 255, empty: true });
  // Without an exchange there is no binding; the defaults are accepted so a definition read back
  // from the API can be sent again unchanged.
  if (exchange === null && ((!absent(b.exchange_type) && exchangeType !== 'topic') || (!absent(b.routing_key) && routingKey !== '#'))) {
    r.bad(`${at}.${absent(b.routing_key) ? 'exchange_type' : 'routing_key'}`, 'applies only with exchange (the binding of the queue)');
  }
  // Twice the default batch: the broker sends the next batch while one is being stored, rather
  // than only after its ack.
  const prefetch = r.integer(b.prefetch, `${at}.prefetch`, 1, 65_535, 200);
  const workers = r.integer(b.workers, `${at}.workers`, 1, 64, 1);
  if (workers > prefetch) r.bad(`${at}.workers`, `must be at most prefetch (${prefetch}): each worker needs at least one message in flight${got(b.workers)}`);
  const batchSize = r.integer(b.batch_size, `${at}.batch_size`, 1, 10_000, Math.min(100, prefetch));
  const tlsIn = absent(b.tls) ? {} : (r.fields(b.tls, `${at}.tls`, ['ca', 'reject_unauthorized']) ?? {});
  return {
    url,
    queue,
    declare_queue: r.boolean(b.declare_queue, `${at}.declare_queue`, true),
    exchange,
    exchange_type: exchangeType,
    routing_key: routingKey,
    dead_letter_exchange: r.optional(b.dead_letter_exchange, `${at}.dead_letter_exchange`, 255),
    prefetch,
    workers,
    batch_size: batchSize,
    batch_wait_ms: r.integer(b.batch_wait_ms, `${at}.batch_wait_ms`, 0, 10_000, 20),
    heartbeat: r.integer(b.heartbeat, `${at}.heartbeat`, 0, 3600, 30),
    tls: {
      ca: r.optional(tlsIn.ca, `${at}.tls.ca`, 100_000),
      reject_unauthorized: r.boolean(tlsIn.reject_unauthorized, `${at}.tls.reject_unauthorized`, true),
    },
  };
}

/** A header value as text: AMQP tables hold strings, numbers, booleans, byte arrays and nested tables. */
function headerText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function toBrokerMessage(msg: ConsumeMessage): BrokerMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(msg.properties.headers ?? {})) if (v !== undefined && v !== null) headers[k.toLowerCase()] = headerText(v);
  const messageId = msg.properties.messageId as unknown;
  const id = typeof messageId === 'string' && messageId !== '' ? messageId : `sha256:${createHash('sha256').update(msg.content).digest('hex')}`;
  return { id, body: msg.content, headers, key: msg.fields.routingKey || null, receivedAt: new Date() };
}

/** The URL without its password, for logs and health. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

interface Worker {
  channel: Channel;
  tag: string | null;
  buffer: ConsumeMessage[];
  /** The batch in the sink, if any. */
  busy: Promise<void> | null;
  timer: NodeJS.Timeout | null;
  /** The channel closed: its unacked messages are the broker's again. */
  closed: boolean;
}

function create(config: RabbitMQConfig, deps: ConnectorDeps): Promise<Connector> {
  return import('amqplib').then((amqp) => {
    let state: ConnectorState = 'stopped';
    let lastError: string | null = null;
    let lag: number | null = null;
    let inFlight = 0;
    let connection: ChannelModel | null = null;
    let workers: Worker[] = [];
    let sink: Sink | null = null;
    let attempt = 0;
    let lagTimer: NodeJS.Timeout | null = null;
    const stopping = new AbortController();
    let loop: Promise<void> | null = null;
    const where = `${safeUrl(config.url)} queue ${JSON.stringify(config.queue)}`;

    const connect = async (): Promise<ChannelModel> => {
      // The host is judged first (an IP literal never meets `lookup`), then every address dialled.
      await deps.egress.check(new URL(config.url).hostname);
      const conn = await amqp.connect(config.url, {
        lookup: deps.egress.lookup,
        ...(config.tls.ca ? { ca: [config.tls.ca] } : {}),
        rejectUnauthorized: config.tls.reject_unauthorized,
        heartbeat: config.heartbeat,
        clientProperties: { connection_name: `wharf ${deps.name}` },
      } as object);
      // amqplib rethrows an 'error' nobody listens for, which would end the process: every
      // connection and channel gets a listener as soon as it exists.
      conn.on('error', (err: Error) => (lastError = `connection to ${where} failed: ${err.message}`));
      // Declarations on a channel of their own: a refused one closes only that channel.
      const setup = await conn.createChannel().catch(async (err: unknown) => {
        await conn.close().catch(() => undefined);
        throw err;
      });
      setup.on('error', () => undefined); // its failure is the rejected call below
      try {
        if (config.declare_queue) {
          await setup.assertQueue(config.queue, {
            durable: true,
            ...(config.dead_letter_exchange ? { deadLetterExchange: config.dead_letter_exchange } : {}),
          });
        } else await setup.checkQueue(config.queue);
        if (config.exchange) {
          await setup.assertExchange(config.exchange, config.exchange_type, { durable: true });
          await setup.bindQueue(config.queue, config.exchange, config.routing_key);
        }
        await setup.close();
      } catch (err) {
        await conn.close().catch(() => undefined);
        throw err;
      }
      return conn;
    };

    /** Hands the buffered messages to the sink and acks them (one multiple-ack) once stored. */
    const flush = (w: Worker): void => {
      if (w.timer) clearTimeout(w.timer);
      w.timer = null;
      if (w.busy || w.buffer.length === 0 || !sink) return;
      const batch = w.buffer.splice(0, config.batch_size);
      const messages = batch.map(toBrokerMessage);
      w.busy = (async () => {
        let failures = 0;
        for (;;) {
          try {
            await sink!.accept(messages);
            w.channel.ack(batch.at(-1)!, true);
            lastError = null;
            break;
          } catch (err) {
            failures += 1;
            lastError = `storing messages failed: ${(err as Error).message}`;
            deps.logger.warn({ err, messages: batch.length }, 'batch not stored; retrying it after a pause');
            // Keep the batch (the channel holds it unacked) and try it again, so order is kept.
            await sleep(backoffMs(failures, { baseMs: 250, capMs: 30_000 }), stopping.signal);
            // Stopping, or the channel is gone (the broker has handed the batch out again):
            // leave it unacked.
            if (stopping.signal.aborted || w.closed) break;
          }
        }
      })()
        .catch(() => undefined) // an ack on a channel that has closed: the broker redelivers
        .finally(() => {
          inFlight -= batch.length;
          w.busy = null;
          if (!stopping.signal.aborted || w.buffer.length > 0) schedule(w);
        });
    };

    const schedule = (w: Worker): void => {
      if (w.buffer.length >= config.batch_size) flush(w);
      else if (w.buffer.length > 0 && !w.timer && !w.busy) w.timer = setTimeout(() => flush(w), config.batch_wait_ms);
    };

    const startWorker = async (conn: ChannelModel, prefetch: number): Promise<Worker> => {
      const channel = await conn.createChannel();
      const w: Worker = { channel, tag: null, buffer: [], busy: null, timer: null, closed: false };
      channel.on('error', (err: Error) => (lastError = `channel error on ${where}: ${err.message}`));
      channel.on('close', () => (w.closed = true));
      await channel.prefetch(prefetch);
      const { consumerTag } = await channel.consume(
        config.queue,
        (msg) => {
          if (msg === null) {
            lastError = `the broker cancelled the consumer of ${where} (queue deleted?)`;
            conn.close().catch(() => undefined);
            return;
          }
          inFlight += 1;
          w.buffer.push(msg);
          schedule(w);
        },
        { noAck: false },
      );
      w.tag = consumerTag;
      return w;
    };

    const refreshLag = async (): Promise<void> => {
      if (!connection) return;
      try {
        const ch = await connection.createChannel();
        ch.on('error', () => undefined);
        const { messageCount } = await ch.checkQueue(config.queue);
        lag = messageCount;
        await ch.close();
      } catch {
        // The next refresh tries again; lag stays as last known.
      }
    };

    /** Connects, consumes until the connection closes, and reconnects, until stopped. */
    const run = async (): Promise<void> => {
      while (!stopping.signal.aborted) {
        state = 'connecting';
        let conn: ChannelModel | null = null;
        try {
          conn = await connect();
          const current = conn;
          connection = current;
          const closed = new Promise<void>((resolve) => current.on('close', () => resolve()));
          // A stop that came while this connection was being opened closes it too.
          const closeOnStop = (): void => void current.close().catch(() => undefined);
          if (stopping.signal.aborted) closeOnStop();
          else stopping.signal.addEventListener('abort', closeOnStop, { once: true });
          const per = Math.max(1, Math.floor(config.prefetch / config.workers));
          workers = [];
          for (let i = 0; i < config.workers; i++) workers.push(await startWorker(current, per));
          state = 'running';
          lastError = null;
          attempt = 0;
          deps.logger.info({ queue: config.queue, workers: config.workers, prefetch: config.prefetch }, 'consuming');
          void refreshLag();
          await closed;
          stopping.signal.removeEventListener('abort', closeOnStop);
          connection = null;
          if (stopping.signal.aborted) return;
          deps.logger.warn({ lastError }, 'connection to RabbitMQ lost; reconnecting');
        } catch (err) {
          connection = null;
          // A worker that failed to start leaves the others on this connection: close it whole.
          await conn?.close().catch(() => undefined);
          lastError = `cannot consume ${where}: ${(err as Error).message || String(err)}`;
          deps.logger.warn({ error: lastError }, 'RabbitMQ not available; retrying');
        }
        // The messages of a lost connection come back from the broker; what the sink holds of them
        // finishes and is deduplicated when redelivered.
        for (const w of workers) {
          if (w.timer) clearTimeout(w.timer);
          inFlight -= w.buffer.length;
          w.buffer = [];
        }
        if (stopping.signal.aborted) return;
        state = 'connecting';
        await sleep(backoffMs(attempt++, { baseMs: 200, capMs: 15_000 }), stopping.signal);
      }
    };

    const connector: Connector = {
      async start(s) {
        if (loop) return;
        sink = s;
        loop = run();
        lagTimer = setInterval(() => void refreshLag(), 5_000);
        lagTimer.unref();
      },
      async stop({ timeoutMs }) {
        if (state === 'stopped' && !loop) return;
        state = 'stopping';
        if (lagTimer) clearInterval(lagTimer);
        // No new messages; what was received and not handed over goes back to the queue on close.
        await Promise.all(workers.map((w) => (w.tag ? w.channel.cancel(w.tag).catch(() => undefined) : undefined)));
        for (const w of workers) {
          if (w.timer) clearTimeout(w.timer);
          inFlight -= w.buffer.length;
          w.buffer = [];
        }
        const busy = workers.flatMap((w) => (w.busy ? [w.busy] : []));
        const done = await within(Promise.allSettled(busy), timeoutMs);
        if (!done) deps.logger.warn({ timeoutMs }, 'stopping before the batches in flight finished; the broker will redeliver them');
        stopping.abort();
        await connection?.close().catch(() => undefined);
        await loop;
        loop = null;
        state = 'stopped';
      },
      health(): ConnectorHealth {
        return { state, inFlight, lag, lastError };
      },
    };
    return connector;
  });
}

export const connector: ConnectorModule<RabbitMQConfig> = {
  type: 'rabbitmq',
  parse,
  secretKeys: ['url'],
  addresses: (c) => {
    const u = new URL(c.url);
    const port = u.port || (u.protocol === 'amqps:' ? '5671' : '5672');
    // amqp://host/ is the default vhost "/"; amqp://host/x is vhost "x".
    const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : '/';
    return [`rabbitmq://${u.hostname.toLowerCase()}:${port}/${encodeURIComponent(vhost)}/${encodeURIComponent(c.queue)}`];
  },
  hosts: (c) => [{ host: new URL(c.url).hostname, key: 'url' }],
  create,
};
