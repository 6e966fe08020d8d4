/**
 * The delivery sender alone: CPU of this process for each signed-size POST to a local receiver
 * (which runs in a child process, so its work is not counted), through Wharf's sender and, for
 * reference, through undici's `request()` reading the body as a stream on the same agent.
 *
 *   node bench/sender.ts [--requests 20000] [--rounds 6] [--concurrency 64]
 *
 * Rounds alternate between the two so that a machine whose speed drifts moves both alike.
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { createSender, type SendRequest } from '../src/delivery/sender.ts';

if (process.argv[2] === '--receiver') {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
} else {
  const { values } = parseArgs({
    options: { requests: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '6' }, concurrency: { type: 'string', default: '64' } },
  });
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  const concurrency = Number(values.concurrency);
  const receiver = fork(new URL(import.meta.url), ['--receiver']);
  const port = await new Promise<number>((resolve) => receiver.once('message', (m) => resolve(m as number)));
  const agent = new Agent({ connections: 256, keepAliveTimeout: 60_000 });
  const sender = createSender({ dispatcher: agent, maxResponseBytes: 4096 });
  const url = `http://127.0.0.1:${port}/hook`;
  const body = Buffer.from(JSON.stringify({ data: 'x'.repeat(256) }));
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'Wharf/bench',
    'x-convoy-signature': 'a'.repeat(64),
    'x-convoy-event-id': '0190c8f2-7a2b-7000-8000-000000000000',
  };
  const req: SendRequest = { url, headers, body, timeoutMs: 5000 };
  const variants: Record<string, () => Promise<boolean>> = {
    'wharf sender': async () => (await sender.send(req)).ok,
    'undici request()': async () => {
      const res = await request(url, { method: 'POST', headers, body, dispatcher: agent, signal: AbortSignal.timeout(5000) });
      await res.body.text();
      return res.statusCode === 200;
    },
  };
  const run = async (send: () => Promise<boolean>, n: number) => {
    let started = 0;
    let failed = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (started < n) {
          started++;
          if (!(await send())) failed++;
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    if (failed > 0) throw new Error(`${failed} of ${n} requests failed`);
    return { us: (cpu.user + cpu.system) / n, perS: (n / (performance.now() - t0)) * 1000 };
  };
  for (const send of Object.values(variants)) await run(send, Math.min(5000, requests)); // warm-up
  const figures: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, send] of Object.entries(variants)) {
      const { us } = await run(send, requests);
      (figures[name] ??= []).push(Math.round(us));
    }
  }
  for (const [name, us] of Object.entries(figures)) {
    const sorted = [...us].sort((a, b) => a - b);
    console.log(`${name.padEnd(18)} CPU a request: median ${sorted[Math.floor(sorted.length / 2)]} µs (rounds: ${us.join(', ')})`);
  }
  console.log(JSON.stringify(figures));
  receiver.kill();
  await agent.close();
}
