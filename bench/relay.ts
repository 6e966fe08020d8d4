/**
 * The floor under Wharf's CPU per webhook in bench/e2e.ts: what a process that does nothing but
 * Wharf's two HTTP halves costs. Its child (the relay) takes the bench's POST /events on fastify,
 * as Wharf does (JSON body, a Bearer key checked by its SHA-256), answers 201 with the event in
 * Convoy's envelope, and sends the event to the sink signed, through Wharf's own request builder
 * and sender (undici's dispatch handler): no database, no batching, no queue, no retry state. Run
 * beside `bench/e2e.ts --mode max` with the same warm-up, what Wharf costs above this is the work
 * Wharf does between the two hops (Postgres, routing, recording, breakers, GC of all of it).
 *
 *   node bench/relay.ts [--events 40000] [--warmup 20000] [--concurrency 64] [--payload-bytes 256] [--rate R] [--server fastify|node]
 *
 * Like e2e.ts: the relay is a child with Wharf's Node flags (src/node-flags.ts), the sink answers
 * every POST `200 ok` from a worker thread, the poster is a closed loop of --concurrency undici
 * connections, and the relay's CPU is read from /proc over the measured events only.
 */
import { fork } from 'node:child_process';
import { hash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';
import { Agent, Pool } from 'undici';
import { uuidv7 } from '../src/core/ids.ts';
import { buildRequest } from '../src/delivery/request.ts';
import { createSender } from '../src/delivery/sender.ts';
import { NODE_FLAGS } from '../src/node-flags.ts';
import { procCpuMs, procMemory } from './lib/procfs.ts';
import type { SinkMessage } from './lib/sink.ts';
import { fmt, mib } from './lib/stats.ts';

const API_KEY = 'bench-relay-key';

if (process.argv[2] === '--relay') await relay(process.argv[3]!, process.argv[4]!);
else await main();

async function relay(sinkUrl: string, server: string): Promise<void> {
  const keyHash = hash('sha256', API_KEY, 'hex');
  const secret = randomBytes(32).toString('base64url');
  const sender = createSender({ dispatcher: new Agent({ connections: 128, keepAliveTimeout: 60_000 }), maxResponseBytes: 4096 });
  const event = (project: string, body: { endpoint_id: string; event_type: string; data: unknown }) => {
    const { endpoint_id, event_type, data } = body;
    const id = uuidv7();
    const { headers, body: payload } = buildRequest({
      eventId: id,
      deliveryId: uuidv7(),
      eventType: event_type,
      data: JSON.stringify(data),
      customHeaders: {},
      signature: { scheme: 'convoy', header: 'X-Convoy-Signature', hash: 'SHA256', encoding: 'hex' },
      advanced: true,
      secrets: [{ id: 's', value: secret, created_at: new Date(), expires_at: null }],
    });
    void sender.send({ url: sinkUrl, headers, body: payload, timeoutMs: 30_000 });
    const now = new Date().toISOString();
    return {
      status: true,
      message: 'Event created',
      data: {
        uid: id, id, project_id: project, endpoint_id, endpoints: [endpoint_id], event_type, source_id: null,
        owner_id: null, idempotency_key: null, headers: {}, data, deliveries: 1, created_at: now, updated_at: now,
      },
    };
  };
  const authorized = (auth: string | undefined) => auth !== undefined && auth.startsWith('Bearer ') && hash('sha256', auth.slice(7), 'hex') === keyHash;
  const PATH = /^\/api\/v1\/projects\/([^/]+)\/events$/;

  let close: () => Promise<void>;
  let url: string;
  if (server === 'fastify') {
    const app = Fastify({ logger: false });
    app.post<{ Params: { project: string }; Body: { endpoint_id: string; event_type: string; data: unknown } }>('/api/v1/projects/:project/events', async (req, res) => {
      if (!authorized(req.headers.authorization)) return res.code(401).send({ status: false, message: 'unauthorized' });
      return res.code(201).send(event(req.params.project, req.body));
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    close = () => app.close();
  } else {
    // node:http alone: the body read as chunks, JSON.parse, JSON.stringify, res.end.
    const http = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const m = req.method === 'POST' ? PATH.exec(req.url ?? '') : null;
        const code = m === null ? 404 : authorized(req.headers.authorization) ? 201 : 401;
        const out = code === 201 ? JSON.stringify(event(m![1]!, JSON.parse(Buffer.concat(chunks).toString('utf8')))) : '{"status":false}';
        res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(out) });
        res.end(out);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => http.close(() => resolve()));
  }
  process.send!({ url });
  process.on('message', () => void close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '40000' },
      warmup: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '64' },
      'payload-bytes': { type: 'string', default: '256' },
      rate: { type: 'string' },
      server: { type: 'string', default: 'fastify' },
    },
  });
  const events = Number(values.events);
  const warmup = Number(values.warmup);
  const concurrency = Number(values.concurrency);
  const server = values.server;
  if (server !== 'fastify' && server !== 'node') throw new Error(`--server: fastify or node, not ${server}`);
  // Events/s, measured events only (the warm-up runs closed loop): a relay at Wharf's own rate
  // wakes as often a webhook as Wharf does, where a closed loop lets it take several a wake-up.
  const rate = values.rate === undefined ? null : Number(values.rate);
  // The same body as e2e.ts's flat payload of --payload-bytes.
  const pad = 'x'.repeat(Math.max(0, Number(values['payload-bytes']) - 60));

  const sink = new Worker(new URL('./lib/sink.ts', import.meta.url));
  let arrived = 0;
  const sinkPort = await new Promise<number>((resolve) =>
    sink.on('message', (m: SinkMessage) => {
      if (m.type === 'listening') resolve(m.port);
      else if (m.type === 'arrivals') arrived += m.ids.length;
    }),
  );
  const child = fork(new URL(import.meta.url), ['--relay', `http://127.0.0.1:${sinkPort}/ep/0`, server], { execArgv: [...NODE_FLAGS], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve) => child.once('message', (m: { url: string }) => resolve(m.url)));
  const pool = new Pool(url, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };

  let seq = 0;
  const post = async (count: number, perSecond: number | null): Promise<void> => {
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          const slot = next++;
          if (perSecond !== null) {
            const wait = start + (slot * 1000) / perSecond - performance.now();
            if (wait > 1) await new Promise((r) => setTimeout(r, wait));
          }
          const body = `{"endpoint_id":"ep-0","event_type":"bench.event","data":{"seq":${seq++},"pad":"${pad}"}}`;
          const res = await pool.request({ path: '/api/v1/projects/default/events', method: 'POST', headers, body });
          await res.body.text();
          if (res.statusCode !== 201) throw new Error(`relay answered ${res.statusCode}`);
        }
      }),
    );
  };
  const delivered = async (n: number): Promise<void> => {
    const until = Date.now() + 60_000;
    while (arrived < n) {
      if (Date.now() > until) throw new Error(`only ${arrived} of ${n} webhooks arrived`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  await post(warmup, null);
  await delivered(warmup);
  const cpu0 = procCpuMs(child.pid!)!;
  const user0 = procCpuMs(child.pid!, 'user')!;
  const t0 = performance.now();
  await post(events, rate);
  await delivered(warmup + events);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = procCpuMs(child.pid!)! - cpu0;
  const user = procCpuMs(child.pid!, 'user')! - user0;
  const hwm = procMemory(child.pid!)?.hwm ?? 0;

  const perWebhook = (cpu * 1000) / events;
  console.log(`== relay floor (${server}): ${events} events ${rate === null ? 'closed loop' : `at ${rate}/s`} after a warm-up of ${warmup}, concurrency ${concurrency}`);
  console.log(`delivered     ${fmt(events / seconds)} webhooks/s`);
  console.log(`relay CPU     ${fmt(perWebhook)} µs a webhook (${Math.round((user / cpu) * 100)} % user time); peak RSS ${mib(hwm)} MiB`);
  console.log(JSON.stringify({ server, events, warmup, concurrency, rate, delivered_per_s: events / seconds, relay_cpu_us: perWebhook, user_share: user / cpu, peak_rss_mib: mib(hwm) }));

  child.send('stop');
  await pool.close();
  sink.postMessage({ type: 'close' });
  await new Promise((r) => child.once('exit', r));
  await sink.terminate();
}
