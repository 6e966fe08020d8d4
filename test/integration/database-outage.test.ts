/**
 * While the database cannot be reached, ingest answers 503 with Retry-After (issue 12): a client
 * or provider that retries on 5xx comes back later; nothing is half-stored, and once the database
 * is back the same requests succeed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { TcpRelay, freePort } from '../harness/net.ts';

const SECRET = 'an-ingest-password-long-enough';
const basic = `Basic ${Buffer.from(`provider:${SECRET}`).toString('base64')}`;

describe('database outage', () => {
  let t: TestApp;
  let relay: TcpRelay;
  let ingestPath = '';
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
          endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }],
          sources: [{ id: 'hooks', name: 'hooks', type: 'http', event_type: 'provider.event', http: { verifier: { type: 'basic_auth', username: 'provider', password: SECRET } } }],
        },
      ],
    });
    ingestPath = new URL((await t.api('GET', '/sources/hooks')).body.data.url).pathname;
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

    await relay.up();
    await expect.poll(async () => (await post()).status, { timeout: 15_000 }).toBe(201);
    expect((await ingest()).status).toBe(200);
  });
});
