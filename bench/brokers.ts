/**
 * Broker-to-webhook benchmark: messages published to a real broker → Wharf's connector → Postgres →
 * pg-boss → signed webhook → local sink.
 *
 *   node bench/brokers.ts --broker rabbitmq --messages 20000
 *   node bench/brokers.ts --broker all
 *
 * At full speed (no --rate) it also measures the REST path (bench/e2e.ts --mode max with the same
 * message count, warm-up and payload; lib/rest-baseline.ts) before and after the brokers, and prints
 * each broker's consumed-and-delivered rate as a ratio to the mean of those two REST runs.
 *
 * Brokers are the test harness's (RabbitMQ on the machine, Kafka = librdkafka's mock cluster via
 * kcat, SQS = fauxqs, Pub/Sub = Google's pstest), started here the same way the tests start them.
 * Wharf runs in a child process on a fresh database in the local Postgres; the sink is a worker
 * thread. Each message carries its number in a header the source forwards, so the sink's arrival
 * time is matched to the time its batch was published.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createTestDatabase } from '../test/harness/db.ts';
import type { BrokerFixture } from '../test/harness/brokers/fixture.ts';
import type { SinkMessage } from './lib/sink.ts';
import { fmt, mib, percentiles } from './lib/stats.ts';
import { measureRest, type RestResult } from './lib/rest-baseline.ts';
import { startWharf } from './lib/wharf.ts';
import pino from 'pino';
import { logProcessWarnings } from '../src/logger.ts';

// The bench's own kafkajs producer trips kafkajs#1751 on Node 24 as Wharf's does: the same filter.
logProcessWarnings(pino({ level: 'warn' }, pino.destination(2)));

const BROKERS = ['rabbitmq', 'kafka', 'sqs', 'pubsub'] as const;
type Broker = (typeof BROKERS)[number];

const USAGE = `usage: node bench/brokers.ts [options]

  --broker ${BROKERS.join('|')}|all   [all]
  --messages N          messages measured, after the warm-up          [20000]
  --rate R              publish R messages/s (in batches every 50 ms); 0 = as fast as the
                        broker takes them, which measures throughput (latency is then backlog)  [0]
  --publish-batch N     messages per publish call when --rate is 0    [500]
  --payload-bytes N     approximate size of each message's data      [256]
  --warmup N            messages published and delivered first        [500]
  --pubsub-workers N    the Pub/Sub source's streams (pstest hands each ~100 messages/s)  [4]
  --source-json JSON    settings merged into the broker's block of the source, e.g.
                        '{"workers":2,"prefetch":400}' for RabbitMQ
  --cpu-prof DIR        write a V8 CPU profile of the Wharf child into DIR (bench/prof-summary.ts)
  --no-rest             skip the REST baseline runs (they run only when --rate is 0)`;
const { values } = parseArgs({
  options: {
    broker: { type: 'string', default: 'all' },
    messages: { type: 'string', default: '20000' },
    'publish-batch': { type: 'string', default: '500' },
    'payload-bytes': { type: 'string', default: '256' },
    warmup: { type: 'string', default: '500' },
    rate: { type: 'string', default: '0' },
    'no-rest': { type: 'boolean', default: false },
    'pubsub-workers': { type: 'string' },
    'source-json': { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const chosen: Broker[] = values.broker === 'all' ? [...BROKERS] : [values.broker as Broker];
if (!chosen.every((b) => (BROKERS as readonly string[]).includes(b))) {
  console.error(USAGE);
  process.exit(2);
}
const sourceSettings = ((): Record<string, unknown> => {
  if (!values['source-json']) return {};
  try {
    const parsed: unknown = JSON.parse(values['source-json']);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  console.error(`--source-json must be a JSON object of source settings, e.g. '{"workers":2}' (got ${values['source-json']})`);
  process.exit(2);
})();
const total = Number(values.messages);
const publishBatch = Number(values['publish-batch']);
const warmup = Number(values.warmup);
const rate = Number(values.rate);
const pad = 'x'.repeat(Math.max(0, Number(values['payload-bytes']) - 60));
const now = (): number => performance.timeOrigin + performance.now();
const API_KEY = 'bench_brokers_0123456789abcdef0123456789';

interface Harness {
  start(): Promise<(() => Promise<void>) | void>;
  fixture: BrokerFixture;
}

async function harness(broker: Broker): Promise<Harness> {
  return (await import(`../test/harness/brokers/${broker}.ts`)) as Harness;
}

/** The sink in a worker thread; arrival times by message number. */
async function startSink(arrivedAt: Float64Array): Promise<{ port: number; delivered(): number; close(): Promise<void> }> {
  const worker = new Worker(new URL('./lib/sink.ts', import.meta.url));
  let delivered = 0;
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: SinkMessage) => {
      if (m.type === 'listening') resolve(m.port);
      else if (m.type === 'arrivals') {
        for (let i = 0; i < m.seqs.length; i++) {
          const seq = m.seqs[i]!;
          if (seq >= 0 && seq < arrivedAt.length && arrivedAt[seq] === 0) {
            arrivedAt[seq] = m.at[i]!;
            delivered += 1;
          }
        }
      }
    });
  });
  return {
    port,
    delivered: () => delivered,
    close: async () => {
      worker.postMessage({ type: 'close' });
      await new Promise((r) => setTimeout(r, 200));
      await worker.terminate();
    },
  };
}

interface Answer {
  status: number;
  data: { uid: string; status: { state: string; messages: Record<'stored' | 'duplicate' | 'rejected', number> } | null };
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${url}/api/v1/projects/default${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as { data: Answer['data'] };
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return { status: res.status, data: json.data };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function run(broker: Broker): Promise<{ line: string; perSecond: number }> {
  const h = await harness(broker);
  const stopBroker = await h.start();
  const db = await createTestDatabase('postgres');
  const arrivedAt = new Float64Array(warmup + total);
  const sentAt = new Float64Array(warmup + total);
  const sink = await startSink(arrivedAt);
  const wharf = await startWharf({
    where: 'child',
    dbUrl: db.url,
    apiKey: API_KEY,
    poolSize: 10,
    dispatch: { batch_size: 100, max_in_flight: 500, endpoint_concurrency: 128, polling_interval: 0.5 },
    // The bench creates its source through the API, which takes broker types only when opened to it.
    apiBrokerTypes: [broker],
    ...(values['cpu-prof'] ? { cpuProfDir: values['cpu-prof'] } : {}),
  });
  try {
    const endpoint = await api(wharf.url, 'POST', '/endpoints', { name: 'sink', url: `http://127.0.0.1:${sink.port}/ep/0` });
    const channel = await h.fixture.channel(`bench-${Date.now()}`);
    const source = await api(wharf.url, 'POST', '/sources', {
      name: `bench-${broker}`,
      type: broker,
      [broker]: {
        ...channel.block,
        ...(broker === 'pubsub' && values['pubsub-workers'] ? { workers: Number(values['pubsub-workers']) } : {}),
        ...sourceSettings,
      },
      forward_headers: ['x-bench-seq'],
    });
    const id = source.data.uid as string;
    await waitFor('the source to run', async () => (await api(wharf.url, 'GET', `/sources/${id}`)).data.status?.state === 'running', 60_000);

    const message = (seq: number) => ({
      body: `{"endpoint_id":"${endpoint.data.uid}","event_type":"bench.broker","custom_headers":{"x-bench-seq":"${seq}"},"data":{"seq":${seq},"pad":"${pad}"}}`,
    });
    const send = async (from: number, end: number): Promise<void> => {
      const t = now();
      for (let s = from; s < end; s++) sentAt[s] = t;
      await channel.publish(Array.from({ length: end - from }, (_, k) => message(from + k)));
    };
    const publish = async (from: number, to: number, paced = false): Promise<void> => {
      if (!paced || rate <= 0) {
        for (let i = from; i < to; i += publishBatch) await send(i, Math.min(to, i + publishBatch));
        return;
      }
      // Open loop: every 50 ms, what the schedule says is due by now.
      const start = now();
      let next = from;
      while (next < to) {
        const due = Math.min(to, from + Math.floor(((now() - start) / 1000) * rate));
        if (due > next) {
          await send(next, due);
          next = due;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    await publish(0, warmup);
    await waitFor('the warm-up deliveries', () => sink.delivered() >= warmup, 120_000);

    const t0 = now();
    const cpu0 = wharf.cpuMs();
    await publish(warmup, warmup + total, true);
    const published = now();
    await waitFor('every delivery', () => sink.delivered() >= warmup + total, 600_000);
    const t1 = now();
    const cpu1 = wharf.cpuMs();

    const measured = arrivedAt.subarray(warmup);
    const latency = Array.from(measured, (a, i) => a - sentAt[warmup + i]!);
    const p = percentiles(latency);
    const lastArrival = Math.max(...measured);
    const stats = (await api(wharf.url, 'GET', `/sources/${id}`)).data.status!;
    const perSecond = total / ((lastArrival - t0) / 1000);
    const line =
      `${broker.padEnd(8)} ${total} messages${rate > 0 ? ` at ${rate}/s` : ''}: published in ${fmt((published - t0) / 1000, 2)} s; ` +
      `consumed+delivered ${fmt(perSecond, 0)}/s; ` +
      `publish→webhook p50 ${fmt(p.p50, 0)} / p95 ${fmt(p.p95, 0)} / p99 ${fmt(p.p99, 0)} ms; ` +
      `Wharf CPU ${fmt((cpu1 - cpu0) / total, 2)} ms/msg, peak RSS ${mib(wharf.memory().hwm)} MiB; ` +
      `source stored ${stats.messages.stored}, duplicate ${stats.messages.duplicate}, rejected ${stats.messages.rejected}`;
    console.log(line);
    void t1;
    await channel.close?.().catch(() => undefined);
    return { line, perSecond };
  } finally {
    await wharf.stop();
    await sink.close();
    await db.drop();
    if (stopBroker) await stopBroker();
  }
}

/** The REST baseline, announced and printed like a broker's line. */
async function rest(when: string): Promise<RestResult> {
  console.log(`rest     ${when}: bench/e2e.ts --mode max --events ${total} --warmup ${warmup}`);
  const r = await measureRest({ events: total, warmup, payloadBytes: Number(values['payload-bytes']) });
  const line = `rest     ${total} events (${when}): delivered ${fmt(r.delivered_per_s, 0)}/s; Wharf CPU ${fmt(r.wharf_cpu_us / 1000, 2)} ms/event, peak RSS ${fmt(r.peak_rss_mib)} MiB`;
  console.log(line);
  lines.push(line);
  return r;
}

const lines: string[] = [];
const withRest = rate <= 0 && !values['no-rest'];
const restRuns: RestResult[] = [];
const results: { broker: Broker; perSecond: number }[] = [];
if (withRest) restRuns.push(await rest('before'));
for (const broker of chosen) {
  try {
    const r = await run(broker);
    lines.push(r.line);
    results.push({ broker, perSecond: r.perSecond });
  } catch (err) {
    lines.push(`${broker}: failed: ${(err as Error).message}`);
    console.error(`${broker}: ${(err as Error).stack}`);
  }
}
if (withRest) restRuns.push(await rest('after'));
console.log(`\n${lines.join('\n')}`);
if (withRest) {
  const restRate = restRuns.reduce((a, r) => a + r.delivered_per_s, 0) / restRuns.length;
  console.log(`\nratio to REST (mean of ${restRuns.map((r) => fmt(r.delivered_per_s, 0)).join(' and ')} = ${fmt(restRate, 0)} delivered/s; target ≥ 80%)`);
  for (const r of results) console.log(`  ${r.broker.padEnd(8)} ${fmt(r.perSecond, 0)}/s = ${fmt((100 * r.perSecond) / restRate, 0)}% of REST`);
}
