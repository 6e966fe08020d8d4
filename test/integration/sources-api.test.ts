/**
 * The sources API and YAML sources, with RabbitMQ as the broker: definitions are checked, credentials
 * never come back, and adding, changing or removing a source takes effect without a restart.
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { eventually } from './connectors/conformance.ts';

const AMQP = process.env.WHARF_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

async function withChannel<T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> {
  const conn = await amqp.connect(AMQP);
  try {
    return await fn(await conn.createChannel());
  } finally {
    await conn.close();
  }
}
async function publish(queue: string, body: unknown): Promise<void> {
  const conn = await amqp.connect(AMQP);
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    ch.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { persistent: true, messageId: randomBytes(8).toString('hex') });
    await ch.waitForConfirms();
  } finally {
    await conn.close();
  }
}
const depth = (queue: string) => withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
const queue = (what: string) => `wharf-test-api-${what}-${randomBytes(4).toString('hex')}`;
const event = (seq: number) => ({ endpoint_id: 'ep', event_type: 'api.test', data: { seq } });

describe('sources API', () => {
  let t: TestApp;
  const yamlQueue = queue('yaml');
  const queues: string[] = [yamlQueue];

  beforeAll(async () => {
    t = await startTestApp({
      // The operator opens RabbitMQ sources to the API (by default only HTTP sources are).
      ingest: { api_broker_types: ['rabbitmq'] },
      projects: [
        {
          id: 'default',
          endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }],
          sources: [{ name: 'from-yaml', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: yamlQueue, prefetch: 10 } }],
        },
        { id: 'other' },
      ],
    });
    await t.app.pool.query(`UPDATE endpoints SET status = 'paused'`); // nothing is sent
  });
  afterAll(async () => {
    await t?.stop();
    await withChannel(async (ch) => {
      for (const q of queues) await ch.deleteQueue(q);
    }).catch(() => undefined);
  });

  const eventsOf = async (sourceId: string) =>
    (await t.app.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE source_id = $1', [sourceId])).rows[0]!.n;
  const state = async (id: string) => (await t.api('GET', `/sources/${id}`)).body?.data?.status?.state ?? null;

  it('refuses a bad definition with the field that is wrong, never echoing credentials', async () => {
    const cases: [unknown, number, string][] = [
      [{ name: 'x' }, 400, 'type: is required'],
      [{ name: 'x', type: 'mqtt', mqtt: {} }, 400, 'type: must be one of kafka, sqs, pubsub, rabbitmq, http'],
      [{ name: 'x', type: 'rabbitmq' }, 400, 'rabbitmq: is required'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP } }, 400, 'rabbitmq.queue: is required'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: 'http://guest:hunter2@h/', queue: 'q' } }, 400, 'rabbitmq.url: must be an amqp:// or amqps:// URL'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q', prefetch: 0 } }, 400, 'rabbitmq.prefetch: must be an integer from 1 to 65535'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q', colour: 'red' } }, 400, 'rabbitmq.colour: unknown field'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q' }, kafka: {} }, 400, 'kafka: does not belong to a source of type rabbitmq'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q' }, format: 'raw' }, 400, 'event_type: is required for format raw'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q' }, event_type: 'a' }, 400, 'event_type: applies to format raw only'],
      [{ name: 'x', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'q' }, max_body_bytes: -1 }, 400, 'max_body_bytes: must be an integer'],
    ];
    for (const [body, status, message] of cases) {
      const res = await t.api('POST', '/sources', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.message).toContain(message);
      expect(res.text).not.toContain('hunter2');
    }
  });

  it('creates a source that consumes at once, shows it without its credentials, and lists it per project', async () => {
    const q = queue('create');
    queues.push(q);
    const res = await t.api('POST', '/sources', { name: 'orders', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } });
    expect(res.status, res.text).toBe(201);
    const id = res.body.data.uid;
    expect(res.body.data).toMatchObject({ name: 'orders', type: 'rabbitmq', format: 'envelope', from_config: false, max_body_bytes: 1_048_576 });
    expect(res.body.data.rabbitmq).toMatchObject({ url: '********', queue: q, prefetch: 200, workers: 1 });
    expect(res.text).not.toContain('guest:guest');

    await eventually(() => state(id), (s) => s === 'running', 20_000, 'running');
    await publish(q, event(1));
    await eventually(() => eventsOf(id), (n) => n === 1, 20_000, 'one event');

    const list = await t.api('GET', '/sources');
    expect(list.body.data.content.map((s: { uid: string }) => s.uid).sort()).toEqual(['from-yaml', id].sort());
    expect(list.text).not.toContain('guest:guest');
    expect((await t.api('GET', '/sources', undefined, 'other')).body.data.content).toEqual([]);
    expect((await t.api('GET', `/sources/${id}`, undefined, 'other')).status).toBe(404);

    // Stored encrypted: the database row does not hold the URL either.
    const { rows } = await t.app.pool.query('SELECT config_enc FROM sources WHERE id = $1', [id]);
    expect(rows[0].config_enc).not.toContain('guest');
  });

  it('of two creations with the same id at once, one is created and the other gets 409', async () => {
    const q = queue('race');
    queues.push(q);
    const make = (name: string) => t.api('POST', '/sources', { id: 'racing', name, type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } });
    const answers = await Promise.all([make('first'), make('second')]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const winner = answers.find((a) => a.status === 201)!.body.data.name;
    expect(answers.find((a) => a.status === 409)!.body.message).toContain('"racing" already exists');
    expect((await t.api('GET', '/sources/racing')).body.data.name).toBe(winner);
    expect((await t.api('DELETE', '/sources/racing')).status).toBe(200);
  });

  it('PUT with the redacted URL keeps the stored one; a new queue takes effect without a restart', async () => {
    const first = queue('put1');
    const second = queue('put2');
    queues.push(first, second);
    const created = await t.api('POST', '/sources', { name: 'moving', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: first } });
    const id = created.body.data.uid;
    await eventually(() => state(id), (s) => s === 'running', 20_000, 'running');

    const { uid: _uid, status: _s, project_id: _p, from_config: _f, created_at: _c, updated_at: _u, ...definition } = created.body.data;
    const updated = await t.api('PUT', `/sources/${id}`, { ...definition, rabbitmq: { ...definition.rabbitmq, queue: second } });
    expect(updated.status, updated.text).toBe(202);
    expect(updated.body.data.rabbitmq.url).toBe('********');

    await publish(second, event(2));
    await eventually(() => eventsOf(id), (n) => n === 1, 20_000, 'event from the new queue');
    await publish(first, event(3));
    await new Promise((r) => setTimeout(r, 1000));
    expect(await depth(first)).toBe(1); // the old queue is no longer consumed
    expect(await eventsOf(id)).toBe(1);
  });

  it('DELETE stops consuming at once and the source leaves /readyz', async () => {
    const q = queue('delete');
    queues.push(q);
    const id = (await t.api('POST', '/sources', { name: 'doomed', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } })).body.data.uid;
    await eventually(() => state(id), (s) => s === 'running', 20_000, 'running');
    const ready = await t.operator('GET', '/readyz');
    expect(ready.body.data.sources.map((s: { id: string }) => s.id)).toContain(id);

    expect((await t.api('DELETE', `/sources/${id}`)).status).toBe(200);
    expect((await t.api('GET', `/sources/${id}`)).status).toBe(404);
    expect((await t.operator('GET', '/readyz')).body.data.sources.map((s: { id: string }) => s.id)).not.toContain(id);
    await publish(q, event(4));
    await new Promise((r) => setTimeout(r, 1000));
    expect(await depth(q)).toBe(1);
  });

  it('a YAML source runs, shows from_config, and cannot be changed through the API', async () => {
    await eventually(() => state('from-yaml'), (s) => s === 'running', 20_000, 'running');
    const got = await t.api('GET', '/sources/from-yaml');
    expect(got.body.data).toMatchObject({ from_config: true, rabbitmq: { url: '********', queue: yamlQueue, prefetch: 10 } });
    expect((await t.api('PUT', '/sources/from-yaml', { name: 'from-yaml', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: 'x' } })).status).toBe(409);
    expect((await t.api('DELETE', '/sources/from-yaml')).status).toBe(409);
    await publish(yamlQueue, event(5));
    await eventually(() => eventsOf('from-yaml'), (n) => n === 1, 20_000, 'event from the YAML source');
  });

  it('a queue the broker refuses is reported and retried, and the process carries on', async () => {
    const q = queue('missing');
    queues.push(q);
    // declare_queue: false on a queue that does not exist: the broker closes the channel with 404.
    const res = await t.api('POST', '/sources', { name: 'missing', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q, declare_queue: false } });
    expect(res.status, res.text).toBe(201);
    const id = res.body.data.uid;
    const status = async () => (await t.api('GET', `/sources/${id}`)).body.data.status;
    await eventually(status, (s) => s?.state === 'connecting' && /NOT_FOUND|404/.test(s.last_error ?? ''), 20_000, 'the refusal reported');
    await withChannel((ch) => ch.assertQueue(q, { durable: true }));
    await eventually(status, (s) => s?.state === 'running', 30_000, 'running once the queue exists');
    await publish(q, event(6));
    await eventually(() => eventsOf(id), (n) => n === 1, 20_000, 'an event from the late queue');
    await t.api('DELETE', `/sources/${id}`);
  });

  it('/metrics shows each source state and message counts', async () => {
    const text = (await t.operator('GET', '/metrics')).text;
    expect(text).toMatch(/wharf_source_state\{project="default",source="from-yaml",type="rabbitmq",state="running"\} 1/);
    expect(text).toMatch(/wharf_source_messages_total\{project="default",source="from-yaml",type="rabbitmq",outcome="stored"\} 1/);
    expect(text).toContain('wharf_source_in_flight');
  });
});
