/**
 * Broker sources made with a project's API key cannot borrow the operator's identity or network,
 * nor read another project's queue (issue 12, item 3): the API creates broker sources only of the
 * types the operator opened (`ingest.api_broker_types`), each with credentials of its own; every
 * broker connection passes the egress guard; one broker address belongs to one project.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';

const AMQP = process.env.WHARF_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const queue = (name: string) => `wharf-policy-${name}-${process.pid}-${Date.now()}`;

describe('broker sources through the API, by default', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.stop());

  it.each(['rabbitmq', 'kafka', 'sqs', 'pubsub'])('refuses a %s source with 403 naming the setting; HTTP sources are fine', async (type) => {
    const res = await t.api('POST', '/sources', { name: 'b', type, [type]: {} });
    expect(res.status, res.text).toBe(403);
    expect(res.body.data.field).toBe('type');
    expect(res.body.message).toContain('ingest.api_broker_types');
    expect((await t.api('GET', '/sources')).body.data.content).toHaveLength(0);
    const http = await t.api('POST', '/sources', { name: 'h', type: 'http', event_type: 'hook', http: { verifier: { type: 'none' } } });
    expect(http.status, http.text).toBe(201);
    await t.api('DELETE', `/sources/${http.body.data.uid}`);
  });
});

describe('broker sources through the API, where the operator allows them', () => {
  let t: TestApp;
  let decoy: Server;
  let decoyConnections = 0;
  beforeAll(async () => {
    decoy = createServer((s) => {
      decoyConnections += 1;
      s.destroy();
    });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    t = await startTestApp({
      ingest: { api_broker_types: ['rabbitmq', 'sqs', 'pubsub'] },
      projects: [{ id: 'alpha' }, { id: 'beta' }],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise<void>((r) => decoy.close(() => r()));
  });

  it("refuses an SQS source without credentials of its own, and any use of Wharf's identity", async () => {
    const bare = await t.api('POST', '/sources', { name: 's', type: 'sqs', sqs: { queue_url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders' } }, 'alpha');
    expect(bare.status, bare.text).toBe(400);
    expect(bare.body.data.field).toBe('sqs.credentials');
    const ambient = await t.api(
      'POST',
      '/sources',
      { name: 's', type: 'sqs', sqs: { queue_url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders', use_default_credentials: true } },
      'alpha',
    );
    expect(ambient.status, ambient.text).toBe(400);
    expect(ambient.body.data.field).toBe('sqs.use_default_credentials');
    const google = await t.api('POST', '/sources', { name: 'g', type: 'pubsub', pubsub: { project_id: 'p', subscription: 'sub', use_default_credentials: true } }, 'alpha');
    expect(google.status, google.text).toBe(400);
    expect(google.body.data.field).toBe('pubsub.use_default_credentials');
  });

  it("refuses a RabbitMQ URL without the source's own user and password", async () => {
    const res = await t.api('POST', '/sources', { name: 'r', type: 'rabbitmq', rabbitmq: { url: 'amqp://127.0.0.1:5672', queue: 'q' } }, 'alpha');
    expect(res.status, res.text).toBe(400);
    expect(res.body.data.field).toBe('rabbitmq.url');
  });

  it('connects through the egress guard: a broker on a refused address is never dialled', async () => {
    // The test app allows loopback for its receivers; this source's project is judged by the same
    // policy, so point it at an address the default policy refuses and that nothing may reach.
    const { port } = decoy.address() as { port: number };
    for (const host of ['169.254.169.254', '10.255.255.1']) {
      const res = await t.api('POST', '/sources', { name: `blocked-${host}`, type: 'rabbitmq', rabbitmq: { url: `amqp://u:p@${host}:${port}`, queue: 'q' } }, 'alpha');
      expect(res.status, res.text).toBe(201);
      await expect
        .poll(async () => (await t.api('GET', `/sources/${res.body.data.uid}`, undefined, 'alpha')).body.data.status?.last_error ?? '', { timeout: 10_000 })
        .toMatch(new RegExp(`egress to ${host.replaceAll('.', '\\.')} refused: .* allow it in egress\\.allow`));
      await t.api('DELETE', `/sources/${res.body.data.uid}`, undefined, 'alpha');
    }
    expect(decoyConnections).toBe(0);
  });

  it('binds a broker queue to one project: a second project gets 409 until the first lets go', async () => {
    const q = queue('claim');
    const mine = await t.api('POST', '/sources', { name: 'mine', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } }, 'alpha');
    expect(mine.status, mine.text).toBe(201);
    // The same queue under another spelling of the same address is the same queue.
    const url = new URL(AMQP);
    const theirs = await t.api('POST', '/sources', { name: 'theirs', type: 'rabbitmq', rabbitmq: { url: `amqp://${url.username}:${url.password}@${url.hostname.toUpperCase()}:${url.port || 5672}/`, queue: q } }, 'beta');
    expect(theirs.status, theirs.text).toBe(409);
    expect(theirs.body.message).toContain('another project');
    expect(theirs.body.message).not.toContain(url.password);
    // Moving an existing source of the other project onto it is refused as well.
    const other = await t.api('POST', '/sources', { name: 'other', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: queue('other') } }, 'beta');
    expect(other.status, other.text).toBe(201);
    const moved = await t.api('PUT', `/sources/${other.body.data.uid}`, { name: 'other', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } }, 'beta');
    expect(moved.status, moved.text).toBe(409);
    // The same project may read its queue twice (competing consumers); once the owner deletes, it is free.
    const twice = await t.api('POST', '/sources', { name: 'mine-too', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } }, 'alpha');
    expect(twice.status, twice.text).toBe(201);
    await t.api('DELETE', `/sources/${mine.body.data.uid}`, undefined, 'alpha');
    await t.api('DELETE', `/sources/${twice.body.data.uid}`, undefined, 'alpha');
    const now = await t.api('POST', '/sources', { name: 'theirs', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } }, 'beta');
    expect(now.status, now.text).toBe(201);
  });
});

describe('broker addresses in the config file', () => {
  it('refuses two projects reading one queue, naming the source', async () => {
    const q = queue('yaml');
    const source = { name: 'q', type: 'rabbitmq', rabbitmq: { url: AMQP, queue: q } };
    await expect(startTestApp({ projects: [{ id: 'one', sources: [source] }, { id: 'two', sources: [source] }] })).rejects.toThrow(
      /projects\[1\]\.sources\[0\]: another project's source already reads rabbitmq:\/\/127\.0\.0\.1:5672\/%2F\/wharf-policy-yaml/,
    );
  });
});
