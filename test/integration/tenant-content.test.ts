/**
 * Tenant bytes never run as HTML or script on Wharf's origin (issue 12, item 2): an HTTP source's
 * `custom_response` may only be an inert type, and every ingest answer is served sandboxed and
 * unsniffable, so a tenant cannot plant a page next to the portal's sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SECRET = 'a-partner-password-of-some-length';
const basic = `Basic ${Buffer.from(`partner:${SECRET}`).toString('base64')}`;

const source = (content_type: string, body = '<script>document.cookie</script>') => ({
  name: 'partner',
  type: 'http',
  event_type: 'partner.event',
  http: { verifier: { type: 'basic_auth', username: 'partner', password: SECRET }, custom_response: { body, content_type } },
});

describe('tenant content on Wharf origin', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t?.stop());

  it.each(['text/html', 'text/html; charset=utf-8', 'image/svg+xml', 'application/xml', 'text/xml', 'application/xhtml+xml', 'text/plain, text/html', 'text/plain\r\nx: 1'])(
    'refuses a custom_response of %j, naming the field',
    async (type) => {
      const res = await t.api('POST', '/sources', source(type));
      expect(res.status, res.text).toBe(400);
      expect(res.body.data.field).toBe('http.custom_response.content_type');
      expect(res.body.message).toContain('must be text/plain or application/json');
    },
  );

  it('refuses text/html in the config file, naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-html-'));
    const file = join(dir, 'wharf.yaml');
    writeFileSync(
      file,
      `projects:\n  - id: p\n    sources:\n      - id: s\n        type: http\n        http:\n          verifier: { type: none }\n          custom_response: { body: "<b>hi</b>", content_type: text/html }\n`,
    );
    expect(() => loadConfig({ file, env: {} })).toThrow(`${file}: projects[0].sources[0].http.custom_response.content_type: must be text/plain or application/json`);
  });

  it('serves a permitted custom response sandboxed and unsniffable', async () => {
    const created = await t.api('POST', '/sources', source('text/plain; charset=utf-8'));
    expect(created.status, created.text).toBe(201);
    const res = await t.request('POST', new URL(created.body.data.url).pathname, { body: { hello: 1 }, headers: { authorization: basic } });
    expect(res.status, res.text).toBe(200);
    expect(res.text).toBe('<script>document.cookie</script>');
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toMatch(/^sandbox; default-src 'none'/);
    // Every other ingest answer too: a refusal, an unknown URL.
    for (const other of [
      await t.request('POST', new URL(created.body.data.url).pathname, { body: {}, headers: { authorization: 'Basic eDp5' } }),
      await t.request('POST', '/ingest/nothing-here-0123456789', { body: {} }),
    ]) {
      expect(other.status).toBeGreaterThanOrEqual(400);
      expect(other.headers.get('x-content-type-options')).toBe('nosniff');
      expect(other.headers.get('content-security-policy')).toMatch(/^sandbox; default-src 'none'/);
    }
  });

  it('answers 409 when a mask_id is already another source\'s, in this project or another', async () => {
    const mask = 'shared-mask-0123456789abc';
    const first = await t.api('POST', '/sources', { ...source('text/plain'), name: 'first', http: { ...source('text/plain').http, mask_id: mask } });
    expect(first.status, first.text).toBe(201);
    const second = await t.api('POST', '/sources', { ...source('text/plain'), name: 'second', http: { ...source('text/plain').http, mask_id: mask } });
    expect(second.status, second.text).toBe(409);
    expect(second.body.data.field).toBe('http.mask_id');
    // Moving an existing source onto a taken mask is refused the same way, and changes nothing.
    const third = await t.api('POST', '/sources', { ...source('text/plain'), name: 'third' });
    const moved = await t.api('PUT', `/sources/${third.body.data.uid}`, { ...source('text/plain'), name: 'third', http: { ...source('text/plain').http, mask_id: mask } });
    expect(moved.status, moved.text).toBe(409);
    expect((await t.api('GET', `/sources/${third.body.data.uid}`)).body.data.url).toBe(third.body.data.url);
  });
});
