import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  at: number;
}

export interface Answer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (to provoke timeouts). */
  delayMs?: number;
}

export interface Receiver {
  url: string;
  /** Everything but Wharf's reachability pings, oldest first. */
  requests: Received[];
  /** Wharf's reachability pings (`X-Wharf-Event-Type: ping`), answered like any request. */
  pings: Received[];
  /** How to answer from now on; default 200 "ok". */
  answer(fn: (req: Received) => Answer): void;
  close(): Promise<void>;
}

/** A local HTTP server standing in for a customer's endpoint: records everything, answers as told. */
export async function startReceiver(): Promise<Receiver> {
  let answer: (req: Received) => Answer = () => ({ status: 200, body: 'ok' });
  const requests: Received[] = [];
  const pings: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      (req.headers['x-wharf-event-type'] === 'ping' ? pings : requests).push(r);
      const a = answer(r);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers });
        res.end(a.body ?? '');
      };
      if (a.delayMs) setTimeout(send, a.delayMs);
      else send();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    pings,
    answer(fn) {
      answer = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers every request after `delayMs` and counts how many it holds open at once at most. */
export function countOpen(rx: Receiver, delayMs: number): { max: () => number } {
  let open = 0;
  let max = 0;
  rx.answer(() => {
    open += 1;
    max = Math.max(max, open);
    // Registered before the receiver's own answer timer, so it runs first: never an undercount.
    setTimeout(() => (open -= 1), delayMs);
    return { status: 200, delayMs };
  });
  return { max: () => max };
}
