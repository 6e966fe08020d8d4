/**
 * End-to-end benchmark: REST POST → Postgres → pg-boss → signed webhook → local sink.
 *
 *   node bench/e2e.ts --mode max --events 20000
 *   node bench/e2e.ts --mode rate --rate 1000 --duration 20
 *   node bench/e2e.ts --mode drain --events 20000      (ingest with no dispatcher, then time the drain)
 *   node bench/e2e.ts --mode rate --rate 500 --endpoints 4 --hung-endpoint
 *                                                      (one more endpoint that never answers: the healthy ones' latency)
 *
 * Wharf runs in a child process by default (--wharf inproc runs it in this process): on a 2-core
 * machine the load generator would otherwise share Wharf's event loop, adding its own CPU and
 * timer delays to every figure, and the RSS would be the benchmark's as much as Wharf's. The sink
 * runs in a worker thread of this process, so arrivals are stamped on an event loop of their own.
 * Only 127.0.0.1 is ever contacted; the database is created fresh and dropped at the end.
 * Run `node bench/e2e.ts --help` for every option.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { Pool, request } from 'undici';
import { createTestDatabase, type TestDatabase } from '../test/harness/db.ts';
import type { SinkMessage } from './lib/sink.ts';
import { cpuByComm, cpuDelta, exitedChildrenCpuMs, machineCpuMs, rootProcess } from './lib/procfs.ts';
import { fmt, mib, middleRate, percentiles, round, type Percentiles } from './lib/stats.ts';
import { startWharf, type RunningWharf, type WharfSettings } from './lib/wharf.ts';
import { fillHistory, fillJobHistory, fillOldHistory, startPurge } from './lib/purge.ts';
import { otherCommits, probeCommits, settleAfterFill, statDelta, statSnapshot } from './lib/pgstat.ts';

const USAGE = `usage: node bench/e2e.ts [options]

  --mode max|rate|drain     max: closed loop at --concurrency (throughput)      [max]
                            rate: open loop at --rate events/s (latency at a load)
                            drain: ingest --events with no dispatcher running, then start
                            one and time how fast it empties the backlog (dispatch alone)
  --events N                events to post (max/drain: default 20000; rate: rate × duration)
  --duration S              seconds to post for (rate: default 20; max: stop at N or S)
  --concurrency C           POSTs in flight (max) / connections (rate)           [64]
  --rate R                  events/s in rate mode                                [1000]
  --endpoints N             endpoints pointing at the sink                      [1]
  --message single|broadcast  single: one endpoint per event, round robin; broadcast: all  [single]
  --batch-size N            Wharf dispatch.batch_size                            [100]
  --max-in-flight N         Wharf dispatch.max_in_flight                         [500]
  --endpoint-concurrency N  Wharf dispatch.endpoint_concurrency                  [128]
  --hung-endpoint           scenario: one more endpoint whose receiver accepts and never answers
                            (http_timeout 30 s) gets --hung-rate events/s while the measured
                            events go to the healthy ones; the latency printed is theirs
  --hung-rate R             events/s posted to the hung endpoint                 [20]
  --polling-interval S      Wharf dispatch.polling_interval                      [0.5]
  --dispatch-linger MS      Wharf dispatch.linger_ms                             [Wharf's default, 5]
  --record-linger MS        Wharf dispatch.record_linger_ms                      [Wharf's default, 25]
  --ingest-linger MS        Wharf ingest.linger_ms                               [Wharf's default, 5]
  --pool-size N             Wharf database.pool_size                             [10]
  --warmup N                events posted and delivered before measuring (not drain)  [1000]
  --payload-bytes N         approximate size of each event's data                [256]
  --payload-shape S         flat: one long string; object: an order of nested
                            objects, numbers and short strings, as webhooks carry  [flat]
  --drain-timeout S         longest wait for the last delivery after posting     [60]
  --wharf child|inproc      where Wharf runs                                     [child]
  --cpu-prof DIR            write a V8 CPU profile of the Wharf child into DIR
  --pg-timing FILE          count and time every SQL statement of the Wharf child (diagnostic;
                            adds overhead); table written to FILE.<role>.json
  --heap-sample FILE        sampled allocations of the Wharf child, collected ones included, in
                            FILE.<role>.heapprofile (summary: node bench/heap-summary.ts)
  --wharf-node-flags=F     extra Node flags for the Wharf child, e.g. --wharf-node-flags=--perf-basic-prof
  --wharf-log-level L      the Wharf child's log level (e.g. warn: why a dispatch transaction failed)  [silent]
  --wal-records             after the run, the measured window's WAL by record type per webhook
                            (pg_walinspect, contrib in Postgres 15; needs a superuser)
  --vacuum-every S          experiment: VACUUM pgboss.job_common and deliveries every S seconds
                            from the benchmark during the measurement (not something Wharf does)
  --purge N                 write N events from 60 days ago (each with a delivery and an attempt)
                            before measuring, and purge them with Wharf's retention code
                            (events: 30d, batches of 1000, 50 ms apart) during the measurement;
                            prints the POST→webhook p99 of events posted while it ran
  --history N               before measuring, fill events, deliveries and attempts with N rows each,
                            a day old, with INSERT … SELECT generate_series; prints the tables' sizes
  --pause S                 diagnostic: wait S seconds after starting Wharf, before the warm-up
                            (the processes idle as through a history fill, with no fill)
  --history-jobs N          also N completed jobs in pg-boss's job table (what a Wharf that completed
                            its delivery jobs left for a week; today's deletes them)       [0]
  --probe-seconds S         limit probe: --probe-clients connections commit single-row INSERTs
                            for S seconds before Wharf starts (0: off)                 [3]
  --probe-clients N         connections of the limit probe                           [8]
                            (the same S seconds also measure one loopback HTTP hop: --concurrency
                            connections POSTing the bench's event body to the sink, no Wharf)
  --timeline                print a per-second timeline
  --slowest N               print the N slowest webhooks: when each was posted, its POST's and
                            its webhook's latency, and its delivery row's times (diagnostic)
  -h, --help`;

// ---------------------------------------------------------------- options

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string', default: 'max' },
    events: { type: 'string' },
    duration: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    rate: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '1' },
    message: { type: 'string', default: 'single' },
    'batch-size': { type: 'string', default: '100' },
    'max-in-flight': { type: 'string', default: '500' },
    'endpoint-concurrency': { type: 'string', default: '128' },
    'hung-endpoint': { type: 'boolean', default: false },
    'hung-rate': { type: 'string', default: '20' },
    'polling-interval': { type: 'string', default: '0.5' },
    'dispatch-linger': { type: 'string' },
    'record-linger': { type: 'string' },
    'ingest-linger': { type: 'string' },
    'pool-size': { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1000' },
    'payload-bytes': { type: 'string', default: '256' },
    'payload-shape': { type: 'string', default: 'flat' },
    'drain-timeout': { type: 'string', default: '60' },
    wharf: { type: 'string', default: 'child' },
    'cpu-prof': { type: 'string' },
    'pg-timing': { type: 'string' },
    'heap-sample': { type: 'string' },
    'vacuum-every': { type: 'string' },
    'wal-records': { type: 'boolean' },
    purge: { type: 'string' },
    history: { type: 'string' },
    pause: { type: 'string' },
    'history-jobs': { type: 'string' },
    'probe-seconds': { type: 'string', default: '3' },
    'probe-clients': { type: 'string', default: '8' },
    'wharf-node-flags': { type: 'string' },
    'wharf-log-level': { type: 'string' },
    timeline: { type: 'boolean', default: false },
    slowest: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}

function num(name: string, raw: string | undefined, min: number, max: number, integer = true): number {
  const v = Number(raw);
  if (raw === undefined || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    console.error(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${raw}\n\n${USAGE}`);
    process.exit(2);
  }
  return v;
}
function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(raw as T)) {
    console.error(`--${name} must be one of ${allowed.join(', ')}, got ${raw}\n\n${USAGE}`);
    process.exit(2);
  }
  return raw as T;
}

const MAX_EVENTS = 2_000_000;
const mode = oneOf('mode', opt.mode, ['max', 'rate', 'drain'] as const);
const concurrency = num('concurrency', opt.concurrency, 1, 4096);
const rate = num('rate', opt.rate, 1, 100_000, false);
const endpointCount = num('endpoints', opt.endpoints, 1, 1000);
const message = oneOf('message', opt.message, ['single', 'broadcast'] as const);
const duration = opt.duration === undefined ? undefined : num('duration', opt.duration, 0.1, 600, false);
let events: number;
if (mode === 'rate') {
  events = opt.events !== undefined ? num('events', opt.events, 1, MAX_EVENTS) : Math.round(rate * (duration ?? 20));
  if (events > MAX_EVENTS) events = MAX_EVENTS;
} else {
  events = opt.events !== undefined ? num('events', opt.events, 1, MAX_EVENTS) : duration !== undefined ? MAX_EVENTS : 20_000;
}
const warmup = mode === 'drain' ? 0 : num('warmup', opt.warmup, 0, 100_000);
const payloadBytes = num('payload-bytes', opt['payload-bytes'], 0, 1_000_000);
const payloadShape = oneOf('payload-shape', opt['payload-shape'], ['flat', 'object'] as const);
const drainTimeoutMs = num('drain-timeout', opt['drain-timeout'], 1, 3600, false) * 1000;
const where = oneOf('wharf', opt.wharf, ['child', 'inproc'] as const);
const dispatch = {
  batch_size: num('batch-size', opt['batch-size'], 1, 10_000),
  max_in_flight: num('max-in-flight', opt['max-in-flight'], 1, 100_000),
  endpoint_concurrency: num('endpoint-concurrency', opt['endpoint-concurrency'], 1, 100_000),
  polling_interval: num('polling-interval', opt['polling-interval'], 0.5, 3600, false),
  ...(opt['dispatch-linger'] === undefined ? {} : { linger_ms: num('dispatch-linger', opt['dispatch-linger'], 0, 1000) }),
  ...(opt['record-linger'] === undefined ? {} : { record_linger_ms: num('record-linger', opt['record-linger'], 0, 1000) }),
};
const ingestLingerMs = opt['ingest-linger'] === undefined ? undefined : num('ingest-linger', opt['ingest-linger'], 0, 1000);
const poolSize = num('pool-size', opt['pool-size'], 1, 1000);
const hung = opt['hung-endpoint'] === true;
const hungRate = num('hung-rate', opt['hung-rate'], 0.1, 10_000, false);
const vacuumEveryMs = opt['vacuum-every'] === undefined ? null : num('vacuum-every', opt['vacuum-every'], 0.1, 600, false) * 1000;
const purgeOld = opt.purge === undefined ? 0 : num('purge', opt.purge, 1, 5_000_000);
const history = opt.history === undefined ? 0 : num('history', opt.history, 1, 20_000_000);
const pauseMs = opt.pause === undefined ? 0 : num('pause', opt.pause, 0, 3600, false) * 1000;
const historyJobs = opt['history-jobs'] === undefined ? 0 : num('history-jobs', opt['history-jobs'], 0, 20_000_000);
const probeSeconds = num('probe-seconds', opt['probe-seconds'], 0, 60, false);
const probeClients = num('probe-clients', opt['probe-clients'], 1, 256);
if ((opt['cpu-prof'] || opt['pg-timing'] || opt['heap-sample']) && where !== 'child') {
  console.error('--cpu-prof, --pg-timing and --heap-sample instrument the Wharf child; use them with --wharf child');
  process.exit(2);
}
// Posting stops at `events` or, in max mode, at --duration, whichever comes first.
const postDeadlineMs = mode === 'max' && duration !== undefined ? duration * 1000 : Infinity;

const settings = {
  mode,
  events,
  duration_s: mode === 'rate' ? round(events / rate, 2) : (duration ?? null),
  concurrency,
  rate: mode === 'rate' ? rate : null,
  endpoints: endpointCount,
  message,
  warmup,
  payload_bytes: payloadBytes,
  payload_shape: payloadShape,
  wharf: where,
  dispatch: { ...dispatch },
  hung_endpoint: hung ? { rate: hungRate } : null,
  pool_size: poolSize,
  ingest_linger_ms: ingestLingerMs ?? null,
  vacuum_every_s: vacuumEveryMs === null ? null : vacuumEveryMs / 1000,
  purge_old_events: purgeOld || null,
  history: history || null,
  pause_s: pauseMs / 1000 || null,
  history_jobs: historyJobs || null,
  probe: probeSeconds > 0 ? { seconds: probeSeconds, clients: probeClients } : null,
  cpus: cpus().length,
  node: process.version,
};

// ---------------------------------------------------------------- shared state

const now = (): number => performance.timeOrigin + performance.now();
const perEvent = message === 'broadcast' ? endpointCount : 1;

/** Measured events, by post index. */
const sentAt: number[] = [];
const doneAt: number[] = [];
const eventIds: (string | undefined)[] = [];
const lag: number[] = [];
/** Index of each measured event by id; warm-up events map to -1. */
const indexOf = new Map<string, number>();
/** Arrival time per delivery slot (event index × perEvent + endpoint slot). */
let deliveredAt = new Float64Array(0);
let delivered = 0;
let expectedDeliveries = 0;
let warmDelivered = 0;
let warmExpected = 0;
let duplicates = 0;
let wrongEndpoint = 0;
let missingHeader = 0;
/** Arrivals that beat their POST's answer back to us. */
const early = new Map<string, { ep: number; at: number }[]>();
const httpErrors: Record<string, number> = {};
const netErrors: Record<string, number> = {};
const count = (o: Record<string, number>, k: string): void => {
  o[k] = (o[k] ?? 0) + 1;
};

let aborted = false;
process.once('SIGINT', () => {
  console.error('SIGINT: stopping and cleaning up (again to force)');
  aborted = true;
  process.once('SIGINT', () => process.exit(130));
});

function ensureCapacity(slots: number): void {
  if (slots <= deliveredAt.length) return;
  const next = new Float64Array(Math.max(slots, deliveredAt.length * 2, 1024)).fill(NaN);
  next.set(deliveredAt);
  deliveredAt = next;
}

function recordArrival(id: string, ep: number, at: number): void {
  const idx = indexOf.get(id);
  if (idx === undefined) {
    const list = early.get(id) ?? [];
    list.push({ ep, at });
    early.set(id, list);
    return;
  }
  if (idx === -1) {
    warmDelivered += 1;
    return;
  }
  const slot = message === 'broadcast' ? ep : 0;
  if (slot < 0 || slot >= perEvent) {
    wrongEndpoint += 1;
    return;
  }
  const k = idx * perEvent + slot;
  if (Number.isNaN(deliveredAt[k]!)) {
    deliveredAt[k] = at;
    delivered += 1;
  } else {
    duplicates += 1;
  }
}

function registerEvent(id: string, idx: number, deliveries: number): void {
  indexOf.set(id, idx);
  if (idx >= 0) ensureCapacity((idx + 1) * perEvent);
  if (idx === -1) warmExpected += deliveries;
  else expectedDeliveries += deliveries;
  const pending = early.get(id);
  if (pending) {
    early.delete(id);
    for (const a of pending) recordArrival(id, a.ep, a.at);
  }
}

// ---------------------------------------------------------------- sink

async function startSink(): Promise<{ port: number; close(): Promise<void> }> {
  const worker = new Worker(new URL('./lib/sink.ts', import.meta.url));
  let onClosed: () => void = () => undefined;
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: SinkMessage) => {
      if (m.type === 'listening') resolve(m.port);
      else if (m.type === 'arrivals') {
        missingHeader += m.missingHeader;
        for (let i = 0; i < m.ids.length; i++) recordArrival(m.ids[i]!, m.endpoints[i]!, m.at[i]!);
      } else if (m.type === 'closed') onClosed();
    });
  });
  return {
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      worker.postMessage({ type: 'close' });
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5_000))]);
      await worker.terminate();
    },
  };
}

// ---------------------------------------------------------------- posting

/**
 * The loopback HTTP limit: `connections` undici connections (the poster's settings) POST the
 * bench's event body to the sink as fast as it answers, for `seconds`. Sent as a ping, which the
 * sink answers and counts nowhere.
 */
async function probeHttp(baseUrl: string, connections: number, seconds: number): Promise<HttpProbe> {
  const pool = postingPool(baseUrl, connections);
  const body = eventBody('probe', 0);
  const headers = { 'content-type': 'application/json', 'x-wharf-event-type': 'ping' };
  let posts = 0;
  const cpu0 = machineCpuMs();
  const t0 = now();
  const until = t0 + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (now() < until) {
          const res = await pool.request({ path: '/probe', method: 'POST', headers, body });
          await res.body.text();
          posts += 1;
        }
      }),
    );
  } finally {
    await pool.close();
  }
  const wallMs = now() - t0;
  const cpu1 = machineCpuMs();
  const busy = cpu1.busy - cpu0.busy;
  const cpuUsPerPost = (busy * 1000) / posts;
  // CPU µs the machine has a second (all cores), and so what two hops a webhook allow at most.
  const capacity = ((cpu1.total - cpu0.total) * 1000) / (wallMs / 1000);
  return { posts, per_s: (posts / wallMs) * 1000, busy_share: busy / (cpu1.total - cpu0.total), cpu_us_per_post: cpuUsPerPost, capacity_us_per_s: capacity, ceiling_per_s: capacity / (2 * cpuUsPerPost) };
}

interface HttpProbe {
  posts: number;
  per_s: number;
  busy_share: number;
  cpu_us_per_post: number;
  /** CPU µs the machine's cores give in a second. */
  capacity_us_per_s: number;
  /** Webhooks/s two hops each allow with every core busy and nothing else to do. */
  ceiling_per_s: number;
}

/** The undici pool the bench POSTs through (the poster's and the HTTP probe's). */
const postingPool = (baseUrl: string, connections: number): Pool =>
  new Pool(baseUrl, { connections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });

/** What follows `"seq":N,` in each event's data: `--payload-bytes` of it, in `--payload-shape`. */
const dataTail = ((): string => {
  if (payloadShape === 'flat') return `"pad":"${'x'.repeat(Math.max(0, payloadBytes - 60))}"`;
  const customer = { id: 'cus_01HZX3', email: 'someone@example.com', address: { line1: '1 Main St', city: 'Zürich', zip: '8001' } };
  const items: unknown[] = [];
  const tail = () => `"order":${JSON.stringify({ id: 'ord_01HZX3', customer, items, total: 1234.5, currency: 'EUR', paid: true, notes: null })}`;
  while (tail().length + 12 < payloadBytes) {
    const i = items.length;
    items.push({ sku: `SKU-${i}-abab`, name: `Item "${i}" deluxe`, qty: i % 5, price: 19.99 + i, tags: ['a', 'b', `t${i}`] });
  }
  return tail();
})();
/** The event the bench posts: `--payload-bytes` of JSON data numbered `seq`; broadcast when endpointId is null. */
const eventBody = (endpointId: string | null, seq: number): string =>
  endpointId === null
    ? `{"event_type":"bench.event","data":{"seq":${seq},${dataTail}}}`
    : `{"endpoint_id":"${endpointId}","event_type":"bench.event","data":{"seq":${seq},${dataTail}}}`;

interface Poster {
  post(idx: number, scheduled?: number): Promise<void>;
  close(): Promise<void>;
}

function createPoster(baseUrl: string, apiKey: string, endpointIds: string[], connections: number): Poster {
  const pool = postingPool(baseUrl, connections);
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const path = message === 'broadcast' ? '/api/v1/projects/default/events/broadcast' : '/api/v1/projects/default/events';
  let rr = 0;
  return {
    async post(idx, scheduled) {
      const body = eventBody(message === 'broadcast' ? null : endpointIds[rr++ % endpointIds.length]!, idx);
      const sent = now();
      if (idx >= 0) {
        sentAt[idx] = sent;
        if (scheduled !== undefined) lag[idx] = sent - scheduled;
      }
      try {
        const res = await pool.request({ path, method: 'POST', headers, body });
        const text = await res.body.text();
        const done = now();
        if (idx >= 0) doneAt[idx] = done;
        if (res.statusCode === 201) {
          const data = (JSON.parse(text) as { data: { id: string; deliveries: number } }).data;
          if (idx >= 0) eventIds[idx] = data.id;
          registerEvent(data.id, idx, data.deliveries);
        } else {
          count(httpErrors, String(res.statusCode));
          if (Object.values(httpErrors).reduce((a, b) => a + b, 0) <= 3) {
            console.error(`POST answered ${res.statusCode}: ${text.slice(0, 300)}`);
          }
        }
      } catch (err) {
        if (idx >= 0) doneAt[idx] = now();
        const e = err as { code?: string; cause?: { code?: string }; message?: string };
        count(netErrors, e.code ?? e.cause?.code ?? e.message ?? 'unknown');
      }
    },
    close: () => pool.close(),
  };
}

/** Closed loop: `concurrency` posters, each posting again as soon as its last answer is in. */
async function postClosedLoop(poster: Poster, total: number, firstIdx: number | null, deadline = Infinity): Promise<number> {
  let next = 0;
  const start = now();
  const worker = async (): Promise<void> => {
    for (;;) {
      if (aborted || next >= total || now() - start >= deadline) return;
      const i = next++;
      await poster.post(firstIdx === null ? -1 : firstIdx + i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return next;
}

/** Open loop: event i is sent at start + i / rate, whatever the answers do. */
async function postOpenLoop(poster: Poster, total: number): Promise<number> {
  const interval = 1000 / rate;
  const inFlight = new Set<Promise<void>>();
  let i = 0;
  let maxInFlight = 0;
  const start = now() + 5;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const t = now();
      while (i < total && start + i * interval <= t && !aborted) {
        const p = poster.post(i, start + i * interval);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        i += 1;
      }
      maxInFlight = Math.max(maxInFlight, inFlight.size);
      if (i >= total || aborted) resolve();
      else setTimeout(tick, Math.max(0, start + i * interval - now()));
    };
    setTimeout(tick, 5);
  });
  await Promise.all(inFlight);
  openLoopMaxInFlight = maxInFlight;
  return i;
}
let openLoopMaxInFlight = 0;

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (aborted) return false;
    if (Date.now() > until) {
      console.error(`TIMEOUT after ${timeoutMs / 1000} s waiting for ${what}`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

// ---------------------------------------------------------------- sampling

interface Sample {
  at: number;
  rss: number;
}

/** Once a second: CPU used since the previous tick, ms, by Wharf, Postgres and the machine. */
interface CpuTick {
  at: number;
  wharf: number;
  postgres: number;
  machine: number;
}

function startSampler(wharf: () => RunningWharf | null): { samples: Sample[]; ticks: CpuTick[]; stop(): void } {
  const samples: Sample[] = [];
  const ticks: CpuTick[] = [];
  let k = 0;
  let last: { w: RunningWharf | null; wharf: number; pg: Map<number, number>; machine: number } | null = null;
  const take = (): void => {
    const w = wharf();
    if (w) samples.push({ at: now(), rss: w.memory().rss });
    if (k++ % 10 !== 0) return;
    const cur = { w, wharf: w?.cpuMs() ?? 0, pg: cpuByComm('postgres'), machine: machineCpuMs().busy };
    if (last) {
      ticks.push({
        at: now(),
        wharf: last.w === cur.w ? cur.wharf - last.wharf : NaN,
        postgres: cpuDelta(last.pg, cur.pg),
        machine: cur.machine - last.machine,
      });
    }
    last = cur;
  };
  take();
  const timer = setInterval(take, 100);
  return { samples, ticks, stop: () => (clearInterval(timer), take()) };
}

interface CpuSnapshot {
  wharf: number;
  bench: number;
  postgres: Map<number, number>;
  /** The bench database's own backends (and autovacuum workers), by their process titles. */
  postgresOurs: Map<number, number>;
  /** Their user time alone: with `wharfUser`, how much of the CPU is the processes' own code. */
  postgresOursUser: Map<number, number>;
  wharfUser: number;
  /**
   * The CPU of postgres processes that have exited (the postmaster's reaped children): an
   * autovacuum worker that finishes, a connection that closes. A process that exits within the
   * window takes its CPU out of the live processes' sum; this gives it back.
   */
  postgresExited: number;
  machine: { busy: number; total: number };
}

/** The postmaster, whose children's CPU outlives them (cpuSnapshot). */
const postmaster = rootProcess('postgres');

/** " dbname " as it stands in the process title of a backend connected to the bench database. */
let ourDbTitle = '';

function cpuSnapshot(wharf: RunningWharf | null): CpuSnapshot {
  const u = process.cpuUsage();
  return {
    wharf: wharf?.cpuMs() ?? 0,
    bench: (u.user + u.system) / 1000,
    postgres: cpuByComm('postgres'),
    postgresOurs: cpuByComm('postgres', ourDbTitle),
    postgresOursUser: cpuByComm('postgres', ourDbTitle, 'user'),
    wharfUser: wharf?.cpuMs('user') ?? 0,
    postgresExited: postmaster === null ? 0 : (exitedChildrenCpuMs(postmaster) ?? 0),
    machine: machineCpuMs(),
  };
}

/** Experiment only: keeps pg-boss's job table and deliveries free of dead tuples from outside. */
function startVacuumLoop(url: string, everyMs: number): { stop(): Promise<{ runs: number; total_ms: number }> } {
  let stopped = false;
  let runs = 0;
  let totalMs = 0;
  const loop = (async () => {
    const client = await dbClient(url);
    try {
      while (!stopped) {
        await new Promise((r) => setTimeout(r, everyMs));
        if (stopped) break;
        const t = now();
        await client.query('VACUUM pgboss.job_common, deliveries');
        totalMs += now() - t;
        runs += 1;
      }
    } finally {
      await client.end();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { runs, total_ms: round(totalMs) };
    },
  };
}

/**
 * A fixed CPU-bound workload (hashing and JSON), best of 3, in ms. This VM's speed drifts from
 * run to run (shared host); a slower figure here explains a slower run.
 */
function calibrate(): number {
  const buf = randomBytes(1024);
  const obj = { a: 1, b: 'two', c: [1, 2, 3], d: { e: 'x'.repeat(200) } };
  let best = Infinity;
  for (let round_ = 0; round_ < 3; round_++) {
    const t = performance.now();
    for (let i = 0; i < 20_000; i++) {
      createHash('sha256').update(buf).digest();
      JSON.parse(JSON.stringify(obj));
    }
    best = Math.min(best, performance.now() - t);
  }
  return round(best, 1);
}

// ---------------------------------------------------------------- hung endpoint scenario

interface HungLoad {
  /** Stops posting and reads the receiver's counts; its requests stay open until `close`. */
  figures(): Promise<{ posted: number; accepted: number; held_open: number }>;
  /** Ends the hung requests (so Wharf's shutdown need not wait them out) and closes the receiver. */
  close(): Promise<void>;
}

/**
 * A receiver that takes every request and never answers, an endpoint for it, and a loop posting
 * to it at --hung-rate: the dispatcher's slots held by one endpoint that hangs (issue 12).
 */
async function startHungLoad(baseUrl: string, apiKey: string): Promise<HungLoad> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let open = 0;
  const server = createServer((req, res) => {
    accepted += 1;
    open += 1;
    res.on('close', () => (open -= 1));
    req.resume();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const res = await request(`${baseUrl}/api/v1/projects/default/endpoints`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'bench-hung', url: `http://127.0.0.1:${port}/hung`, http_timeout: 30, skip_ping_validation: true }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`creating the hung endpoint answered ${res.statusCode}: ${text}`);
  const id = (JSON.parse(text) as { data: { id: string } }).data.id;
  let posted = 0;
  let running = true;
  const every = 1000 / hungRate;
  const loop = (async () => {
    const t0 = now();
    while (running) {
      const r = await request(`${baseUrl}/api/v1/projects/default/events`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ endpoint_id: id, event_type: 'bench.hung', data: { n: posted } }),
      });
      await r.body.dump();
      posted += 1;
      const wait = t0 + posted * every - now();
      if (wait > 0) await new Promise((r2) => setTimeout(r2, wait));
    }
  })();
  const stopPosting = async (): Promise<void> => {
    running = false;
    await loop;
  };
  return {
    figures: async () => {
      await stopPosting();
      return { posted, accepted, held_open: open };
    },
    close: async () => {
      await stopPosting().catch(() => undefined);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------- main

async function createEndpoints(baseUrl: string, apiKey: string, sinkPort: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < endpointCount; i++) {
    const res = await request(`${baseUrl}/api/v1/projects/default/endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `bench-${i}`, url: `http://127.0.0.1:${sinkPort}/ep/${i}` }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`creating endpoint ${i} answered ${res.statusCode}: ${text}`);
    ids.push((JSON.parse(text) as { data: { id: string } }).data.id);
  }
  return ids;
}

interface DbCheck {
  deliveries: Record<string, number>;
  attempts: number;
  /** Write transactions (xids) the whole cluster used during the measurement. */
  write_xacts: number;
  /** WAL the whole cluster wrote during the measurement, and checkpoints that started. */
  wal_mib: number;
  wal_bytes: number;
  /** The window's first and last WAL positions (pg_current_wal_lsn). */
  wal_lsn: { from: string; to: string };
  checkpoints: number;
  /** Transactions of the measured window, from rows sharing a created_at (= one transaction's now()). */
  ingest_txns: { count: number; mean_size: number; max_size: number };
  dispatch_txns: { count: number; mean_size: number; max_size: number };
}

async function dbClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'wharf-bench' });
  await client.connect();
  return client;
}

interface ClusterSnapshot {
  xid: number;
  walBytes: number;
  /** pg_current_wal_lsn() as Postgres writes it, for pg_walinspect. */
  lsn: string;
  checkpoints: number;
}

/** Cluster-wide counters: transaction ids used, WAL written, checkpoints done. */
async function clusterSnapshot(client: pg.Client): Promise<ClusterSnapshot> {
  const { rows } = await client.query<{ x: string; lsn: string; at: string; ckpt: string }>(
    `SELECT txid_current() AS x, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS lsn, pg_current_wal_lsn()::text AS at,
            (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS ckpt`,
  );
  return { xid: Number(rows[0]!.x), walBytes: Number(rows[0]!.lsn), lsn: rows[0]!.at, checkpoints: Number(rows[0]!.ckpt) };
}

/**
 * The WAL written between two snapshots by record type (pg_walinspect), in bytes per webhook:
 * which part of the WAL is heap rows, index entries, full-page images, row locks, commits. It is
 * the whole server's WAL, and the segments must still be there (a checkpoint during the run may
 * have recycled the first ones).
 */
async function walRecords(client: pg.Client, from: string, to: string, webhooks: number): Promise<{ type: string; records: number; bytes_per_webhook: number; fpi_bytes_per_webhook: number }[]> {
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
  const { rows } = await client.query<{ t: string; n: string; rec: string; fpi: string }>(
    `SELECT "resource_manager/record_type" AS t, count AS n, record_size AS rec, fpi_size AS fpi
     FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0 ORDER BY combined_size DESC`,
    [from, to],
  );
  const per = (v: string): number => round(Number(v) / Math.max(1, webhooks), 1);
  return rows.map((r) => ({ type: r.t, records: Number(r.n), bytes_per_webhook: per(r.rec), fpi_bytes_per_webhook: per(r.fpi) }));
}

/**
 * Waits for Postgres's table counters to catch up: a busy backend reports them at most once a
 * second, and one gone idle with counts pending reports them within 10 s (Postgres 15's
 * PGSTAT_IDLE_INTERVAL).
 */
const statsSettled = (): Promise<void> => new Promise((r) => setTimeout(r, 11_000));

/** Rows and total size (with indexes, TOAST and partitions) of the tables history fills. */
async function sizesOf(url: string): Promise<Record<string, { rows: number; mib: number }>> {
  const client = await dbClient(url);
  try {
    const out: Record<string, { rows: number; mib: number }> = {};
    for (const t of ['events', 'deliveries', 'delivery_attempts', 'pgboss.job']) {
      // Fixed names above; the count is exact (the tables were just filled).
      const { rows } = await client.query<{ n: string; bytes: string }>(
        `SELECT (SELECT count(*) FROM ${t}) AS n,
                (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                 WHERE c.oid = $1::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)) AS bytes`,
        [t],
      );
      out[t] = { rows: Number(rows[0]!.n), mib: mib(Number(rows[0]!.bytes)) };
    }
    return out;
  } finally {
    await client.end();
  }
}

async function dbCheck(client: pg.Client, c0: ClusterSnapshot, from: number): Promise<DbCheck> {
  const c1 = await clusterSnapshot(client);
  const { rows } = await client.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM deliveries GROUP BY status');
  const { rows: att } = await client.query<{ n: string }>('SELECT count(*) AS n FROM attempts');
  const groups = async (table: string) => {
    const { rows: g } = await client.query<{ count: string; mean: string | null; max: string | null }>(
      `SELECT count(*) AS count, avg(n) AS mean, max(n) AS max
       FROM (SELECT count(*) AS n FROM ${table} WHERE created_at >= to_timestamp($1::float8 / 1000) GROUP BY created_at) b`,
      [from],
    );
    return { count: Number(g[0]!.count), mean_size: round(Number(g[0]!.mean ?? NaN)), max_size: Number(g[0]!.max ?? NaN) };
  };
  return {
    deliveries: Object.fromEntries(rows.map((r) => [r.status, Number(r.n)])),
    attempts: Number(att[0]!.n),
    write_xacts: c1.xid - c0.xid - 1,
    wal_mib: mib(c1.walBytes - c0.walBytes),
    wal_bytes: c1.walBytes - c0.walBytes,
    wal_lsn: { from: c0.lsn, to: c1.lsn },
    checkpoints: c1.checkpoints - c0.checkpoints,
    ingest_txns: await groups('events'),
    dispatch_txns: await groups('attempts'),
  };
}

async function main(): Promise<number> {
  const apiKey = `bench_${randomBytes(18).toString('hex')}`;
  let db: TestDatabase | null = null;
  let sink: Awaited<ReturnType<typeof startSink>> | null = null;
  let httpProbe: HttpProbe | null;
  let wharf: RunningWharf | null = null;
  let poster: Poster | null = null;
  let hungLoad: HungLoad | null = null;
  let sampler: ReturnType<typeof startSampler> | null = null;
  let dbc: pg.Client | null = null;
  const hardLimitMs = (mode === 'rate' ? events / rate : (duration ?? 600)) * 1000 + 3 * drainTimeoutMs + 180_000;
  const hardLimit = setTimeout(() => {
    console.error(`hard time limit of ${Math.round(hardLimitMs / 1000)} s reached: aborting`);
    aborted = true;
  }, hardLimitMs);
  hardLimit.unref();

  try {
    if (opt['cpu-prof']) mkdirSync(opt['cpu-prof'], { recursive: true });
    const calibrationBefore = calibrate();
    db = await createTestDatabase('postgres');
    ourDbTitle = ` ${new URL(db.url).pathname.slice(1)} `;
    // What this Postgres can commit at all, measured alone before Wharf starts.
    const probe = probeSeconds > 0 ? await probeCommits(db.url, probeClients, probeSeconds) : null;
    // A run that writes old rows first waits for the disk to absorb them (settleAfterFill), against
    // a probe of its own when the limit probe is off.
    const fillBaseline = purgeOld > 0 || history > 0 || historyJobs > 0 ? (probe ?? (await probeCommits(db.url, probeClients, 2))).per_s : null;
    if (probe) console.log(`limit probe: ${fmt(probe.per_s, 0)} durable single-row INSERT commits/s (${probeClients} connections, ${probeSeconds} s)`);
    sink = await startSink();
    // What one loopback HTTP hop costs alone: a webhook takes two (bench → Wharf, Wharf → sink).
    httpProbe = probeSeconds > 0 ? await probeHttp(`http://127.0.0.1:${sink.port}`, concurrency, probeSeconds) : null;
    if (httpProbe) {
      console.log(
        `http probe: ${fmt(httpProbe.per_s, 0)} loopback POSTs/s (${concurrency} connections to the sink, ${probeSeconds} s), ` +
          `the machine ${fmt(httpProbe.busy_share * 100, 0)}% busy: ${fmt(httpProbe.cpu_us_per_post, 0)} µs of CPU a POST`,
      );
    }
    const wharfSettings: WharfSettings = {
      where,
      dbUrl: db.url,
      apiKey,
      poolSize,
      dispatch,
      ...(ingestLingerMs === undefined ? {} : { ingestLingerMs }),
      ...(opt['cpu-prof'] ? { cpuProfDir: opt['cpu-prof'] } : {}),
      ...(opt['pg-timing'] ? { pgTimingFile: opt['pg-timing'] } : {}),
      ...(opt['heap-sample'] ? { heapSampleFile: opt['heap-sample'] } : {}),
      ...(opt['wharf-node-flags'] ? { nodeFlags: opt['wharf-node-flags'].split(/\s+/).filter(Boolean) } : {}),
      ...(opt['wharf-log-level'] ? { logLevel: opt['wharf-log-level'] } : {}),
    };
    wharf = await startWharf(wharfSettings, mode === 'drain' ? 'api' : 'all');
    const endpointIds = await createEndpoints(wharf.url, apiKey, sink.port);
    if (hung) hungLoad = await startHungLoad(wharf.url, apiKey);
    poster = createPoster(wharf.url, apiKey, endpointIds, concurrency);
    console.log(`wharf ${where} pid ${wharf.pid} at ${wharf.url}; sink on 127.0.0.1:${sink.port}; ${endpointCount} endpoint(s)`);

    // Old rows are written before the warm-up, not after it, so that the measurement follows a
    // warm-up as closely in a run with history as in one without: a fill leaves Wharf, this
    // process and the sink idle for minutes.
    if (purgeOld > 0) {
      const filled = await fillOldHistory(db.url, endpointIds[0]!, purgeOld);
      console.log(`purge: ${filled.rows} old rows (${purgeOld} events and their deliveries, each holding its attempt) written in ${fmt(filled.ms / 1000, 2)} s`);
    }
    let tableSizes: Record<string, { rows: number; mib: number }> | null = null;
    let fillSettled: { seconds: number; baseline_per_s: number; rates: number[] } | null = null;
    if (history > 0 || historyJobs > 0) {
      const filled = history > 0 ? await fillHistory(db.url, endpointIds[0]!, history, { ageDays: 1, eventType: 'bench.history' }) : { rows: 0, ms: 0 };
      const jobs = historyJobs > 0 ? await fillJobHistory(db.url, 'wharf-deliver', historyJobs) : { rows: 0, ms: 0 };
      tableSizes = await sizesOf(db.url);
      console.log(
        `history: ${filled.rows} rows (${history} events and their deliveries, each holding its attempt) in ${fmt(filled.ms / 1000, 1)} s and ${jobs.rows} completed pg-boss jobs in ${fmt(jobs.ms / 1000, 1)} s; ` +
          Object.entries(tableSizes ?? {})
            .map(([t, v]) => `${t} ${v.rows} rows ${fmt(v.mib, 0)} MiB`)
            .join(', '),
      );
    }
    if (pauseMs > 0) {
      await new Promise((r) => setTimeout(r, pauseMs));
      console.log(`paused: ${fmt(pauseMs / 1000, 0)} s with Wharf, the bench and the sink idle before the warm-up`);
    }
    if (fillBaseline !== null) {
      const settled = await settleAfterFill(db.url, fillBaseline, probeClients);
      console.log(
        `settled: ${fmt(settled.seconds, 1)} s after the old rows until the disk committed at 90 % of its rate before them ` +
          `(${fmt(fillBaseline, 0)}/s; probes of 2 s: ${settled.rates.map((r) => fmt(r, 0)).join(', ')})`,
      );
      fillSettled = { seconds: round(settled.seconds, 1), baseline_per_s: round(fillBaseline, 0), rates: settled.rates.map((r) => round(r, 0)) };
    }
    if (warmup > 0) {
      const t = now();
      await postClosedLoop(poster, warmup, null);
      await waitFor(() => warmDelivered >= warmExpected, drainTimeoutMs, 'warm-up deliveries');
      console.log(`warm-up: ${warmup} events posted and delivered in ${fmt((now() - t) / 1000, 2)} s`);
      await new Promise((r) => setTimeout(r, 500));
    }

    let activeWharf: RunningWharf | null = wharf;
    sampler = startSampler(() => activeWharf);
    dbc = await dbClient(db.url);
    // Every run starts its WAL count just after a checkpoint, so full-page images weigh the same in each.
    await dbc.query('CHECKPOINT').catch((err: unknown) => console.error(`CHECKPOINT before measuring failed (WAL figures less comparable): ${(err as Error).message}`));
    await statsSettled();
    const cluster0 = await clusterSnapshot(dbc);
    const stats0 = await statSnapshot(dbc);
    const others0 = await otherCommits(dbc);
    // Drain mode's API-only Wharf has no dispatcher: every first attempt is queued.
    const dispatch0 = mode === 'drain' ? null : await wharf.dispatchCounters();
    const cpu0 = cpuSnapshot(wharf);
    const t0 = now();
    const vacuum = vacuumEveryMs === null ? null : startVacuumLoop(db.url, vacuumEveryMs);
    const purge = purgeOld > 0 ? startPurge(db.url, { batchSize: 1000, pauseMs: 50 }) : null;
    let posted: number;
    let drainStart = NaN;
    let peakApi = 0;
    let cpuDispatch0: CpuSnapshot | null = null;
    if (mode === 'rate') {
      posted = await postOpenLoop(poster, events);
    } else {
      posted = await postClosedLoop(poster, events, 0, postDeadlineMs);
    }
    const postedAt = now();
    console.log(`posted ${posted} events in ${fmt((postedAt - t0) / 1000, 2)} s; waiting for deliveries`);

    let cpuApi: { wharf: number } | null = null;
    if (mode === 'drain') {
      // Ingest is done; the backlog is in Postgres. Swap the API-only Wharf for a dispatcher.
      cpuApi = { wharf: wharf.cpuMs() - cpu0.wharf };
      peakApi = wharf.memory().hwm;
      activeWharf = null;
      await poster.close();
      poster = null;
      await wharf.stop();
      wharf = null;
      drainStart = now();
      wharf = await startWharf(wharfSettings, 'dispatch');
      activeWharf = wharf;
      cpuDispatch0 = cpuSnapshot(wharf);
    }

    const allIn = await waitFor(() => delivered >= expectedDeliveries, drainTimeoutMs, `${expectedDeliveries - delivered} more deliveries`);
    const tEnd = now();
    // The hung receiver keeps its requests open until every measured delivery has arrived.
    const hungFigures = (await hungLoad?.figures()) ?? null;
    const vacuums = (await vacuum?.stop()) ?? null;
    const purgeReport = purge ? await purge.stop() : null;
    const cpu1 = cpuSnapshot(wharf);
    const dispatch1 = dispatch0 && (await wharf.dispatchCounters());
    sampler.stop();
    // A short grace to catch duplicate deliveries.
    await new Promise((r) => setTimeout(r, 300));
    const wharfHwm = wharf?.memory().hwm ?? 0;
    const check = await dbCheck(dbc, cluster0, t0);
    await statsSettled();
    const stats1 = await statSnapshot(dbc);
    const othersDuring = (await otherCommits(dbc)) - others0;
    const calibrationAfter = calibrate();

    // ------------------------------------------------------------ figures
    const n = posted;
    const ok: number[] = [];
    for (let i = 0; i < n; i++) if (eventIds[i] !== undefined) ok.push(i);
    let firstSent = n > 0 ? Infinity : t0;
    for (let i = 0; i < n; i++) firstSent = Math.min(firstSent, sentAt[i]!);
    let lastOk = firstSent;
    for (const i of ok) lastOk = Math.max(lastOk, doneAt[i]!);
    const postLat = new Float64Array(n);
    for (let i = 0; i < n; i++) postLat[i] = doneAt[i]! - sentAt[i]!;
    const okDone = Float64Array.from(ok.map((i) => doneAt[i]!)).sort();

    const lat: number[] = [];
    const arrivals: number[] = [];
    for (const i of ok) {
      for (let s = 0; s < perEvent; s++) {
        const at = deliveredAt[i * perEvent + s]!;
        if (Number.isNaN(at)) continue;
        lat.push(at - sentAt[i]!);
        arrivals.push(at);
      }
    }
    const arrivalsSorted = Float64Array.from(arrivals).sort();
    const lastDelivery = arrivalsSorted.length ? arrivalsSorted[arrivalsSorted.length - 1]! : NaN;
    const firstDelivery = arrivalsSorted.length ? arrivalsSorted[0]! : NaN;
    const deliveryWindowMs = (mode === 'drain' ? lastDelivery - drainStart : lastDelivery - firstSent) || NaN;
    const latency: Percentiles = percentiles(lat);
    // Deliveries of the events posted while the purge ran (to the end of the run if it was cut short).
    const duringPurge = purge
      ? percentiles(ok.filter((i) => sentAt[i]! >= purge.startedAt && sentAt[i]! <= purge.endedAt).flatMap((i) => Array.from({ length: perEvent }, (_, s) => deliveredAt[i * perEvent + s]! - sentAt[i]!)).filter((x) => !Number.isNaN(x)))
      : null;
    const postP: Percentiles = percentiles(postLat);
    if (opt.slowest !== undefined && dbc) await printSlowest(dbc, num('slowest', opt.slowest, 1, 1000), firstSent, ok, postLat);
    const lagP = percentiles(lag.filter((x) => x !== undefined));
    const missing = expectedDeliveries - delivered;
    const errorsTotal =
      Object.values(httpErrors).reduce((a, b) => a + b, 0) +
      Object.values(netErrors).reduce((a, b) => a + b, 0) +
      missing +
      duplicates +
      wrongEndpoint +
      missingHeader +
      early.size;

    const windowMs = cpu1.machine.total - cpu0.machine.total;
    const wallMs = tEnd - t0;
    // Processes that exited within the window (autovacuum workers of the bench database, nearly
    // always: no other database commits meanwhile, see other_databases_commits) count as ours too.
    const pgExitedMs = cpu1.postgresExited - cpu0.postgresExited;
    const pgMs = cpuDelta(cpu0.postgres, cpu1.postgres) + pgExitedMs;
    const pgOursMs = cpuDelta(cpu0.postgresOurs, cpu1.postgresOurs) + pgExitedMs;
    // The share of user time (the processes' own code, not the kernel's work for them: syscalls,
    // loopback TCP, fsync). Postgres's is of its live backends'; drain mode measures Wharf in two
    // windows and gives none.
    const share = (user: number, all: number): number | null => (all > 0 ? round(user / all, 2) : null);
    const pgUserShare = share(cpuDelta(cpu0.postgresOursUser, cpu1.postgresOursUser), cpuDelta(cpu0.postgresOurs, cpu1.postgresOurs));
    const wharfUserShare = where === 'inproc' || mode === 'drain' ? null : share(cpu1.wharfUser - cpu0.wharfUser, cpu1.wharf - cpu0.wharf);
    const perEventCpu = (ms: number): string => `${fmt((ms * 1000) / Math.max(1, delivered), 0)} µs/webhook`;
    const wharfMs =
      where === 'inproc' ? NaN : mode === 'drain' ? cpuApi!.wharf + (cpu1.wharf - cpuDispatch0!.wharf) : cpu1.wharf - cpu0.wharf;
    const benchMs = cpu1.bench - cpu0.bench;
    const peakSampled = sampler.samples.reduce((m, x) => Math.max(m, x.rss), 0);

    const result = {
      settings,
      accepted_per_s: round((ok.length / (lastOk - firstSent)) * 1000),
      accepted_per_s_middle80: round(middleRate(okDone)),
      delivered_per_s: round((arrivalsSorted.length / deliveryWindowMs) * 1000),
      delivered_per_s_middle80: round(middleRate(arrivalsSorted)),
      latency_ms: mode === 'drain' ? null : { p50: round(latency.p50), p95: round(latency.p95), p99: round(latency.p99), max: round(latency.max), mean: round(latency.mean) },
      post_latency_ms: { p50: round(postP.p50, 2), p99: round(postP.p99, 2), max: round(postP.max, 1) },
      counts: {
        posted: n,
        accepted: ok.length,
        expected_deliveries: expectedDeliveries,
        delivered,
        posting_s: round((lastOk - firstSent) / 1000, 2),
        delivery_window_s: round(deliveryWindowMs / 1000, 2),
        first_delivery_after_ms: round(firstDelivery - (mode === 'drain' ? drainStart : firstSent)),
      },
      errors: {
        total: errorsTotal,
        http: httpErrors,
        network: netErrors,
        missing_deliveries: missing,
        duplicate_deliveries: duplicates,
        unmatched_deliveries: early.size + wrongEndpoint + missingHeader,
        all_delivered: allIn,
      },
      db: check,
      peak_rss_mib: { sampled: mib(peakSampled), vmhwm: mib(Math.max(wharfHwm, peakApi)), process: where === 'child' ? 'wharf child' : 'benchmark (wharf in-process)' },
      cpu_s: {
        wall: round(wallMs / 1000, 2),
        machine_busy: round((cpu1.machine.busy - cpu0.machine.busy) / 1000, 2),
        machine_capacity: round(windowMs / 1000, 2),
        wharf: Number.isNaN(wharfMs) ? null : round(wharfMs / 1000, 2),
        bench: round(benchMs / 1000, 2),
        postgres: round(pgMs / 1000, 2),
        other: Number.isNaN(wharfMs) ? null : round((cpu1.machine.busy - cpu0.machine.busy - wharfMs - benchMs - pgMs) / 1000, 2),
      },
      vacuum: vacuums,
      purge: purge
        ? { rows: purge.rows(), finished: purgeReport !== null, seconds: round((purge.endedAt - purge.startedAt) / 1000, 2), batches: purgeReport?.batches ?? null, p99_during_ms: round(duringPurge!.p99), events_during: duringPurge!.count }
        : null,
      cpu_calibration_ms: { before: calibrationBefore, after: calibrationAfter },
      probe: probe
        ? {
            commits_per_s: round(probe.per_s),
            delivered_ratio: round(((arrivalsSorted.length / deliveryWindowMs) * 1000) / probe.per_s, 3),
            http_posts_per_s: httpProbe ? round(httpProbe.per_s) : null,
            http_cpu_us_per_post: httpProbe ? round(httpProbe.cpu_us_per_post) : null,
            // Two hops a webhook on the same cores, with no database and no work in Wharf at all.
            http_ceiling_per_s: httpProbe ? round(httpProbe.ceiling_per_s) : null,
            http_ceiling_ratio: httpProbe ? round(httpProbe.ceiling_per_s / probe.per_s, 3) : null,
          }
        : null,
      per_webhook: {
        postgres_cpu_us: round((pgOursMs * 1000) / Math.max(1, delivered)),
        postgres_cpu_all_processes_us: round((pgMs * 1000) / Math.max(1, delivered)),
        postgres_cpu_exited_us: round((pgExitedMs * 1000) / Math.max(1, delivered)),
        wal_bytes: round(check.wal_bytes / Math.max(1, delivered)),
        wharf_cpu_us: Number.isNaN(wharfMs) ? null : round((wharfMs * 1000) / Math.max(1, delivered)),
        // Drain mode runs ingest and dispatch in two processes: each one's share of the above.
        wharf_ingest_cpu_us: cpuApi && !Number.isNaN(wharfMs) ? round((cpuApi.wharf * 1000) / Math.max(1, delivered)) : null,
        wharf_dispatch_cpu_us: cpuApi && !Number.isNaN(wharfMs) ? round(((wharfMs - cpuApi.wharf) * 1000) / Math.max(1, delivered)) : null,
        wharf_user_share: wharfUserShare,
        postgres_user_share: pgUserShare,
        other_databases_commits: othersDuring,
      },
      tables: statDelta(stats0, stats1, delivered),
      history: tableSizes,
      fill_settled: fillSettled,
      generator: mode === 'rate' ? { lag_p99_ms: round(lagP.p99, 2), lag_max_ms: round(lagP.max, 1), max_in_flight: openLoopMaxInFlight } : null,
      hung: hungFigures,
      dispatch: dispatch1 && dispatchWays(dispatch0!, dispatch1),
      wal_records: opt['wal-records']
        ? await walRecords(dbc, check.wal_lsn.from, check.wal_lsn.to, delivered).catch((err: unknown) => {
            console.error(`--wal-records: ${(err as Error).message}`);
            return null;
          })
        : null,
    };

    // ------------------------------------------------------------ print
    const s = result;
    console.log('');
    console.log(`== wharf e2e bench: mode ${mode}${mode === 'rate' ? ` @ ${rate}/s` : ''}, ${n} events, concurrency ${concurrency}, ${endpointCount} endpoint(s) (${message}), warm-up ${warmup}`);
    console.log(`   wharf ${where}; dispatch batch_size ${dispatch.batch_size}, max_in_flight ${dispatch.max_in_flight}, endpoint_concurrency ${dispatch.endpoint_concurrency}, polling ${dispatch.polling_interval} s, linger ${dispatch.linger_ms ?? 'default'}, record linger ${dispatch.record_linger_ms ?? 'default'}; ingest linger ${ingestLingerMs ?? 'default'}; pool_size ${poolSize}; ${settings.cpus} CPUs`);
    console.log(`accepted      ${fmt(s.accepted_per_s)} events/s (${s.counts.accepted} × 201 over ${fmt(s.counts.posting_s, 2)} s; middle 80%: ${fmt(s.accepted_per_s_middle80)}/s)`);
    console.log(
      `delivered     ${fmt(s.delivered_per_s)} webhooks/s (${s.counts.delivered} over ${fmt(s.counts.delivery_window_s, 2)} s ${mode === 'drain' ? 'from dispatcher start' : 'from first POST'} to last delivery)`,
    );
    console.log(`  steady      ${fmt(s.delivered_per_s_middle80)} webhooks/s (middle 80% of deliveries)`);
    if (hungFigures) {
      console.log(
        `hung endpoint ${hungFigures.posted} events posted at ${hungRate}/s during the measurement; its receiver holds ${hungFigures.held_open} requests open (accepted ${hungFigures.accepted} in all)`,
      );
      console.log(`healthy endpoints' p99 POST→webhook: ${fmt(latency.p99)} ms (target < 1,000 ms while one endpoint hangs)`);
    }
    if (mode !== 'drain') {
      console.log(`POST→webhook  p50 ${fmt(latency.p50)} ms  p95 ${fmt(latency.p95)} ms  p99 ${fmt(latency.p99)} ms  max ${fmt(latency.max)} ms  (mean ${fmt(latency.mean)})`);
    }
    console.log(`POST latency  p50 ${fmt(postP.p50, 2)} ms  p99 ${fmt(postP.p99, 2)} ms  max ${fmt(postP.max)} ms`);
    if (s.generator) {
      console.log(`generator     lag p99 ${fmt(s.generator.lag_p99_ms, 2)} ms, max ${fmt(s.generator.lag_max_ms)} ms; max POSTs in flight ${s.generator.max_in_flight}`);
    }
    console.log(
      `errors        ${errorsTotal} (http ${JSON.stringify(httpErrors)}, network ${JSON.stringify(netErrors)}, missing ${missing}, duplicate ${duplicates}, unmatched ${s.errors.unmatched_deliveries})`,
    );
    console.log(`database      deliveries ${JSON.stringify(check.deliveries)}, attempts ${check.attempts}`);
    if (s.dispatch) {
      const d = s.dispatch;
      console.log(
        `dispatch      first attempts ${d.handed_over} handed over, ${d.queued} queued as jobs (${fmt((100 * d.queued) / Math.max(1, d.handed_over + d.queued), 1)} %); ` +
          `held back as the same attempt: endpoint_share ${d.held.endpoint_share}, project_share ${d.held.project_share}, rate_limit ${d.held.rate_limit}`,
      );
    }
    console.log(
      `  txns        ${check.write_xacts} write transactions (${fmt(check.write_xacts / Math.max(1, delivered), 2)} per webhook); ` +
        `ingest ${check.ingest_txns.count} × ${fmt(check.ingest_txns.mean_size)} events (max ${check.ingest_txns.max_size}); ` +
        `dispatch ${check.dispatch_txns.count} × ${fmt(check.dispatch_txns.mean_size)} deliveries (max ${check.dispatch_txns.max_size})`,
    );
    console.log(
      `  WAL         ${fmt(check.wal_mib)} MiB (${fmt((check.wal_mib * 1024 * 1024) / Math.max(1, delivered), 0)} bytes per webhook); ${check.checkpoints} checkpoint(s) started during the run`,
    );
    console.log(`peak RSS      ${fmt(s.peak_rss_mib.sampled)} MiB sampled every 100 ms; VmHWM ${fmt(s.peak_rss_mib.vmhwm)} MiB (${s.peak_rss_mib.process})`);
    const pct = (ms: number): string => `${fmt((ms / windowMs) * 100 * settings.cpus, 0)}% of a core`;
    console.log(
      `CPU           ${fmt(wallMs / 1000, 2)} s wall: machine busy ${fmt(s.cpu_s.machine_busy, 2)} s of ${fmt(s.cpu_s.machine_capacity, 2)} s; ` +
        `wharf ${Number.isNaN(wharfMs) ? 'n/a (in-process)' : `${fmt(wharfMs / 1000, 2)} s (${pct(wharfMs)})`}, ` +
        `bench+sink ${fmt(benchMs / 1000, 2)} s (${pct(benchMs)}), postgres (all backends) ${fmt(pgMs / 1000, 2)} s (${pct(pgMs)})` +
        (s.cpu_s.other === null ? '' : `, other ${fmt(s.cpu_s.other, 2)} s`),
    );
    console.log(`calibration   ${fmt(calibrationBefore)} ms before, ${fmt(calibrationAfter)} ms after (fixed CPU workload, best of 3; lower = faster machine)`);
    if (vacuums) console.log(`vacuum        ${vacuums.runs} runs, ${fmt(vacuums.total_ms / 1000, 2)} s in VACUUM (bench experiment)`);
    if (s.purge) {
      console.log(
        `purge         ${s.purge.rows} rows in ${fmt(s.purge.seconds, 2)} s (${fmt(s.purge.rows / Math.max(0.001, s.purge.seconds))} rows/s; ${s.purge.finished ? 'finished' : 'cut short when the run ended'}); ` +
          `POST→webhook p99 of the ${s.purge.events_during} deliveries posted meanwhile: ${fmt(s.purge.p99_during_ms)} ms`,
      );
    }
    const perHook = result.per_webhook;
    if (probe) {
      console.log(
        `limit probe   ${fmt(probe.per_s, 0)} commits/s; delivered/s ÷ commits/s = ${fmt(result.probe!.delivered_ratio * 100, 1)}% (steady: ${fmt((s.delivered_per_s_middle80 / probe.per_s) * 100, 1)}%; target ≥ 60%)`,
      );
      if (httpProbe) {
        console.log(
          `http ceiling  ${fmt(httpProbe.cpu_us_per_post, 0)} µs of CPU a loopback POST, two a webhook: at most ${fmt(httpProbe.ceiling_per_s, 0)} webhooks/s on all cores ` +
            `with no database and no Wharf work = ${fmt(result.probe!.http_ceiling_ratio! * 100, 1)}% of the commit probe; delivered/s is ${fmt((result.delivered_per_s / httpProbe.ceiling_per_s) * 100, 1)}% of it`,
        );
        // The CPU a webhook may cost in all for delivered/s to reach 60 % of the commit probe.
        const budget = httpProbe.capacity_us_per_s / (0.6 * probe.per_s);
        console.log(
          `60% budget    ${fmt(budget, 0)} µs of CPU a webhook in all; the two hops take ${fmt(2 * httpProbe.cpu_us_per_post, 0)} µs, ` +
            `leaving ${fmt(budget - 2 * httpProbe.cpu_us_per_post, 0)} µs for Postgres and all of Wharf's own work (Postgres's target alone is 150 µs)`,
        );
      }
    }
    console.log(
      `cost/webhook  postgres CPU ${fmt(perHook.postgres_cpu_us, 0)} µs (this database's backends; all postgres processes ${fmt(perHook.postgres_cpu_all_processes_us, 0)} µs; ` +
        `of both, ${fmt(perHook.postgres_cpu_exited_us, 0)} µs in processes that exited meanwhile), ` +
        `WAL ${fmt(perHook.wal_bytes, 0)} B, wharf CPU ${perHook.wharf_cpu_us === null ? 'n/a' : `${fmt(perHook.wharf_cpu_us, 0)} µs`} (targets ≤ 150 µs, ≤ 1,536 B, ≤ 200 µs)` +
        `; user time: postgres ${pgUserShare === null ? 'n/a' : `${fmt(pgUserShare * 100, 0)} %`}, wharf ${wharfUserShare === null ? 'n/a' : `${fmt(wharfUserShare * 100, 0)} %`}` +
        (perHook.wharf_ingest_cpu_us === null || perHook.wharf_dispatch_cpu_us === null
          ? ''
          : `; wharf: ingest ${fmt(perHook.wharf_ingest_cpu_us, 0)} µs, dispatch ${fmt(perHook.wharf_dispatch_cpu_us, 0)} µs`) +
        (othersDuring > 0 ? `; other databases committed ${othersDuring} transactions meanwhile (WAL is the whole server's)` : ''),
    );
    console.log('rows/webhook  table                         ins    upd    hot    del  indexes  index entries  index blocks  table B  index B');
    for (const t of result.tables.slice(0, 12)) {
      console.log(
        `              ${t.table.padEnd(28)} ${fmt(t.ins, 2).padStart(5)}  ${fmt(t.upd, 2).padStart(5)}  ${fmt(t.hot_upd, 2).padStart(5)}  ${fmt(t.del, 2).padStart(5)}  ${String(t.indexes).padStart(7)}  ${fmt(t.idx_entries, 2).padStart(13)}  ${fmt(t.idx_blks, 2).padStart(12)}  ${fmt(t.heap_bytes, 0).padStart(7)}  ${fmt(t.idx_bytes, 0).padStart(7)}`,
      );
    }
    console.log(
      `CPU per hook  wharf ${Number.isNaN(wharfMs) ? 'n/a' : perEventCpu(wharfMs)}, postgres ${perEventCpu(pgMs)}, bench+sink ${perEventCpu(benchMs)}, machine ${perEventCpu(cpu1.machine.busy - cpu0.machine.busy)}`,
    );
    if (result.wal_records) {
      console.log('WAL/webhook   record type                  records/webhook  bytes  of which full-page images');
      for (const r of result.wal_records.filter((x) => x.bytes_per_webhook + x.fpi_bytes_per_webhook >= 1)) {
        console.log(
          `              ${r.type.padEnd(28)} ${fmt(r.records / Math.max(1, delivered), 2).padStart(15)}  ${fmt(r.bytes_per_webhook + r.fpi_bytes_per_webhook, 0).padStart(5)}  ${fmt(r.fpi_bytes_per_webhook, 0).padStart(5)}`,
        );
      }
    }
    if (opt.timeline) printTimeline(firstSent, n, ok, arrivalsSorted, sampler.samples, sampler.ticks);
    if (!allIn || missing > 0) console.error(`FAILED: ${missing} of ${expectedDeliveries} deliveries missing after ${drainTimeoutMs / 1000} s`);
    console.log(JSON.stringify(result));
    return allIn && missing === 0 && !aborted ? 0 : 1;
  } finally {
    sampler?.stop();
    await dbc?.end().catch(() => undefined);
    await poster?.close().catch(() => undefined);
    await hungLoad?.close().catch(() => undefined);
    await wharf?.stop().catch((err: unknown) => console.error('stopping wharf failed:', err));
    await sink?.close().catch(() => undefined);
    await db?.drop().catch((err: unknown) => console.error('dropping the bench database failed:', err));
    clearTimeout(hardLimit);
  }
}

/**
 * The slowest webhooks, each with its event's delivery rows: from `created_at` (its ingest
 * transaction's start) to `first_attempted_at` (the recorder's transaction that recorded the first
 * answer); with --message broadcast, the longest of the event's deliveries.
 */
async function printSlowest(dbc: pg.Client, count: number, t0: number, ok: number[], postLat: Float64Array): Promise<void> {
  const slow: { i: number; ms: number }[] = [];
  for (const i of ok) {
    for (let k = 0; k < perEvent; k++) {
      const at = deliveredAt[i * perEvent + k]!;
      if (!Number.isNaN(at)) slow.push({ i, ms: at - sentAt[i]! });
    }
  }
  slow.sort((a, b) => b.ms - a.ms);
  const top = slow.slice(0, count);
  const { rows } = await dbc.query<{ event_id: string; attempts: number; ingest_to_record_ms: number }>(
    `SELECT event_id, max(attempts) AS attempts, max(extract(epoch FROM first_attempted_at - created_at)) * 1000 AS ingest_to_record_ms
       FROM deliveries WHERE event_id = ANY($1::uuid[]) GROUP BY event_id`,
    [top.map((x) => eventIds[x.i]!)],
  );
  const byEvent = new Map(rows.map((r) => [r.event_id, r]));
  console.log('slowest       posted_at_ms  post_ms  webhook_ms  attempts  ingest→record_ms  event');
  for (const x of top) {
    const r = byEvent.get(eventIds[x.i]!);
    console.log(
      `              ${fmt(sentAt[x.i]! - t0, 0).padStart(12)}  ${fmt(postLat[x.i]!, 1).padStart(7)}  ${fmt(x.ms, 1).padStart(10)}  ${String(r?.attempts ?? '-').padStart(8)}  ${(r ? fmt(Number(r.ingest_to_record_ms), 1) : '-').padStart(16)}  ${eventIds[x.i]}`,
    );
  }
}

function printTimeline(t0: number, n: number, ok: number[], arrivals: Float64Array, samples: Sample[], ticks: CpuTick[]): void {
  const buckets = new Map<number, { sent: number; ok: number; del: number; rss: number; cpu?: CpuTick }>();
  const b = (t: number) => {
    const k = Math.floor((t - t0) / 1000);
    let v = buckets.get(k);
    if (!v) buckets.set(k, (v = { sent: 0, ok: 0, del: 0, rss: 0 }));
    return v;
  };
  for (let i = 0; i < n; i++) b(sentAt[i]!).sent += 1;
  for (const i of ok) b(doneAt[i]!).ok += 1;
  for (const a of arrivals) b(a).del += 1;
  for (const s of samples) if (s.at >= t0) b(s.at).rss = Math.max(b(s.at).rss, s.rss);
  // A tick covers the second before it.
  for (const t of ticks) if (t.at - 1000 >= t0) b(t.at - 1000).cpu = t;
  console.log('timeline      second  sent/s  201/s  delivered/s  backlog  rss_MiB  cpu% wharf  postgres  machine');
  let backlog = 0;
  const last = [...buckets.keys()].reduce((m, k) => Math.max(m, k), 0);
  for (let k = 0; k <= last; k++) {
    const v = buckets.get(k) ?? { sent: 0, ok: 0, del: 0, rss: 0 };
    backlog += v.ok * perEvent - v.del;
    const c = v.cpu;
    const pctOf = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? '-' : fmt(ms / 10, 0)).padStart(8);
    console.log(
      `              ${String(k).padStart(6)}  ${String(v.sent).padStart(6)}  ${String(v.ok).padStart(5)}  ${String(v.del).padStart(11)}  ${String(backlog).padStart(7)}  ${fmt(mib(v.rss)).padStart(7)}  ` +
        `${pctOf(c?.wharf)}  ${pctOf(c?.postgres)}  ${pctOf(c?.machine)}`,
    );
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

/** What Wharf's dispatch counters say of the measured window: how first attempts went, and what was held back. */
function dispatchWays(before: Map<string, number>, after: Map<string, number>) {
  const delta = (key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const held = (reason: string): number => delta(`wharf_dispatch_held_back_total{reason="${reason}"}`);
  return {
    handed_over: delta('wharf_dispatch_first_attempts_total{way="handoff"}'),
    queued: delta('wharf_dispatch_first_attempts_total{way="queued"}'),
    held: { endpoint_share: held('endpoint_share'), project_share: held('project_share'), rate_limit: held('rate_limit') },
  };
}
