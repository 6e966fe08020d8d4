/**
 * Tenant bytes never run as HTML or script on Wharf's origin (issue 12, item 2): an HTTP source's
 * `custom_response` may only be an inert type, and every ingest answer is served sandboxed and
 * unsniffable, so a tenant cannot plant a page next to the portal's sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { createServer, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { answers } from '../harness/net.ts';
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

  it('refuses text/html in Convoy\'s shape of a source, naming the field as sent', async () => {
    const convoy = (content_type: string) => ({
      name: 'convoy-partner',
      type: 'http',
      verifier: { type: 'basic_auth', basic_auth: { username: 'partner', password: SECRET } },
      custom_response: { body: '<svg onload=alert(1)>', content_type },
    });
    const res = await t.api('POST', '/sources', convoy('text/html'));
    expect(res.status, res.text).toBe(400);
    expect(res.body.data.field).toBe('custom_response.content_type');
    expect(res.body.message).toContain('must be text/plain or application/json');
    expect((await t.api('POST', '/sources', convoy('application/json'))).status).toBe(201);
  });

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

  it('refuses one mask_id given to two sources in the config file, naming the key and not the mask', () => {
    const mask = 'yaml-mask-0123456789abcdef';
    const dir = mkdtempSync(join(tmpdir(), 'wharf-mask-'));
    const file = join(dir, 'wharf.yaml');
    const http = { verifier: { type: 'none' }, mask_id: mask };
    writeFileSync(
      file,
      stringify({
        projects: [
          { id: 'a', sources: [{ id: 's', name: 's', type: 'http', event_type: 'x.y', http }] },
          { id: 'b', sources: [{ id: 't', name: 't', type: 'http', event_type: 'x.y', http }] },
        ],
      }),
    );
    let message = '';
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`${file}: projects[1].sources[0].http.mask_id: must be unique (the same mask_id is at projects[0].sources[0].http.mask_id)`);
    expect(message).not.toContain(mask);
  });

  it('refuses a config file whose mask_id a source made through the API holds, naming the key', async () => {
    const mask = 'api-held-mask-0123456789abc';
    const made = await t.api('POST', '/sources', { ...source('text/plain'), name: 'api-made', http: { ...source('text/plain').http, mask_id: mask } });
    expect(made.status, made.text).toBe(201);
    const doc = parse(readFileSync(t.configFile, 'utf8'));
    doc.projects[0].sources = [{ id: 'from-yaml', name: 'from-yaml', type: 'http', event_type: 'x.y', http: { verifier: { type: 'none' }, mask_id: mask } }];
    const file = join(mkdtempSync(join(tmpdir(), 'wharf-mask-')), 'wharf.yaml');
    writeFileSync(file, stringify(doc));
    const { config } = loadConfig({ file, env: {} });
    await expect(t.app.reload(config)).rejects.toMatchObject({ code: 'WHARF_ERR_CONFIG', field: 'projects[0].sources[0].http.mask_id' });
    // Nothing of the refused file was applied.
    expect((await t.api('GET', '/sources/from-yaml')).status).toBe(404);
  });
});

describe('an answer given while Wharf closes', () => {
  it('carries nosniff too (fastify answers it before any hook)', async () => {
    const t = await startTestApp();
    // A receiver that holds the endpoint's ping, so a request stays in flight while Wharf closes.
    const held: ServerResponse[] = [];
    const receiver = createServer((_req, res) => held.push(res));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const { port } = new URL(t.url);
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    try {
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      const body = JSON.stringify({ name: 'held', url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/` });
      socket.write(
        `POST /api/v1/projects/default/endpoints HTTP/1.1\r\nHost: wharf\r\nAuthorization: Bearer ${t.apiKey}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await expect.poll(() => held.length).toBe(1);
      const stopping = t.stop();
      // Once the port refuses new connections, fastify is closing: a request on the open
      // connection is answered 503 by fastify itself.
      await expect.poll(() => answers(`127.0.0.1:${port}`)).toBe(false);
      socket.write('GET /healthz HTTP/1.1\r\nHost: wharf\r\n\r\n');
      held[0]!.writeHead(200).end();
      await expect.poll(() => received.split('HTTP/1.1 ').length - 1).toBe(2);
      const closing = received.slice(received.lastIndexOf('HTTP/1.1 '));
      expect(closing).toMatch(/^HTTP\/1\.1 503/);
      expect(closing.toLowerCase()).toContain('x-content-type-options: nosniff');
      await stopping;
    } finally {
      socket.destroy();
      await t.stop();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });
});
