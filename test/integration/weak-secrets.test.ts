/**
 * Weak secrets are refused through the REST API as in the config file (issue 12, low): an endpoint
 * secret on every route that takes one, and an HTTP source's verifier secret, password or API key,
 * answer 400 naming the field and the minimum, and never quote the value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type RawResponse } from '../harness/app.ts';

const WEAK = 'abc-123-x';
const STRONG = 'a-strong-secret-0123456789';
const URL_ = 'http://127.0.0.1:9/weak';

describe('minimum secret lengths through the API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ projects: [{ id: 'default' }, { id: 'sw', signature: { scheme: 'standard-webhooks' } }] });
  });
  afterAll(async () => t?.stop());

  const refused = (res: RawResponse, field: string, minimum = 'at least 16 characters (got 9)'): void => {
    expect(res.status, res.text).toBe(400);
    expect(res.body.data?.field ?? res.body.data?.errors?.[0]?.field).toBe(field);
    expect(res.text).toContain(minimum);
    expect(res.text).not.toContain(WEAK);
  };

  const endpoint = async (): Promise<string> => {
    const res = await t.api('POST', '/endpoints', { name: 'e', url: URL_, secret: STRONG, skip_ping_validation: true });
    expect(res.status, res.text).toBe(201);
    return res.body.data.uid ?? res.body.data.id;
  };

  it('refuses a short endpoint secret on create, bulk create, update and expire_secret', async () => {
    refused(await t.api('POST', '/endpoints', { name: 'e', url: URL_, secret: WEAK, skip_ping_validation: true }), 'secret');
    refused(await t.api('POST', '/endpoints/bulk', { endpoints: [{ name: 'e', url: URL_, secret: WEAK, skip_ping_validation: true }] }), 'endpoints[0].secret');
    const id = await endpoint();
    refused(await t.api('PUT', `/endpoints/${id}`, { secret: WEAK }), 'secret');
    refused(await t.api('PUT', `/endpoints/${id}/expire_secret`, { secret: WEAK }), 'secret');
    // At the minimum it is taken.
    const rotated = await t.api('PUT', `/endpoints/${id}/expire_secret`, { secret: 'x'.repeat(16) });
    expect(rotated.status, rotated.text).toBe(200);
  });

  it('refuses a short secret for an endpoint made by a dynamic event', async () => {
    refused(await t.api('POST', '/events/dynamic', { url: URL_, secret: WEAK, event_type: 'weak.test', data: {} }), 'secret');
  });

  it('counts the key bytes of a Standard Webhooks secret', async () => {
    const weak = `whsec_${Buffer.alloc(15, 7).toString('base64')}`;
    const res = await t.api('POST', '/endpoints', { name: 'e', url: URL_, secret: weak, skip_ping_validation: true }, 'sw');
    refused(res, 'secret', 'at least 16 bytes of key material (got 15)');
    const ok = await t.api('POST', '/endpoints', { name: 'e', url: URL_, secret: `whsec_${Buffer.alloc(16, 7).toString('base64')}`, skip_ping_validation: true }, 'sw');
    expect(ok.status, ok.text).toBe(201);
  });

  it('refuses a short HMAC secret, API key or password of an HTTP source, in either shape', async () => {
    const source = (verifier: Record<string, unknown>) => t.api('POST', '/sources', { name: 'in', type: 'http', event_type: 'in', http: { verifier } });
    refused(await source({ type: 'hmac', header: 'X-Sig', secret: WEAK }), 'http.verifier.secret');
    refused(await source({ type: 'api_key', header_name: 'X-Key', header_value: WEAK }), 'http.verifier.header_value');
    refused(await source({ type: 'basic_auth', username: 'u', password: WEAK }), 'http.verifier.password');
    refused(await source({ type: 'github', secret: WEAK }), 'http.verifier.secret');

    // Convoy's nested shape goes through the same check.
    const convoy = await t.api('POST', '/sources', { name: 'in', type: 'http', verifier: { type: 'hmac', hmac: { header: 'X-Sig', hash: 'SHA256', encoding: 'hex', secret: WEAK } } });
    expect(convoy.status, convoy.text).toBe(400);
    expect(convoy.text).toContain('at least 16 characters (got 9)');
    expect(convoy.text).not.toContain(WEAK);

    const ok = await source({ type: 'hmac', header: 'X-Sig', secret: STRONG });
    expect(ok.status, ok.text).toBe(201);
  });
});
