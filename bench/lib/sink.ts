/**
 * The webhook sink for bench/e2e.ts, run in a worker thread so that its arrival timestamps are
 * not held up by the load generator on the main thread. It answers every POST 200 and reports,
 * in batches every 20 ms, each arrival as (X-Wharf-Event-Id, endpoint index from the path, time,
 * and the X-Bench-Seq header when there is one).
 * Times are absolute (performance.timeOrigin + performance.now()), comparable across threads.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort } from 'node:worker_threads';

export type SinkMessage =
  | { type: 'listening'; port: number }
  | { type: 'arrivals'; ids: string[]; endpoints: Int32Array; at: Float64Array; seqs: Int32Array; missingHeader: number }
  | { type: 'closed' };

if (!parentPort) throw new Error('bench/lib/sink.ts runs as a worker thread');
const port = parentPort;

let ids: string[] = [];
let endpoints: number[] = [];
let at: number[] = [];
let seqs: number[] = [];
let missingHeader = 0;

const flush = (): void => {
  if (ids.length === 0 && missingHeader === 0) return;
  const msg: SinkMessage = {
    type: 'arrivals',
    ids,
    endpoints: Int32Array.from(endpoints),
    at: Float64Array.from(at),
    seqs: Int32Array.from(seqs),
    missingHeader,
  };
  port.postMessage(msg);
  ids = [];
  endpoints = [];
  at = [];
  seqs = [];
  missingHeader = 0;
};
const timer = setInterval(flush, 20);

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const now = performance.timeOrigin + performance.now();
    const id = req.headers['x-wharf-event-id'];
    // Creating an endpoint pings it (src/delivery/ping.ts); that request is no event's delivery.
    if (req.headers['x-wharf-event-type'] === 'ping') {
      // answered below, counted nowhere
    } else if (typeof id === 'string') {
      ids.push(id);
      // Endpoint URLs are `/ep/<index>`.
      const m = /^\/ep\/(\d+)/.exec(req.url ?? '');
      endpoints.push(m ? Number(m[1]) : -1);
      at.push(now);
      // bench/brokers.ts numbers its messages in a forwarded header.
      const seq = req.headers['x-bench-seq'];
      seqs.push(typeof seq === 'string' ? Number(seq) : -1);
    } else {
      missingHeader += 1;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
});
server.headersTimeout = 60_000;
server.requestTimeout = 0;

server.listen(0, '127.0.0.1', () => {
  const msg: SinkMessage = { type: 'listening', port: (server.address() as AddressInfo).port };
  port.postMessage(msg);
});

port.on('message', (m: { type: string }) => {
  if (m.type !== 'close') return;
  clearInterval(timer);
  flush();
  server.closeAllConnections();
  server.close(() => {
    port.postMessage({ type: 'closed' } satisfies SinkMessage);
    port.close();
  });
});
