import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import amqp from 'amqplib';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyConvoySignature } from '../../src/sources/verifiers/convoy.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const API_KEY = 'e2e_key_0123456789abcdef0123456789';
const SW_KEY = 'e2e_sw_key_0123456789abcdef012345';

/** Starts `wharf start` as a user would and waits for its "listening" log line. */
async function startDaemon(configFile: string, env: Record<string, string>): Promise<{ proc: ChildProcess; url: string; logs: string[] }> {
  const proc = spawn(process.execPath, ['src/main.ts', 'start', '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start:\n${logs.join('')}`)), 60_000);
    proc.once('exit', (code) => reject(new Error(`daemon exited with ${code}:\n${logs.join('')}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'wharf listening' && entry.url) {
          clearTimeout(timer);
          resolveUrl(entry.url);
        }
      } catch {
        // not a log line
      }
    });
  });
  return { proc, url, logs };
}

describe('wharf daemon, end to end through the public API', () => {
  let dir: string;
  let rx: Receiver;
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  let hupQueue: string | null = null;
  const api = async (method: string, path: string, body?: unknown, key = API_KEY) => {
    const res = await fetch(`${daemon.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { status: boolean; message: string; data: any } };
  };

  beforeAll(async () => {
    rx = await startReceiver();
    dir = mkdtempSync(join(tmpdir(), 'wharf-e2e-'));
    const file = join(dir, 'wharf.yaml');
    writeFileSync(
      file,
      `server: { host: 127.0.0.1, port: 5005 }
egress: { allow: [127.0.0.0/8] }
projects:
  - id: default
    api_keys: ["\${WHARF_API_KEY}"]
  - id: sw
    api_keys: ["\${SW_KEY}"]
    signature: { scheme: standard-webhooks }
`,
    );
    // Embedded database in a fresh data dir: what `npm start` does on a bare machine.
    daemon = await startDaemon(file, { WHARF_API_KEY: API_KEY, SW_KEY, WHARF_PORT: '0', WHARF_DATA_DIR: join(dir, 'data'), WHARF_DATABASE_URL: '' });
  });

  afterAll(async () => {
    if (daemon?.proc.exitCode === null) daemon.proc.kill('SIGKILL');
    if (hupQueue) {
      const conn = await amqp.connect(process.env.WHARF_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
      await (await conn.createChannel()).deleteQueue(hupQueue);
      await conn.close();
    }
    await rx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers health and readiness, and refuses a wrong API key', async () => {
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${daemon.url}/readyz`);
    expect(ready.status).toBe(200);
    // Without the operator token (none is set here) readiness is the status alone.
    expect(await ready.json()).toEqual({ status: true, message: 'ready', data: null });
    expect((await fetch(`${daemon.url}/metrics`)).status).toBe(401);
    expect((await api('GET', '/api/v1/projects/default/endpoints', undefined, 'wrong')).status).toBe(401);
    expect((await fetch(`${daemon.url}/api/v1/projects/default/endpoints`)).status).toBe(401);
  });

  it('delivers single, fanout and broadcast events, signed, with body and custom headers intact', async () => {
    const mk = async (name: string, extra: Record<string, unknown>) => {
      const res = await api('POST', '/api/v1/projects/default/endpoints', { name, url: `${rx.url}/${name}`, ...extra });
      expect(res.status).toBe(201);
      return res.body.data as { uid: string; secrets: { value: string }[] };
    };
    const a = await mk('a', { owner_id: 'acme', secret: 'secret-of-endpoint-a' });
    const b = await mk('b', { owner_id: 'acme', advanced_signatures: false });
    const c = await mk('c', { owner_id: 'globex' });
    expect(a.secrets[0]!.value).toBe('secret-of-endpoint-a');
    // The secret is shown once: never again after creation.
    const fetched = await api('GET', `/api/v1/projects/default/endpoints/${a.uid}`);
    expect(JSON.stringify(fetched.body)).not.toContain('secret-of-endpoint-a');

    const data = { order: 42, name: 'Zoë ☃', nested: { list: [1, 2, 3] } };
    const single = await api('POST', '/api/v1/projects/default/events', {
      endpoint_id: a.uid, event_type: 'order.created', data, custom_headers: { 'X-Trace-Id': 'trace-1' },
    });
    expect(single.status).toBe(201);
    expect((await api('POST', '/api/v1/projects/default/events/fanout', { owner_id: 'acme', event_type: 'order.paid', data })).status).toBe(201);
    expect((await api('POST', '/api/v1/projects/default/events/broadcast', { event_type: 'system.notice', data })).status).toBe(201);

    const at = (name: string) => rx.requests.filter((r) => r.path === `/${name}`);
    await expect.poll(() => [at('a').length, at('b').length, at('c').length], { timeout: 15_000 }).toEqual([3, 2, 1]);

    for (const r of rx.requests.filter((x) => ['/a', '/b', '/c'].includes(x.path))) {
      expect(r.body.toString('utf8')).toBe(JSON.stringify(data));
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toMatch(/^Wharf\/\d+\.\d+\.\d+/);
    }
    const first = at('a').find((r) => r.headers['x-wharf-event-type'] === 'order.created')!;
    expect(first.headers['x-trace-id']).toBe('trace-1');
    // Advanced signature on a, checked by the verifier that passes Convoy's vectors.
    const advanced = verifyConvoySignature(first.headers['x-convoy-signature'] as string, first.body, {
      secrets: ['secret-of-endpoint-a'], hash: 'SHA256', encoding: 'hex', advanced: true, toleranceSeconds: 300,
    });
    expect(advanced).toEqual({ ok: true });
    expect(first.headers['x-convoy-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    // Simple signature on b; a wrong secret must fail.
    const bReq = at('b')[0]!;
    expect(bReq.headers['x-convoy-signature']).toMatch(/^[0-9a-f]{64}$/);
    const simple = (secret: string) =>
      verifyConvoySignature(bReq.headers['x-convoy-signature'] as string, bReq.body, {
        secrets: [secret], hash: 'SHA256', encoding: 'hex', advanced: false, toleranceSeconds: 300,
      });
    expect(simple(b.secrets[0]!.value)).toEqual({ ok: true });
    expect(simple('not-the-secret').ok).toBe(false);
    expect(c.uid).toBeTruthy();

    // Deliveries end as success, each with a recorded attempt.
    const deliveries = await api('GET', `/api/v1/projects/default/eventdeliveries?event_id=${single.body.data.uid}`);
    expect(deliveries.body.data.content).toHaveLength(1);
    await expect
      .poll(async () => (await api('GET', `/api/v1/projects/default/eventdeliveries/${deliveries.body.data.content[0].uid}`)).body.data.status)
      .toBe('Success');
  });

  it('signs standard-webhooks projects so the standardwebhooks library verifies them', async () => {
    const ep = await api('POST', '/api/v1/projects/sw/endpoints', { name: 'd', url: `${rx.url}/d` }, SW_KEY);
    expect(ep.status).toBe(201);
    const secret = ep.body.data.secrets[0].value as string;
    expect(secret).toMatch(/^whsec_/);
    const sent = await api('POST', '/api/v1/projects/sw/events', { endpoint_id: ep.body.data.uid, event_type: 'user.signup', data: { id: 'u1' } }, SW_KEY);
    expect(sent.status).toBe(201);
    await expect.poll(() => rx.requests.filter((r) => r.path === '/d').length, { timeout: 15_000 }).toBe(1);
    const r = rx.requests.find((x) => x.path === '/d')!;
    const headers = {
      'webhook-id': r.headers['webhook-id'] as string,
      'webhook-timestamp': r.headers['webhook-timestamp'] as string,
      'webhook-signature': r.headers['webhook-signature'] as string,
    };
    expect(headers['webhook-id']).toBe(sent.body.data.uid);
    expect(new Webhook(secret).verify(r.body.toString('utf8'), headers)).toEqual({ id: 'u1' });
    expect(() => new Webhook(secret).verify('{"id":"u2"}', headers)).toThrow();
  });

  it('SIGHUP applies a source added to the YAML without a restart (embedded database, real RabbitMQ)', async () => {
    const queue = `wharf-test-e2e-${Date.now()}`;
    const amqpUrl = process.env.WHARF_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
    writeFileSync(
      join(dir, 'wharf.yaml'),
      `server: { host: 127.0.0.1, port: 5005 }
egress: { allow: [127.0.0.0/8] }
projects:
  - id: default
    api_keys: ["\${WHARF_API_KEY}"]
    sources:
      - name: hup
        type: rabbitmq
        rabbitmq: { url: "${amqpUrl}", queue: ${queue} }
  - id: sw
    api_keys: ["\${SW_KEY}"]
    signature: { scheme: standard-webhooks }
`,
    );
    daemon.proc.kill('SIGHUP');
    const conn = await amqp.connect(amqpUrl);
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(queue, { durable: true });
      ch.sendToQueue(queue, Buffer.from(JSON.stringify({ event_type: 'hup.test', data: { via: 'rabbitmq' } })), { persistent: true });
      await ch.waitForConfirms();
      const deadline = Date.now() + 30_000;
      let events: { event_type: string; data: unknown }[] = [];
      while (events.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        events = (await api('GET', '/api/v1/projects/default/events?source_id=hup')).body.data.content;
      }
      expect(events.map((e) => [e.event_type, e.data])).toEqual([['hup.test', { via: 'rabbitmq' }]]);
      expect(daemon.logs.join('')).toContain('config reloaded');
      hupQueue = queue;
    } finally {
      await conn.close();
    }
  });

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((res) => daemon.proc.once('exit', (code) => res(code)));
    daemon.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
