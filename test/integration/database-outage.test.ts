/**
 * While the database cannot be reached, ingest answers 503 with Retry-After (issue 12): a client
 * or provider that retries on 5xx comes back later; nothing is half-stored, and once the database
 * is back the same requests succeed.
 */
import { createServer, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/core/errors.ts';
import { createPool } from '../../src/store/pool.ts';
import { probePostgres } from '../harness/db.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { TcpRelay, freePort } from '../harness/net.ts';
import { portalClient, type PortalClient } from '../harness/portal.ts';

const SECRET = 'an-ingest-password-long-enough';
const basic = `Basic ${Buffer.from(`provider:${SECRET}`).toString('base64')}`;

describe('database outage', () => {
  let t: TestApp;
  let relay: TcpRelay;
  let ingestPath = '';
  let portal: PortalClient;
  beforeAll(async () => {
    relay = new TcpRelay(await freePort(), '127.0.0.1:5432');
    await relay.up();
    t = await startTestApp({
      databaseUrl: (url) => {
        const u = new URL(url);
        u.hostname = '127.0.0.1';
        u.port = String(relay.port);
        return u.toString();
      },
      projects: [
        {
          id: 'default',
          endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/', owner_id: 'acme' }],
          sources: [{ id: 'hooks', name: 'hooks', type: 'http', event_type: 'provider.event', http: { verifier: { type: 'basic_auth', username: 'provider', password: SECRET } } }],
        },
      ],
    });
    ingestPath = new URL((await t.api('GET', '/sources/hooks')).body.data.url).pathname;
    const link = await t.api('POST', '/portal-links', { name: 'Acme', owner_id: 'acme' });
    portal = portalClient(t.url);
    expect((await portal.open(link.body.data.url)).status).toBe(303);
  });
  afterAll(async () => {
    await relay?.up().catch(() => undefined);
    await t?.stop();
    await relay?.down();
  });

  const post = () => t.api('POST', '/events', { endpoint_id: 'ep', event_type: 'outage.test', data: { n: 1 } });
  const ingest = () => t.request('POST', ingestPath, { body: { n: 2 }, headers: { authorization: basic } });

  it('answers 503 with Retry-After while the database is down, and 201/200 once it is back', async () => {
    // Warm: the API key and the ingest source are cached, as on a running gateway.
    expect((await post()).status).toBe(201);
    expect((await ingest()).status).toBe(200);

    await relay.down();
    for (const res of [await post(), await ingest()]) {
      expect(res.status, res.text).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(res.body.data.code).toBe('WHARF_ERR_UNAVAILABLE');
      expect(res.text).not.toContain('5432');
    }

    // The portal's pages too, as a page: a customer's browser is told to come back.
    const page = await portal.get('/portal/');
    expect(page.status, page.text.slice(0, 200)).toBe(503);
    expect(page.headers.get('retry-after')).toBe('5');
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.text).not.toContain('5432');

    await relay.up();
    await expect.poll(async () => (await post()).status, { timeout: 15_000 }).toBe(201);
    expect((await ingest()).status).toBe(200);
    expect((await portal.get('/portal/')).status).toBe(200);
  });
});

/** The failures a real database and pool give while unavailable are the ones answered 503. */
describe('what counts as the database being unavailable', () => {
  const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('no failure'), (err: unknown) => err);
  let adminUrl = '';
  beforeAll(async () => {
    const probe = await probePostgres();
    if ('error' in probe) throw probe.error;
    adminUrl = probe.url;
  });

  it('a database that accepts connections and never answers: the checkout times out', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const pool = createPool(`postgres://wharf@127.0.0.1:${port}/wharf`, { connectTimeoutMs: 300 });
    try {
      const err = await failure(pool.query('SELECT 1'));
      expect(String(err)).toMatch(/timeout/i);
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await pool.end();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a pool whose connections are all busy: the checkout times out', async () => {
    const pool = createPool(adminUrl, { max: 1, connectTimeoutMs: 300 });
    const held = await pool.connect();
    try {
      const err = await failure(pool.query('SELECT 1'));
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      held.release();
      await pool.end();
    }
  });

  it('a backend terminated by the server (57P01), and a wrong query is not', async () => {
    const pool = createPool(adminUrl, { max: 1, applicationName: 'wharf-outage-57p01' });
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      expect(isDatabaseUnavailable(await failure(pool.query('SELECT * FROM no_such_table_here')))).toBe(false);
      const sleeping = failure(pool.query('SELECT pg_sleep(30)'));
      await expect
        .poll(async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'wharf-outage-57p01' AND query LIKE 'SELECT pg_sleep%'`)).rows[0].n)
        .toBe(1);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wharf-outage-57p01'`);
      const err = await sleeping;
      expect((err as { code?: string }).code).toBe('57P01');
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await admin.end();
      await pool.end();
    }
  });
});
