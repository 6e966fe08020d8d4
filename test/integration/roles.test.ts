/** `--role ingest` serves what probes and scrapers need, and none of the API's or the portal's routes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';

describe('roles', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ role: 'ingest' });
  });
  afterAll(async () => t?.stop());

  it('ingest answers /healthz, /readyz and /metrics, and 404 for the REST API, HTTP ingest and the portal', async () => {
    expect((await t.request('GET', '/healthz')).status).toBe(200);
    expect((await t.request('GET', '/readyz')).status).toBe(200);
    expect((await t.operator('GET', '/metrics')).text).toContain('wharf_');
    expect((await t.api('GET', '/endpoints')).status).toBe(404);
    expect((await t.request('POST', '/ingest/abc', { body: {} })).status).toBe(404);
    expect((await t.request('GET', '/portal/')).status).toBe(404);
  });
});
