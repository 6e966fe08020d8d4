/**
 * Two Wharf processes on one database share the work (issue 14, item 3): both take REST events and
 * consume one RabbitMQ queue, both dispatch, an endpoint's rate limit holds across both, and when
 * one is killed with SIGKILL mid-load every acknowledged event is still stored once and delivered.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import amqp from 'amqplib';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQP_URL, fixture as rabbit } from '../harness/brokers/rabbitmq.ts';
import type { BrokerChannel } from '../harness/brokers/fixture.ts';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';
import { startWharfProcess, type WharfProcess } from '../harness/processes.ts';
import { startReceiver, type Receiver, type Received } from '../harness/receiver.ts';

const LIMIT = 10;
const LIMIT_SECONDS = 2;
/**
 * The limiter stamps a grant in Postgres before the request leaves; the receiver stamps the arrival
 * after it. Arrivals inside a window W were granted inside W plus the longest grant-to-arrival delay,
 * so arrivals are counted in windows this much shorter than the limit's, where no more than LIMIT
 * may fall. A per-process limit would put about 2 × LIMIT there.
 */
const GRANT_TO_ARRIVAL_MS = 700;

const tagOf = (r: Received): string => (JSON.parse(r.body.toString()) as { tag: string }).tag;

/** The sum of a Prometheus counter's samples whose labels include every `labels` pair. */
function counter(text: string, name: string, labels: Record<string, string> = {}): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
    .reduce((n, line) => n + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

describe('two replicas on one database', () => {
  let db: TestDatabase;
  let rx: Receiver;
  let queue: BrokerChannel;
  let dir: string;
  let configFile: string;
  const key = `test_${randomBytes(18).toString('hex')}`;
  const operatorToken = `op_${randomBytes(24).toString('hex')}`;
  const replicas: WharfProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    rx = await startReceiver();
    // Answers to /fast take a moment, so the killed process has sends in flight.
    rx.answer((r) => (r.path === '/fast' ? { status: 200, body: 'ok', delayMs: 100 } : { status: 200, body: 'ok' }));
    queue = await rabbit.channel(`replicas-${randomBytes(4).toString('hex')}`);
    dir = mkdtempSync(join(tmpdir(), 'wharf-replicas-'));
    configFile = join(dir, 'wharf.yaml');
    writeFileSync(
      configFile,
      stringify({
        server: { host: '127.0.0.1', port: 0, operator_token: operatorToken },
        database: { url: db.url },
        data_dir: join(dir, 'data'),
        // Replicas sharing a database must share the key that seals endpoint secrets.
        encryption_key: randomBytes(32).toString('hex'),
        egress: { allow: ['127.0.0.0/8', '::1/128'] },
        dispatch: { polling_interval: 0.5 },
        ingest: { reload_interval: 0.25, shutdown_timeout: 10 },
        projects: [
          {
            id: 'default',
            api_keys: [key],
            endpoints: [
              { id: 'fast', url: `${rx.url}/fast` },
              { id: 'limited', url: `${rx.url}/limited`, rate_limit: LIMIT, rate_limit_duration: LIMIT_SECONDS },
            ],
            sources: [{ name: 'orders', type: 'rabbitmq', rabbitmq: { ...queue.block, prefetch: 20 } }],
          },
        ],
      }),
    );
    // Started together: migrations and reconciliation of the same file must not trip over each other.
    const started = await Promise.allSettled([startWharfProcess(configFile), startWharfProcess(configFile)]);
    // One that started is stopped by afterAll even when the other did not.
    for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await rx?.close();
    await queue?.close?.();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = async (replica: WharfProcess, body: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${replica.url}/api/v1/projects/default/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const metrics = async (replica: WharfProcess): Promise<string> => {
    const res = await fetch(`${replica.url}/metrics`, { headers: { authorization: `Bearer ${operatorToken}` } });
    expect(res.status).toBe(200);
    return res.text();
  };
  const consumers = async (): Promise<number> => {
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createChannel();
      return (await ch.assertQueue(String(queue.block.queue), { durable: true })).consumerCount;
    } finally {
      await conn.close();
    }
  };

  it('holds an endpoint rate limit across both, each sending some', async () => {
    const [a, b] = replicas as [WharfProcess, WharfProcess];
    // Spread over 3 s (faster than the limit allows) and alternating replicas, so both dispatchers
    // race for the jobs and for the limiter's slots.
    const total = 3 * LIMIT;
    for (let i = 0; i < total; i++) {
      const ev = await post(i % 2 ? b : a, { endpoint_id: 'limited', event_type: 'limited.test', data: { tag: `lim-${i}` } });
      expect(ev.status, JSON.stringify(ev.json)).toBe(201);
      await delay(100);
    }
    const arrivals = () => rx.requests.filter((r) => r.path === '/limited');
    await expect.poll(() => arrivals().length, { timeout: 20_000, interval: 250 }).toBe(total);

    const at = arrivals().map((r) => r.at).sort((x, y) => x - y);
    const windowMs = LIMIT_SECONDS * 1000 - GRANT_TO_ARRIVAL_MS;
    const busiest = Math.max(...at.map((t) => at.filter((u) => u >= t && u < t + windowMs).length));
    console.error(`rate limit ${LIMIT}/${LIMIT_SECONDS}s: at most ${busiest} arrivals in any ${windowMs} ms, ${total} in ${at.at(-1)! - at[0]!} ms`);
    expect(busiest).toBeLessThanOrEqual(LIMIT);
    // 3 × LIMIT need three windows: the last grant comes at least two windows after the first.
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(2 * LIMIT_SECONDS * 1000 - GRANT_TO_ARRIVAL_MS);
    expect(new Set(arrivals().map(tagOf)).size).toBe(total);
    // Only these deliveries were made so far, so each replica's attempts are its share of them.
    const attempts = await Promise.all([a, b].map(async (r) => counter(await metrics(r), 'wharf_delivery_attempts_total')));
    console.error(`limited deliveries sent per replica: ${attempts.join(', ')}`);
    expect(attempts.every((n) => n > 0), `attempts per replica: ${attempts.join(', ')}`).toBe(true);
  });

  it('loses no acknowledged event when one is killed mid-load, and both consume the queue', async () => {
    const [a, b] = replicas as [WharfProcess, WharfProcess];
    await expect.poll(consumers, { timeout: 15_000 }).toBe(2);

    /** Acknowledged events by tag: REST 201s and RabbitMQ publisher confirms. */
    const acked = new Set<string>();
    let running = true;
    const restLoop = async (replica: WharfProcess, name: string): Promise<void> => {
      for (let i = 0; running && replica.proc.signalCode === null; i++) {
        const tag = `rest-${name}-${i}`;
        try {
          const ev = await post(replica, { endpoint_id: 'fast', event_type: 'rest.test', data: { tag } });
          if (ev.status === 201) acked.add(tag);
        } catch {
          // The replica was killed under this request: not acknowledged, so it may or may not be stored.
        }
        await delay(25);
      }
    };
    let published = 0;
    const publishLoop = async (): Promise<void> => {
      while (running) {
        const tags = Array.from({ length: 5 }, () => `mq-${published++}`);
        await queue.publish(tags.map((tag) => ({ body: JSON.stringify({ endpoint_id: 'fast', event_type: 'mq.test', data: { tag } }) })));
        for (const tag of tags) acked.add(tag);
        await delay(50);
      }
    };
    const load = Promise.all([restLoop(a, 'a0'), restLoop(a, 'a1'), restLoop(b, 'b0'), restLoop(b, 'b1'), publishLoop()]);

    // Both consume: each has stored some of the queue's messages before one dies.
    const stored = async (r: WharfProcess) => counter(await metrics(r), 'wharf_source_messages_total', { source: 'orders', outcome: 'stored' });
    await expect.poll(async () => Math.min(await stored(a), await stored(b)), { timeout: 15_000 }).toBeGreaterThan(0);
    await delay(1_500);
    const before = [await stored(a), await stored(b)];
    console.error(`queue messages stored before the kill: a ${before[0]}, b ${before[1]}`);
    const sentBeforeKill = rx.requests.filter((r) => r.path === '/fast').length;

    const exited = new Promise((r) => a.proc.once('exit', r));
    a.proc.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    await delay(2_500);
    running = false;
    await load;
    expect(await consumers()).toBe(1);

    const fast = () => rx.requests.filter((r) => r.path === '/fast');
    const missing = () => {
      const seen = new Set(fast().map(tagOf));
      return [...acked].filter((t) => !seen.has(t));
    };
    await expect.poll(() => missing(), { timeout: 30_000, interval: 500 }).toEqual([]);

    // Stored once: one event per tag, acknowledged or not (nothing was sent twice to Wharf).
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ tag: string; n: number }>(
        `SELECT data::jsonb->>'tag' AS tag, count(*)::int AS n FROM events WHERE event_type IN ('rest.test', 'mq.test') GROUP BY 1`,
      );
      const counts = new Map(rows.map((r) => [r.tag, r.n]));
      expect(rows.filter((r) => r.n > 1)).toEqual([]);
      expect([...acked].filter((t) => counts.get(t) !== 1)).toEqual([]);
      // And recorded: every delivery ends a success, the killed replica's included. Those it was
      // sending arrived already; they are sent again (and recorded) once its heartbeats go stale,
      // within about 22 s of the kill.
      const unfinished = async () =>
        (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE endpoint_id = 'fast' AND status <> 'success'`)).rows[0]!.n;
      await expect.poll(unfinished, { timeout: 30_000, interval: 500 }).toBe(0);
    } finally {
      await client.end();
    }

    // A repeat is the same delivery of the same event: receivers dedupe on X-Wharf-Delivery-Id.
    const byDelivery = new Map<string, Received[]>();
    for (const r of fast()) {
      const id = String(r.headers['x-wharf-delivery-id']);
      byDelivery.set(id, [...(byDelivery.get(id) ?? []), r]);
    }
    const mixed = [...byDelivery.values()].filter((rs) => new Set(rs.map((r) => `${String(r.headers['x-wharf-event-id'])} ${r.body.toString()}`)).size > 1);
    expect(mixed).toEqual([]);
    const deliveriesPerTag = new Map<string, Set<string>>();
    for (const [id, rs] of byDelivery) deliveriesPerTag.set(tagOf(rs[0]!), (deliveriesPerTag.get(tagOf(rs[0]!)) ?? new Set()).add(id));
    expect([...deliveriesPerTag].filter(([, ids]) => ids.size > 1)).toEqual([]);
    const duplicates = fast().length - byDelivery.size;
    // Repeats are the killed replica's sends in flight: attempted again once its heartbeats went stale.
    const repeatedAfter = [...byDelivery.values()].filter((rs) => rs.length > 1).map((rs) => rs.at(-1)!.at - killedAt);
    const repeats = repeatedAfter.length > 0 ? `repeats ${Math.min(...repeatedAfter)}-${Math.max(...repeatedAfter)} ms after it` : 'no repeats';
    console.error(
      `${acked.size} acknowledged events (${published} queue messages), ${byDelivery.size} deliveries, ${duplicates} duplicate requests ` +
        `(same delivery id; ${sentBeforeKill} requests before the kill, ${repeats})`,
    );
    expect(Math.max(0, ...repeatedAfter)).toBeLessThan(30_000);
    // Both ways in carried load.
    expect([...acked].some((t) => t.startsWith('rest-a'))).toBe(true);
    expect([...acked].some((t) => t.startsWith('rest-b'))).toBe(true);
    expect(before.every((n) => n > 0)).toBe(true);
  });
});
