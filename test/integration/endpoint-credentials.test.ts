/**
 * Endpoint credentials end to end: API key, basic and OAuth2 authentication on every delivery,
 * a client certificate presented to an HTTPS endpoint that requires one, and secrets that never
 * come back from the API.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCerts, type TestCerts } from '../harness/certs.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';

const listen = async (server: Server): Promise<number> => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
};
const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((r) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => r(text));
  });

describe('endpoint credentials', () => {
  let t: TestApp;
  let rx: Receiver;
  let tokens: Server;
  let tokenUrl = '';
  const tokenRequests: URLSearchParams[] = [];
  let tokenAnswer = { status: 200, body: { access_token: 'tok-1', token_type: 'Bearer', expires_in: 3600 } as Record<string, unknown> };
  let certs: TestCerts;
  let mtls: Server;
  let mtlsUrl = '';
  const mtlsPeers: string[] = [];

  beforeAll(async () => {
    rx = await startReceiver();
    tokens = createServer(async (req, res) => {
      tokenRequests.push(new URLSearchParams(await readBody(req)));
      res.writeHead(tokenAnswer.status, { 'content-type': 'application/json' }).end(JSON.stringify(tokenAnswer.body));
    });
    tokenUrl = `http://127.0.0.1:${await listen(tokens)}/token`;
    certs = await createTestCerts();
    mtls = createHttpsServer({ key: certs.serverKey, cert: certs.serverCert, ca: [certs.ca], requestCert: true, rejectUnauthorized: true }, (req, res) => {
      mtlsPeers.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      res.writeHead(200).end('ok');
    }) as unknown as Server;
    mtlsUrl = `https://127.0.0.1:${await listen(mtls)}/hook`;
    t = await startTestApp({ projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 0 } }] });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
    tokens?.close();
    mtls?.close();
    await certs?.cleanup();
  });

  const create = async (body: Record<string, unknown>) => {
    const res = await t.api('POST', '/endpoints', { name: 'e', ...body });
    expect(res.status, res.text).toBe(201);
    return res.body.data as { uid: string; authentication: Record<string, unknown> | null; mtls_client_cert: Record<string, unknown> | null };
  };
  const deliver = async (endpointId: string) => {
    await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'cred.test', data: { at: Date.now() } });
    const d = await eventually(
      async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${endpointId}`)).body.data.content[0],
      (x) => x?.status === 'Success' || x?.status === 'Failure',
      15_000,
      'the delivery to end',
    );
    const attempts = (await t.api('GET', `/eventdeliveries/${d.uid}/deliveryattempts`)).body.data;
    return {
      status: d.status as string,
      attempt: attempts[0] as { error_code: string | null; error: string | null; request_headers: Record<string, string> },
    };
  };
  const last = (path: string) => rx.requests.filter((r) => r.path === path).at(-1)!;

  it('api_key and basic_auth headers go with every delivery; the secrets never come back and are sealed at rest', async () => {
    const key = await create({ url: `${rx.url}/key`, authentication: { type: 'api_key', header_name: 'X-Api-Key', header_value: 'key-not-for-answers' } });
    expect(key.authentication).toEqual({ type: 'api_key', api_key: { header_name: 'X-Api-Key', header_value: '********' } });
    expect((await deliver(key.uid)).status).toBe('Success');
    expect(last('/key').headers['x-api-key']).toBe('key-not-for-answers');

    // Convoy's nested shape, with the other types' blocks null as its API sends them.
    const basic = await create({
      url: `${rx.url}/basic`,
      authentication: { type: 'basic_auth', basic_auth: { username: 'wharf', password: 'pw-not-for-answers' }, api_key: null, oauth2: null },
    });
    expect(basic.authentication).toEqual({ type: 'basic_auth', basic_auth: { username: 'wharf', password: '********' } });
    const basicDelivery = await deliver(basic.uid);
    expect(basicDelivery.status).toBe('Success');
    // The attempt records that the header went, not what it held.
    expect(basicDelivery.attempt.request_headers.authorization).toBe('********');
    expect(last('/basic').headers.authorization).toBe(`Basic ${Buffer.from('wharf:pw-not-for-answers').toString('base64')}`);

    const listed = await t.api('GET', '/endpoints?per_page=100');
    expect(listed.text).not.toContain('key-not-for-answers');
    expect(listed.text).not.toContain('pw-not-for-answers');
    const { rows } = await t.app.pool.query('SELECT credentials_enc FROM endpoints WHERE id = $1', [key.uid]);
    expect(rows[0].credentials_enc).not.toContain('key-not-for-answers');

    // Sent back as shown, the stored value stays; a new value replaces it.
    const kept = await t.api('PUT', `/endpoints/${key.uid}`, { authentication: key.authentication });
    expect(kept.status, kept.text).toBe(202);
    expect((await deliver(key.uid)).status).toBe('Success');
    expect(last('/key').headers['x-api-key']).toBe('key-not-for-answers');
    await t.api('PUT', `/endpoints/${key.uid}`, { authentication: { type: 'api_key', header_name: 'X-Api-Key', header_value: 'rotated' } });
    await deliver(key.uid);
    expect(last('/key').headers['x-api-key']).toBe('rotated');

    // "********" where nothing is stored to keep (another kind of authentication, a new endpoint)
    // is refused, never stored as the secret itself.
    const switched = await t.api('PUT', `/endpoints/${basic.uid}`, { authentication: { type: 'api_key', api_key: { header_name: 'X-Key', header_value: '********' } } });
    expect(switched.status).toBe(400);
    expect(switched.body.data.field).toBe('authentication.header_value');
    const planted = await t.api('POST', '/endpoints', { name: 'starred', url: `${rx.url}/starred`, skip_ping_validation: true, authentication: { type: 'basic_auth', username: 'u', password: '********' } });
    expect(planted.status).toBe(400);
    expect(planted.body.data.field).toBe('authentication.password');
    await deliver(basic.uid);
    expect(last('/basic').headers.authorization).toBe(`Basic ${Buffer.from('wharf:pw-not-for-answers').toString('base64')}`);
  });

  it('oauth2 client credentials: one token for many deliveries; a token failure is a failed attempt with its reason', async () => {
    const ep = await create({
      url: `${rx.url}/oauth`,
      authentication: { type: 'oauth2', url: tokenUrl, client_id: 'wharf', client_secret: 'cs-not-for-answers', scope: 'hooks' },
    });
    expect(ep.authentication).toMatchObject({ type: 'oauth2', oauth2: { client_secret: '********' } });
    for (let i = 0; i < 3; i++) expect((await deliver(ep.uid)).status).toBe('Success');
    expect(last('/oauth').headers.authorization).toBe('Bearer tok-1');
    expect(tokenRequests).toHaveLength(1);
    expect(Object.fromEntries(tokenRequests[0]!)).toMatchObject({ grant_type: 'client_credentials', client_id: 'wharf', scope: 'hooks' });
    const attempts = await t.api('GET', `/eventdeliveries/${(await t.api('GET', `/eventdeliveries?endpoint_id=${ep.uid}`)).body.data.content[0].uid}/deliveryattempts`);
    expect(attempts.text).not.toContain('tok-1');

    // The endpoint refuses the token: the next delivery fetches a new one.
    tokenAnswer = { status: 200, body: { access_token: 'tok-2', token_type: 'Bearer', expires_in: 3600 } };
    rx.answer((r) => (r.path === '/oauth' && r.headers.authorization === 'Bearer tok-1' ? { status: 401 } : { status: 200 }));
    try {
      expect((await deliver(ep.uid)).status).toBe('Failure');
      expect((await deliver(ep.uid)).status).toBe('Success');
      expect(last('/oauth').headers.authorization).toBe('Bearer tok-2');
      expect(tokenRequests).toHaveLength(2);
    } finally {
      rx.answer(() => ({ status: 200 }));
    }

    tokenAnswer = { status: 401, body: { error: 'invalid_client' } };
    const badAuth = { type: 'oauth2', url: tokenUrl, client_id: 'other', client_secret: 'nope-secret' };
    // The reachability ping gets its token like a delivery: a token the issuer refuses refuses the endpoint.
    const refused = await t.api('POST', '/endpoints', { name: 'e', url: `${rx.url}/oauth-bad`, authentication: badAuth });
    expect(refused.status).toBe(400);
    expect(refused.body.data.field).toBe('url');
    expect(refused.body.message).toContain('invalid_client');
    expect(refused.text).not.toContain('nope-secret');
    const failing = await create({ url: `${rx.url}/oauth-bad`, authentication: badAuth, skip_ping_validation: true });
    const { status, attempt } = await deliver(failing.uid);
    expect(status).toBe('Failure');
    expect(attempt.error_code).toBe('WHARF_ERR_OAUTH2');
    expect(attempt.error).toContain('401');
    expect(attempt.error).not.toContain('nope-secret');
    expect(rx.requests.filter((r) => r.path === '/oauth-bad')).toHaveLength(0);
  });

  it('mTLS: the client certificate is presented to an endpoint that requires one, trusting its CA; an unusable one is refused at save', async () => {
    const ep = await create({ url: mtlsUrl, mtls_client_cert: { client_cert: certs.clientCert, client_key: certs.clientKey }, ca_certificate: certs.ca });
    expect(ep.mtls_client_cert).toEqual({ client_cert: certs.clientCert, client_key: '********' });
    expect((await deliver(ep.uid)).status).toBe('Success');
    // The reachability ping at save, then the delivery: both present the certificate.
    expect(mtlsPeers).toEqual([certs.clientName, certs.clientName]);

    const unpinged = await t.api('POST', '/endpoints', { name: 'e', url: mtlsUrl, ca_certificate: certs.ca });
    expect(unpinged.status).toBe(400);
    expect(unpinged.body.data.field).toBe('url');
    const without = await create({ url: mtlsUrl, ca_certificate: certs.ca, skip_ping_validation: true });
    expect((await deliver(without.uid)).status).toBe('Failure');
    expect(mtlsPeers).toHaveLength(2);

    const bad = await t.api('POST', '/endpoints', { name: 'bad', url: mtlsUrl, mtls_client_cert: { client_cert: certs.clientCert, client_key: certs.otherKey } });
    expect(bad.status).toBe(400);
    expect(bad.body.data.field).toBe('mtls_client_cert');
    expect(bad.text).not.toContain('PRIVATE KEY');
  });
});
