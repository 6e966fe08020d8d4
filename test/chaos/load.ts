/**
 * The chaos test's steady load: REST events with idempotency keys, retried the way a careful
 * client retries (same key, until a 2xx), and persistent RabbitMQ messages published with
 * confirms. Each records what Wharf (or the broker) acknowledged, which is what must not be lost.
 */
import amqp from 'amqplib';

export interface RestEvent {
  n: number;
  key: string;
  attempts: number;
  acked: boolean;
}

export interface RestLoad {
  events: RestEvent[];
  /** Answers by HTTP status, and `network` for requests that got none (Wharf down, reset). */
  answers: Map<string, number>;
  /** First words of the 5xx answers other than 503, for the report. */
  errors: string[];
  /** Stops making new events; those not yet acknowledged keep being retried. */
  stop(): void;
  /** Resolves once every event made is acknowledged, or rejects after `timeoutMs`. */
  settle(timeoutMs: number): Promise<void>;
  /** Stops retrying too. */
  close(): void;
}

export interface RestLoadOptions {
  /** Wharf's base URL (the same port across restarts). */
  url: string;
  apiKey: string;
  project: string;
  endpoint: string;
  perSecond: number;
}

/** A request that got no answer is tried again after this, doubled each time up to `RETRY_MAX_MS`. */
const RETRY_MS = 250;
const RETRY_MAX_MS = 2_000;

export function restLoad(o: RestLoadOptions): RestLoad {
  const events: RestEvent[] = [];
  const answers = new Map<string, number>();
  const errors: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let making = true;
  let closed = false;
  const count = (k: string) => answers.set(k, (answers.get(k) ?? 0) + 1);

  const send = async (e: RestEvent): Promise<void> => {
    if (closed || e.acked) return;
    e.attempts += 1;
    let wait = Math.min(RETRY_MS * 2 ** Math.min(e.attempts - 1, 4), RETRY_MAX_MS);
    try {
      const res = await fetch(`${o.url}/api/v1/projects/${o.project}/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ endpoint_id: o.endpoint, event_type: 'chaos.rest', data: { n: e.n }, idempotency_key: e.key }),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      count(String(res.status));
      if (res.status >= 200 && res.status < 300) {
        e.acked = true;
        return;
      }
      if (res.status >= 500 && res.status !== 503 && errors.length < 10) errors.push(`${res.status} ${text.slice(0, 200)}`);
      // As a well-behaved client does: Wharf's 503 says when to come back.
      const after = Number(res.headers.get('retry-after'));
      if (after > 0) wait = after * 1000;
    } catch {
      count('network');
    }
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      void send(e);
    }, wait);
    timers.add(timer);
  };

  const tick = setInterval(() => {
    if (!making) return;
    const e: RestEvent = { n: events.length, key: `rest-${events.length}`, attempts: 0, acked: false };
    events.push(e);
    void send(e);
  }, 1000 / o.perSecond);

  return {
    events,
    answers,
    errors,
    stop() {
      making = false;
      clearInterval(tick);
    },
    async settle(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (events.some((e) => !e.acked)) {
        if (Date.now() > deadline) throw new Error(`${events.filter((e) => !e.acked).length} REST events still not acknowledged after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    close() {
      making = false;
      closed = true;
      clearInterval(tick);
      for (const t of timers) clearTimeout(t);
    },
  };
}

export interface RabbitLoad {
  /** Message ids in publishing order. */
  published: string[];
  /** Ids the broker confirmed (persisted): these must become events. */
  confirmed: Set<string>;
  /** Stops publishing and waits for the outstanding confirms. */
  stop(): Promise<void>;
  /** Closes the connection and deletes the queue. */
  close(): Promise<void>;
}

/** Persistent messages in Convoy's envelope, each with a message-id (`m<n>`): Wharf's dedup key for it. */
export async function rabbitLoad(o: { url: string; queue: string; endpoint: string; perSecond: number }): Promise<RabbitLoad> {
  const conn = await amqp.connect(o.url);
  conn.on('error', () => undefined);
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => undefined);
  await ch.assertQueue(o.queue, { durable: true });
  const published: string[] = [];
  const confirmed = new Set<string>();
  const pending = new Set<Promise<void>>();

  const tick = setInterval(() => {
    const n = published.length;
    const id = `m${n}`;
    published.push(id);
    const body = Buffer.from(JSON.stringify({ endpoint_id: o.endpoint, event_type: 'chaos.mq', data: { n } }));
    const p = new Promise<void>((resolve) => {
      ch.sendToQueue(o.queue, body, { persistent: true, messageId: id, contentType: 'application/json' }, (err: unknown) => {
        if (!err) confirmed.add(id);
        resolve();
      });
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, 1000 / o.perSecond);

  return {
    published,
    confirmed,
    async stop() {
      clearInterval(tick);
      await Promise.all([...pending]);
    },
    async close() {
      clearInterval(tick);
      await ch.deleteQueue(o.queue).catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}
