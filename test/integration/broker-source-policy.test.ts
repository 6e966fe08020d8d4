/**
 * Broker sources made with a project's API key cannot borrow the operator's identity or network,
 * nor read another project's queue (issue 12, item 3): the API creates broker sources only of the
 * types the operator opened (`ingest.api_broker_types`), each with credentials of its own; every
 * broker connection passes the egress guard; one broker address belongs to one project.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSourceManager, type SourceManager } from '../../src/sources/manager.ts';
import { parseSource, type SourceDefinition } from '../../src/sources/settings.ts';
import { createSecretBox } from '../../src/store/crypto.ts';
import { saveSource } from '../../src/store/sources.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { migratedDatabase } from '../harness/db.ts';
import { LOOPBACK_EGRESS } from '../harness/egress.ts';

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
      ingest: { api_broker_types: ['rabbitmq', 'sqs', 'pubsub', 'kafka'] },
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

  it('refuses, when saving, a broker host the egress policy refuses, naming the key', async () => {
    const { port } = decoy.address() as { port: number };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ type: 'rabbitmq', rabbitmq: { url: `amqp://u:p@169.254.169.254:${port}`, queue: 'q' } }, 'rabbitmq.url', '169.254.169.254'],
      [{ type: 'rabbitmq', rabbitmq: { url: `amqp://u:p@10.255.255.1:${port}`, queue: 'q' } }, 'rabbitmq.url', '10.255.255.1'],
      [
        { type: 'sqs', sqs: { queue_url: 'http://10.0.0.7/000000000000/q', region: 'us-east-1', credentials: { access_key_id: 'AKIDEXAMPLE', secret_access_key: 'secret-secret-secret' } } },
        'sqs.queue_url',
        '10.0.0.7',
      ],
      [{ type: 'pubsub', pubsub: { project_id: 'p', subscription: 'sub-1', emulator_host: `169.254.169.254:${port}` } }, 'pubsub.emulator_host', '169.254.169.254'],
    ];
    for (const [body, field, host] of cases) {
      const res = await t.api('POST', '/sources', { name: `blocked-${field}`, ...body }, 'alpha');
      expect(res.status, res.text).toBe(400);
      expect(res.body.data.field).toBe(field);
      expect(res.body.message).toContain(`egress to ${host} refused`);
      expect(res.body.message).not.toContain('secret-secret-secret');
    }
    expect((await t.api('GET', '/sources', undefined, 'alpha')).body.data.content).toHaveLength(0);
    expect(decoyConnections).toBe(0);
  });

  it('binds a Kafka topic and consumer group to one project, however the cluster is named', async () => {
    const kafka = (brokers: string[], group = 'orders') => ({ name: 'k', type: 'kafka', kafka: { brokers, topic: 'orders', consumer_group: group } });
    const mine = await t.api('POST', '/sources', kafka(['127.0.0.1:1', '127.0.0.1:2']), 'alpha');
    expect(mine.status, mine.text).toBe(201);
    // Another bootstrap list that shares a broker with the first names the same cluster.
    const theirs = await t.api('POST', '/sources', kafka(['127.0.0.1:2', '127.0.0.1:3']), 'beta');
    expect(theirs.status, theirs.text).toBe(409);
    expect(theirs.body.message).toContain('another project');
    const otherGroup = await t.api('POST', '/sources', kafka(['127.0.0.1:2'], 'billing'), 'beta');
    expect(otherGroup.status, otherGroup.text).toBe(201);
    await t.api('DELETE', `/sources/${mine.body.data.uid}`, undefined, 'alpha');
    await t.api('DELETE', `/sources/${otherGroup.body.data.uid}`, undefined, 'beta');
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

describe('broker addresses claimed under an older spelling', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ingest: { api_broker_types: ['kafka'] }, projects: [{ id: 'alpha' }, { id: 'beta' }] });
  });
  afterAll(async () => t?.stop());

  it('are claimed again as they are spelled today when Wharf starts', async () => {
    const kafka = (brokers: string[]) => ({ name: 'k', type: 'kafka', kafka: { brokers, topic: 'orders', consumer_group: 'g' } });
    const mine = await t.api('POST', '/sources', kafka(['127.0.0.1:1', '127.0.0.1:2']), 'alpha');
    expect(mine.status, mine.text).toBe(201);
    // How the first version of the claims spelled a Kafka address: the whole bootstrap list.
    await t.app.pool.query(`DELETE FROM broker_claims WHERE project_id = 'alpha'`);
    await t.app.pool.query(`INSERT INTO broker_claims (project_id, source_id, address) VALUES ('alpha', $1, 'kafka://127.0.0.1:1,127.0.0.1:2/orders?group=g')`, [mine.body.data.uid]);
    await t.restart();
    const theirs = await t.api('POST', '/sources', kafka(['127.0.0.1:2']), 'beta');
    expect(theirs.status, theirs.text).toBe(409);
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

/** A TCP listener standing in for a broker that must never be reached: it counts who connects. */
async function countingListener(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((s) => {
    n += 1;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('broker connections and the egress policy, whoever declared the source', () => {
  let t: TestApp;
  let broker: Awaited<ReturnType<typeof countingListener>>;
  const sqs = (host: string) => ({
    queue_url: `http://${host}/000000000000/orders`,
    region: 'us-east-1',
    credentials: { access_key_id: 'AKIDEXAMPLE', secret_access_key: 'secret-secret-secret' },
  });
  beforeAll(async () => {
    broker = await countingListener();
    const p = broker.port;
    // The operator's own sources, declared in the file, on a name that resolves to loopback and on
    // a loopback literal, while egress.allow lists nothing: every one is refused before a socket opens.
    const sources = ['localhost', '127.0.0.1'].flatMap((host, i) => [
      { id: `rabbitmq-${i}`, name: `rabbitmq-${i}`, type: 'rabbitmq', rabbitmq: { url: `amqp://tenant:tenant-password@${host}:${p}`, queue: `q${i}` } },
      { id: `kafka-${i}`, name: `kafka-${i}`, type: 'kafka', kafka: { brokers: [`${host}:${p}`], topic: `t${i}`, consumer_group: 'g' } },
      { id: `sqs-${i}`, name: `sqs-${i}`, type: 'sqs', sqs: { ...sqs(`${host}:${p}`), queue_url: `http://${host}:${p}/000000000000/q${i}` } },
      { id: `pubsub-${i}`, name: `pubsub-${i}`, type: 'pubsub', pubsub: { project_id: 'p', subscription: `sub-${i}`, emulator_host: `${host}:${p}` } },
    ]);
    t = await startTestApp({
      egress: { allow: [] },
      ingest: { api_broker_types: ['rabbitmq', 'kafka', 'sqs', 'pubsub'] },
      projects: [{ id: 'ops', sources }],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await broker?.close();
  });

  it('refuses to connect, says why in the source status, and never reaches the broker', async () => {
    for (const type of ['rabbitmq', 'kafka', 'sqs', 'pubsub']) {
      for (const [i, host] of ['localhost', '127.0.0.1'].entries()) {
        await expect
          .poll(async () => (await t.api('GET', `/sources/${type}-${i}`, undefined, 'ops')).body.data.status?.last_error ?? '', { timeout: 15_000 })
          .toMatch(new RegExp(`egress to ${host.replaceAll('.', '\\.')} refused: .*loopback address.*allow it in egress\\.allow`));
      }
    }
    expect(broker.connections()).toBe(0);
  });

  it('refuses the same hosts when a source is saved through the API, naming the key', async () => {
    const p = broker.port;
    const cases: [Record<string, unknown>, string, string][] = [
      [{ type: 'rabbitmq', rabbitmq: { url: `amqp://tenant:tenant-password@localhost:${p}`, queue: 'q' } }, 'rabbitmq.url', 'localhost'],
      [{ type: 'kafka', kafka: { brokers: [`localhost:${p}`], topic: 't', consumer_group: 'api' } }, 'kafka.brokers[0]', 'localhost'],
      [{ type: 'sqs', sqs: { ...sqs(`127.0.0.1:${p}`), endpoint: `http://localhost:${p}` } }, 'sqs.endpoint', 'localhost'],
      [{ type: 'pubsub', pubsub: { project_id: 'p', subscription: 'sub-api', emulator_host: `localhost:${p}` } }, 'pubsub.emulator_host', 'localhost'],
    ];
    for (const [body, field, host] of cases) {
      const res = await t.api('POST', '/sources', { name: `api-${field}`, ...body }, 'ops');
      expect(res.status, res.text).toBe(400);
      expect(res.body.data.field).toBe(field);
      expect(res.body.message).toMatch(new RegExp(`egress to ${host} refused: .*loopback address`));
    }
    expect(broker.connections()).toBe(0);
  });
});

describe('source manager: a source made through the API never borrows Wharf', () => {
  let pool: pg.Pool;
  let close: () => Promise<void>;
  let manager: SourceManager | null = null;
  // One broker for the sources made through the API (never reached), one for the operator's own.
  let tenantBroker: Awaited<ReturnType<typeof countingListener>>;
  let operatorBroker: Awaited<ReturnType<typeof countingListener>>;
  const box = createSecretBox(randomBytes(32));
  const saved = { AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY };

  beforeAll(async () => {
    ({ pool, close } = await migratedDatabase('postgres', 'wharf-test-broker-identity'));
    tenantBroker = await countingListener();
    operatorBroker = await countingListener();
    // Wharf's own AWS identity, where the default provider chain would find it.
    process.env.AWS_ACCESS_KEY_ID = 'AKIDWHARFOWN';
    process.env.AWS_SECRET_ACCESS_KEY = 'wharf-own-secret-key';
  });
  afterAll(async () => {
    await manager?.stop();
    await close?.();
    await tenantBroker?.close();
    await operatorBroker?.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const definition = (value: Record<string, unknown>): SourceDefinition => {
    const { source, issues } = parseSource(value);
    expect(issues).toEqual([]);
    return source!;
  };
  const ambientSqs = (id: string, port: number) =>
    definition({ id, name: id, type: 'sqs', sqs: { queue_url: `http://127.0.0.1:${port}/000000000000/orders`, region: 'us-east-1', use_default_credentials: true } });

  it('whatever its stored definition says: no default credentials, no type the operator closed', async () => {
    // Stored as the API of an older version could have (from_config false), bypassing today's checks.
    await saveSource(pool, box, 'p', ambientSqs('api-sqs', tenantBroker.port), false);
    const pubsub = definition({ id: 'api-pubsub', name: 'api-pubsub', type: 'pubsub', pubsub: { project_id: 'p', subscription: 'sub-1', use_default_credentials: true } });
    await saveSource(pool, box, 'p', { ...pubsub, broker: { ...pubsub.broker, use_default_credentials: false } }, false);
    const rabbit = definition({ id: 'api-rabbitmq', name: 'api-rabbitmq', type: 'rabbitmq', rabbitmq: { url: `amqp://tenant:tenant-password@127.0.0.1:${tenantBroker.port}`, queue: 'q' } });
    await saveSource(pool, box, 'p', rabbit, false);
    // The operator's file may lend Wharf's identity: this one does send requests (the control).
    await saveSource(pool, box, 'q', ambientSqs('yaml-sqs', operatorBroker.port), true);

    manager = createSourceManager(
      { pool, boss: {} as PgBoss, box, logger: pino({ level: 'silent' }), limits: { maxJsonDepth: 128 }, egress: LOOPBACK_EGRESS },
      { reloadIntervalMs: 60_000, stopTimeoutMs: 1_000, apiBrokerTypes: ['sqs', 'pubsub'] },
    );
    await manager.start();
    const errorOf = (id: string) => manager!.status().find((s) => s.id === id)?.lastError ?? '';

    await expect.poll(() => errorOf('api-sqs'), { timeout: 15_000 }).toContain('sqs.credentials: this source has no access key of its own');
    await expect.poll(() => errorOf('api-pubsub'), { timeout: 15_000 }).toContain('pubsub.credentials: this source has no service-account key of its own');
    expect(errorOf('api-rabbitmq')).toContain('not started: rabbitmq sources made through the API are not allowed here (ingest.api_broker_types)');
    await expect.poll(() => operatorBroker.connections(), { timeout: 15_000 }).toBeGreaterThan(0);
    expect(tenantBroker.connections()).toBe(0);
  });
});
