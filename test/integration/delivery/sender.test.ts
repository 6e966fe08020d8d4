/**
 * The sender, one HTTP attempt, against real receivers on loopback (node:http): what it answers
 * for each way a receiver can behave, and that its time bound covers the whole exchange: waiting
 * for a connection, the headers and a body that keeps trickling in. Nothing in undici is mocked.
 */
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSender } from '../../../src/delivery/sender.ts';
import type { SendRequest, SendResult } from '../../../src/delivery/sender.ts';

const MAX_BYTES = 1024;
const hung: ServerResponse[] = [];
const received: string[] = [];
let port = 0;
let agent: Agent;
let timers: NodeJS.Timeout[] = [];

const server = createServer((req, res) => {
  received.push(req.url!);
  req.resume();
  switch (req.url) {
    case '/ok':
      res.writeHead(201, { 'content-type': 'text/plain', 'x-receiver': 'yes' }).end('thanks');
      return;
    case '/busy':
      res.writeHead(503, { 'retry-after': '7' }).end('later');
      return;
    case '/early':
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.writeHead(200).end('after the hints');
      return;
    case '/endless': {
      // An answer that never ends: the sender keeps the first MAX_BYTES and stops reading.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 'a');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    case '/trickle': {
      // A byte every 50 ms: each gap is well inside the timeout, the whole never is.
      res.writeHead(200);
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write('.')), 50);
      timers.push(t);
      return;
    }
    default:
      hung.push(res); // /hang and /queued: no answer until the test releases it
  }
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  agent = new Agent({ connections: 1 });
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  timers = [];
  await agent.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function send(path: string, timeoutMs = 5_000, dispatcher = agent): Promise<SendResult> {
  const sender = createSender({ dispatcher, maxResponseBytes: MAX_BYTES });
  const req: SendRequest = { url: `http://127.0.0.1:${port}${path}`, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"a":1}'), timeoutMs };
  return sender.send(req);
}

describe('sender', () => {
  it('answers a 2xx with its status, headers and body', async () => {
    const r = await send('/ok');
    expect(r).toMatchObject({ ok: true, statusCode: 201, responseBody: 'thanks', error: null, errorCode: null, retryAfterSeconds: null });
    expect(r.responseHeaders).toMatchObject({ 'content-type': 'text/plain', 'x-receiver': 'yes' });
  });

  it('answers a non-2xx as a failure with its Retry-After', async () => {
    const r = await send('/busy');
    expect(r).toMatchObject({ ok: false, statusCode: 503, responseBody: 'later', error: 'endpoint answered 503', errorCode: null, retryAfterSeconds: 7 });
  });

  it('waits past 1xx informational answers for the final one', async () => {
    const r = await send('/early');
    expect(r).toMatchObject({ ok: true, statusCode: 200, responseBody: 'after the hints' });
  });

  it('keeps the start of an endless body and stops reading it', async () => {
    const started = Date.now();
    const r = await send('/endless', 10_000);
    expect(r).toMatchObject({ ok: true, statusCode: 200, errorCode: null });
    expect(r.responseBody).toBe('a'.repeat(MAX_BYTES));
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('bounds the whole exchange: a body trickling in forever times out', async () => {
    const started = Date.now();
    const r = await send('/trickle', 400);
    const took = Date.now() - started;
    expect(r).toMatchObject({ ok: false, statusCode: null, errorCode: 'WHARF_ERR_TIMEOUT', error: 'no complete answer within 400 ms' });
    expect(took).toBeGreaterThanOrEqual(380);
    expect(took).toBeLessThan(3_000);
  });

  it('times out a receiver that never answers', async () => {
    const r = await send('/hang', 300);
    expect(r).toMatchObject({ ok: false, statusCode: null, errorCode: 'WHARF_ERR_TIMEOUT' });
  });

  it('counts the wait for a connection in the bound, and never sends a request that timed out waiting', async () => {
    // The agent has one connection: the first request holds it, the second waits in its queue.
    const before = hung.length;
    const holder = send('/hang', 10_000);
    await expect.poll(() => hung.length).toBe(before + 1);
    const started = Date.now();
    const queued = await send('/queued', 300);
    expect(queued).toMatchObject({ ok: false, errorCode: 'WHARF_ERR_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(3_000);
    // Free the connection: the holder gets its answer, and the timed-out request is dropped.
    hung.at(-1)!.writeHead(200).end('released');
    expect(await holder).toMatchObject({ ok: true, responseBody: 'released' });
    expect(await send('/ok')).toMatchObject({ ok: true });
    expect(received.filter((u) => u === '/queued')).toEqual([]);
  });

  it('answers a refused connection and a bad URL with their codes', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const fresh = new Agent();
    try {
      const sender = createSender({ dispatcher: fresh, maxResponseBytes: MAX_BYTES });
      const refused = await sender.send({ url: `http://127.0.0.1:${closedPort}/`, headers: {}, body: Buffer.from('{}'), timeoutMs: 5_000 });
      expect(refused).toMatchObject({ ok: false, statusCode: null, errorCode: 'ECONNREFUSED' });
      const bad = await sender.send({ url: 'not a url', headers: {}, body: Buffer.from('{}'), timeoutMs: 5_000 });
      expect(bad).toMatchObject({ ok: false, statusCode: null, errorCode: 'ERR_INVALID_URL' });
    } finally {
      await fresh.close();
    }
  });
});
