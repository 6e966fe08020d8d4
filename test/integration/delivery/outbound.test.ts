/**
 * The outbound building blocks against real local servers: an OAuth2 token endpoint (node:http),
 * an HTTPS endpoint that requires a client certificate (certificates made by openssl), and plain
 * HTTP receivers on loopback for the egress guard. Nothing in undici is mocked.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSender } from '../../../src/delivery/sender.ts';
import { guardedConnect } from '../../../src/delivery/egress.ts';
import type { EgressPolicy } from '../../../src/delivery/egress.ts';
import { createOAuth2TokenSource } from '../../../src/delivery/oauth2.ts';
import type { OAuth2Auth } from '../../../src/delivery/oauth2.ts';
import { checkCaBundle, checkClientCertificate, createEndpointAgent } from '../../../src/delivery/tls.ts';
import type { TlsOptions } from '../../../src/delivery/tls.ts';
import { createTestCerts } from '../../harness/certs.ts';
import type { TestCerts } from '../../harness/certs.ts';

const SECRET = 'client-secret-that-never-shows-up-in-errors';
const DEFAULT_POLICY: EgressPolicy = { allow: [], block: [] };
const LOOPBACK_ALLOWED: EgressPolicy = { allow: ['127.0.0.0/8'], block: [] };
const NO_TLS: TlsOptions = { ca: null, clientCert: null, clientKey: null };

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

function agent(dispatcher: Agent): Agent {
  closers.push(() => dispatcher.close());
  return dispatcher;
}

async function get(url: string, dispatcher: Dispatcher): Promise<{ status: number; body: string }> {
  const res = await request(url, { dispatcher });
  return { status: res.statusCode, body: await res.body.text() };
}

/** What the token endpoint was sent. */
interface TokenRequest {
  form: Record<string, string>;
  contentType: string | undefined;
}

interface TokenAnswer {
  status?: number;
  body?: unknown;
  delayMs?: number;
}

describe('OAuth2 client credentials', () => {
  let tokenUrl: string;
  let requests: TokenRequest[];
  let issued: number;
  let answer: ((req: TokenRequest) => TokenAnswer) | null;
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JsonWebKey;
  const signingKey = { ...jwk, kid: 'wharf-key-1' };
  const { d: _d, ...publicJwk } = jwk;

  const shared: OAuth2Auth = {
    type: 'oauth2',
    url: '',
    client_id: 'wharf-client',
    scope: 'webhooks:write',
    audience: 'https://receiver.example',
    authentication_type: 'shared_secret',
    client_secret: SECRET,
  };
  const assertion = (): OAuth2Auth => ({
    type: 'oauth2',
    url: tokenUrl,
    client_id: 'wharf-client',
    scope: null,
    audience: null,
    authentication_type: 'client_assertion',
    signing_key: signingKey,
    issuer: 'wharf-issuer',
    subject: 'wharf-subject',
  });

  /** Checks the client the way an authorization server does, then issues tok-1, tok-2, … */
  async function authenticate(form: Record<string, string>): Promise<TokenAnswer> {
    if (form.grant_type !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
    if (form.client_assertion_type !== undefined) {
      if (form.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        return { status: 400, body: { error: 'invalid_request' } };
      }
      try {
        await jwtVerify(form.client_assertion!, await importJWK(publicJwk, 'ES256'), {
          issuer: 'wharf-issuer',
          subject: 'wharf-subject',
          audience: tokenUrl,
          algorithms: ['ES256'],
          requiredClaims: ['jti', 'iat', 'exp'],
        });
      } catch (err) {
        return { status: 401, body: { error: 'invalid_client', error_description: (err as Error).message } };
      }
    } else if (form.client_id !== 'wharf-client' || form.client_secret !== SECRET) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } };
    }
    issued += 1;
    return { status: 200, body: { access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: 300 } };
  }

  beforeAll(async () => {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        const seen = { form, contentType: req.headers['content-type'] };
        requests.push(seen);
        const a = answer ? answer(seen) : await authenticate(form);
        const send = () => {
          if (res.destroyed) return;
          res.writeHead(a.status ?? 200, { 'content-type': 'application/json' });
          res.end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body ?? {}));
        };
        if (a.delayMs) setTimeout(send, a.delayMs);
        else send();
      });
    });
    tokenUrl = `http://127.0.0.1:${await listen(server)}/oauth/token`;
    shared.url = tokenUrl;
  });

  afterEach(() => {
    requests = [];
    issued = 0;
    answer = null;
  });
  requests = [];
  issued = 0;
  answer = null;

  it('fetches a token with the form of RFC 6749 §4.4 and a shared secret', async () => {
    const source = createOAuth2TokenSource({});
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    expect(requests).toEqual([
      {
        contentType: 'application/x-www-form-urlencoded',
        form: {
          grant_type: 'client_credentials',
          client_id: 'wharf-client',
          scope: 'webhooks:write',
          audience: 'https://receiver.example',
          client_secret: SECRET,
        },
      },
    ]);
  });

  it('signs an ES256 client assertion the token endpoint verifies with the public key', async () => {
    const source = createOAuth2TokenSource({});
    expect(await source.token(assertion(), 'ep_1')).toBe('tok-1');
    const { form } = requests[0]!;
    expect(Object.keys(form).sort()).toEqual(['client_assertion', 'client_assertion_type', 'client_id', 'grant_type']);
    expect(decodeProtectedHeader(form.client_assertion!)).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'wharf-key-1' });
    const { payload } = await jwtVerify(form.client_assertion!, await importJWK(publicJwk, 'ES256'));
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('is refused when the assertion is signed by another key', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JsonWebKey;
    const source = createOAuth2TokenSource({});
    const err = await source.token({ ...assertion(), signing_key: other } as OAuth2Auth, 'ep_1').catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'WHARF_ERR_OAUTH2',
      message: `token endpoint ${tokenUrl} answered 401: invalid_client (signature verification failed)`,
    });
  });

  it('makes one request for many concurrent deliveries and caches the token', async () => {
    const source = createOAuth2TokenSource({});
    const tokens = await Promise.all(Array.from({ length: 25 }, () => source.token(shared, 'ep_1')));
    expect(new Set(tokens)).toEqual(new Set(['tok-1']));
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    expect(requests).toHaveLength(1);
    // Another endpoint with the same settings has a token of its own.
    expect(await source.token(shared, 'ep_2')).toBe('tok-2');
  });

  it('refreshes refreshBeforeSeconds before expires_in runs out', async () => {
    let clock = 1_000_000;
    const source = createOAuth2TokenSource({ now: () => clock, refreshBeforeSeconds: 60 });
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    clock += 239_000;
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    clock += 2_000;
    expect(await source.token(shared, 'ep_1')).toBe('tok-2');
    expect(requests).toHaveLength(2);
  });

  it('keeps a token an hour when the server gives no expires_in', async () => {
    let clock = 0;
    answer = () => ({ body: { access_token: `tok-${++issued}` } });
    const source = createOAuth2TokenSource({ now: () => clock });
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    clock = 3_539_000;
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    clock = 3_541_000;
    expect(await source.token(shared, 'ep_1')).toBe('tok-2');
  });

  it('asks again when the settings change or the endpoint is cleared', async () => {
    const source = createOAuth2TokenSource({});
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
    expect(await source.token({ ...shared, scope: 'other' }, 'ep_1')).toBe('tok-2');
    source.clear('ep_1');
    expect(await source.token({ ...shared, scope: 'other' }, 'ep_1')).toBe('tok-3');
    source.clear();
    expect(await source.token({ ...shared, scope: 'other' }, 'ep_1')).toBe('tok-4');
  });

  it('reports a refused client with the OAuth2 error code and without the secret', async () => {
    const source = createOAuth2TokenSource({});
    const err = (await source.token({ ...shared, client_secret: `${SECRET}-wrong` }, 'ep_1').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({
      code: 'WHARF_ERR_OAUTH2',
      retryable: false,
      message: `token endpoint ${tokenUrl} answered 401: invalid_client (client authentication failed)`,
    });
  });

  it('does not cache a failure', async () => {
    const source = createOAuth2TokenSource({});
    answer = () => ({ status: 503, body: 'down' });
    await expect(source.token(shared, 'ep_1')).rejects.toMatchObject({ retryable: true, message: `token endpoint ${tokenUrl} answered 503` });
    answer = null;
    expect(await source.token(shared, 'ep_1')).toBe('tok-1');
  });

  it('redacts the secret when the token endpoint echoes it', async () => {
    answer = (req) => ({ status: 400, body: { error: 'invalid_request', error_description: `bad secret ${req.form.client_secret}` } });
    const err = (await createOAuth2TokenSource({}).token(shared, 'ep_1').catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`token endpoint ${tokenUrl} answered 400: invalid_request (bad secret [redacted])`);
  });

  it('redacts a secret echoed URL-encoded, or where the message is cut short', async () => {
    const awkward = { ...shared, client_secret: 'a+b/c=d&e f%g' };
    const encoded = new URLSearchParams({ s: awkward.client_secret }).toString().slice(2);
    answer = () => ({ status: 400, body: { error: 'invalid_request', error_description: `got client_secret=${encoded}` } });
    const echoed = (await createOAuth2TokenSource({}).token(awkward, 'ep_2').catch((e: unknown) => e)) as Error;
    expect(echoed.message).toContain('client_secret=[redacted]');
    // The echo straddles the 500-character cut (its first 20 characters fall before it): no part
    // of the secret may remain, so redaction must come before the cut.
    const prefix = `token endpoint ${tokenUrl} answered 400: invalid_request (`;
    expect(SECRET.length).toBeGreaterThan(30);
    answer = () => ({ status: 400, body: { error: 'invalid_request', error_description: `${'x'.repeat(500 - prefix.length - 20)}${SECRET}` } });
    const cut = (await createOAuth2TokenSource({}).token(shared, 'ep_3').catch((e: unknown) => e)) as Error;
    expect(cut.message.startsWith(`${prefix}xxx`)).toBe(true);
    expect(cut.message.length).toBeLessThanOrEqual(500);
    expect(cut.message).not.toContain(SECRET.slice(0, 10));
  });

  it.each<[string, TokenAnswer, string]>([
    ['without access_token', { body: { token_type: 'Bearer', expires_in: 60 } }, 'answered without access_token'],
    ['with a body that is not JSON', { body: '<html>ok</html>' }, 'answered 200 with a body that is not a JSON object'],
    ['with a token of another type', { body: { access_token: 'x', token_type: 'DPoP' } }, 'answered token_type "DPoP"; only Bearer tokens can be sent'],
    ['with a token that cannot be a header', { body: { access_token: 'a\r\nb' } }, 'answered an access_token that cannot be sent in a header'],
  ])('refuses an answer %s', async (_name, a, message) => {
    answer = () => a;
    await expect(createOAuth2TokenSource({}).token(shared, 'ep_1')).rejects.toMatchObject({
      code: 'WHARF_ERR_OAUTH2',
      message: `token endpoint ${tokenUrl} ${message}`,
    });
  });

  it('gives up on a token endpoint that does not answer in time', async () => {
    answer = () => ({ delayMs: 3_000, body: { access_token: 'late' } });
    const started = Date.now();
    await expect(createOAuth2TokenSource({ timeoutMs: 300 }).token(shared, 'ep_1')).rejects.toMatchObject({
      code: 'WHARF_ERR_OAUTH2',
      retryable: true,
      message: `token endpoint ${tokenUrl} did not answer within 0.3 s`,
    });
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('reports a token endpoint that cannot be reached', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}/token?tenant=secret-tenant`;
    const err = (await createOAuth2TokenSource({}).token({ ...shared, url }, 'ep_1').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'WHARF_ERR_OAUTH2', retryable: true });
    expect(err.message).toMatch(new RegExp(`^token endpoint http://127\\.0\\.0\\.1:${port}/token could not be reached: .*ECONNREFUSED`));
  });

  it('goes through the egress guard when given a guarded dispatcher', async () => {
    const guarded = agent(new Agent({ connect: guardedConnect(DEFAULT_POLICY) }));
    const err = (await createOAuth2TokenSource({ dispatcher: guarded }).token(shared, 'ep_1').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'WHARF_ERR_OAUTH2', cause: { code: 'WHARF_ERR_EGRESS_BLOCKED' } });
    expect(err.message).toContain('127.0.0.1 is a loopback address');
    expect(requests).toHaveLength(0);
  });
});

describe('mutual TLS', () => {
  let certs: TestCerts;
  let url: string;

  beforeAll(async () => {
    certs = await createTestCerts();
    closers.push(() => certs.cleanup());
    const server = createHttpsServer(
      { key: certs.serverKey, cert: certs.serverCert, ca: [certs.ca], requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.end(`hello ${peer.subject?.CN ?? 'nobody'}`);
      },
    );
    url = `https://127.0.0.1:${await listen(server)}/`;
  });

  const tlsWith = (over: Partial<TlsOptions>): TlsOptions => ({ ca: certs.ca, clientCert: certs.clientCert, clientKey: certs.clientKey, ...over });

  it('presents the client certificate and trusts the extra CA bundle', async () => {
    const endpoint = agent(createEndpointAgent({ policy: LOOPBACK_ALLOWED, tls: tlsWith({}) }));
    expect(await get(url, endpoint)).toEqual({ status: 200, body: `hello ${certs.clientName}` });
  });

  it('reaches the server by name too, over the addresses the guard lets through', async () => {
    const endpoint = agent(createEndpointAgent({ policy: LOOPBACK_ALLOWED, tls: tlsWith({}) }));
    const byName = url.replace('127.0.0.1', 'localhost');
    expect(await get(byName, endpoint)).toEqual({ status: 200, body: `hello ${certs.clientName}` });
  });

  it('fails the handshake without a client certificate', async () => {
    const endpoint = agent(createEndpointAgent({ policy: LOOPBACK_ALLOWED, tls: tlsWith({ clientCert: null, clientKey: null }) }));
    const err = (await get(url, endpoint).catch((e: unknown) => e)) as { code?: string };
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toMatch(/ECONNRESET|ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|UND_ERR_SOCKET/);
  });

  it('does not trust the server without the CA bundle', async () => {
    const endpoint = agent(createEndpointAgent({ policy: LOOPBACK_ALLOWED, tls: tlsWith({ ca: null }) }));
    await expect(get(url, endpoint)).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/) });
  });

  describe('checkClientCertificate', () => {
    it('accepts a certificate with its key', () => {
      expect(checkClientCertificate(certs.clientCert, certs.clientKey)).toBeNull();
    });

    it('refuses a key that does not match', () => {
      expect(checkClientCertificate(certs.clientCert, certs.otherKey)).toBe('client key does not match the client certificate');
      expect(checkClientCertificate(certs.clientCert, certs.serverKey)).toBe('client key does not match the client certificate');
    });

    it('refuses garbage without quoting the key', () => {
      expect(checkClientCertificate('not a certificate', certs.clientKey)).toBe(
        'client certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)',
      );
      expect(checkClientCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', certs.clientKey)).toMatch(
        /^client certificate cannot be read: /,
      );
      expect(checkClientCertificate(certs.clientCert, 'secret-garbage')).toBe('client key is not a PEM private key (-----BEGIN PRIVATE KEY-----)');
      const broken = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWdhcmJhZ2U=\n-----END PRIVATE KEY-----\n';
      expect(checkClientCertificate(certs.clientCert, broken)).toBe('client key is not a readable PEM private key');
      expect(checkClientCertificate(certs.clientCert, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA')).toBe(
        'client key is encrypted; give it without a passphrase',
      );
    });

    it('refuses a certificate outside its validity period', () => {
      const inThreeDays = Date.now() + 3 * 86_400_000;
      expect(checkClientCertificate(certs.clientCert, certs.clientKey, inThreeDays)).toMatch(/^client certificate expired on \d{4}-\d\d-\d\dT/);
      expect(checkClientCertificate(certs.clientCert, certs.clientKey, Date.now() - 86_400_000)).toMatch(/^client certificate is not valid before /);
    });

    it('refuses a certificate meant for servers only', () => {
      expect(checkClientCertificate(certs.serverCert, certs.serverKey)).toBe(
        'client certificate is not meant for client authentication (its extended key usage lacks clientAuth)',
      );
    });

    it('checks CA bundles', () => {
      expect(checkCaBundle(`${certs.ca}\n${certs.clientCert}`)).toBeNull();
      expect(checkCaBundle('garbage')).toBe('CA bundle holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
      expect(checkCaBundle(`${certs.ca}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----`)).toMatch(/^CA bundle certificate 2 cannot be read: /);
    });
  });
});

describe('egress guard', () => {
  let port: number;
  let connections: number;

  beforeAll(async () => {
    const server = createServer((_req, res) => res.end('reached'));
    server.on('connection', () => connections++);
    port = await listen(server);
  });
  connections = 0;
  afterEach(() => {
    connections = 0;
  });

  const refusal = (message: string | RegExp) => ({
    code: 'WHARF_ERR_EGRESS_BLOCKED',
    message: typeof message === 'string' ? message : expect.stringMatching(message),
  });

  it('refuses 127.0.0.1 by default, before any connection is made', async () => {
    const endpoint = agent(createEndpointAgent({ policy: DEFAULT_POLICY, tls: NO_TLS }));
    await expect(get(`http://127.0.0.1:${port}/`, endpoint)).rejects.toMatchObject(
      refusal('egress to 127.0.0.1 refused: 127.0.0.1 is a loopback address (127.0.0.0/8); allow it in egress.allow'),
    );
    expect(connections).toBe(0);
  });

  it('allows it when egress.allow has 127.0.0.0/8', async () => {
    const endpoint = agent(createEndpointAgent({ policy: LOOPBACK_ALLOWED, tls: NO_TLS }));
    expect(await get(`http://127.0.0.1:${port}/`, endpoint)).toEqual({ status: 200, body: 'reached' });
    expect(connections).toBe(1);
  });

  it('refuses a name that resolves to loopback', async () => {
    const endpoint = agent(createEndpointAgent({ policy: DEFAULT_POLICY, tls: NO_TLS }));
    await expect(get(`http://localhost:${port}/`, endpoint)).rejects.toMatchObject(
      refusal(/^egress to localhost refused: (127\.0\.0\.1|::1) is a loopback address/),
    );
    expect(connections).toBe(0);
  });

  it('refuses IPv6 and IPv4-mapped literals', async () => {
    const endpoint = agent(createEndpointAgent({ policy: DEFAULT_POLICY, tls: NO_TLS }));
    await expect(get(`http://[::1]:${port}/`, endpoint)).rejects.toMatchObject(refusal(/^egress to ::1 refused: ::1 is a loopback address/));
    await expect(get(`http://[::ffff:127.0.0.1]:${port}/`, endpoint)).rejects.toMatchObject(
      refusal(/^egress to ::ffff:7f00:1 refused: ::ffff:7f00:1 carries 127\.0\.0\.1, a loopback address/),
    );
    expect(connections).toBe(0);
  });

  it('dials only the allowed addresses of a name that resolves to several', async () => {
    // A decoy on 127.0.0.2, same port, answers first if a refused address were ever dialled.
    const decoy = createServer((_req, res) => res.end('decoy'));
    await new Promise<void>((resolve) => decoy.listen(port, '127.0.0.2', resolve));
    closers.push(() => new Promise((resolve) => decoy.close(resolve)));
    const resolve = async () => [
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    const endpoint = agent(new Agent({ connect: guardedConnect({ allow: ['127.0.0.1'], block: [] }, undefined, { resolve }) }));
    expect(await get(`http://mixed.test:${port}/`, endpoint)).toEqual({ status: 200, body: 'reached' });
    const unguarded = agent(new Agent({ connect: { lookup: (_h, _o, cb) => cb(null, [{ address: '127.0.0.2', family: 4 }]) } }));
    expect(await get(`http://mixed.test:${port}/`, unguarded)).toEqual({ status: 200, body: 'decoy' });
  });

  it('judges every new connection, so a name rebound to a refused address is refused', async () => {
    const answers = ['127.0.0.1', '127.0.0.2'];
    const resolve = async () => [{ address: answers.shift() ?? '127.0.0.2', family: 4 }];
    const endpoint = agent(new Agent({ connect: guardedConnect({ allow: ['127.0.0.1'], block: [] }, undefined, { resolve }) }));
    // reset closes the connection after the answer, so the second request must connect again.
    const first = await request(`http://rebind.test:${port}/`, { dispatcher: endpoint, reset: true });
    expect(await first.body.text()).toBe('reached');
    await expect(get(`http://rebind.test:${port}/`, endpoint)).rejects.toMatchObject(
      refusal('egress to rebind.test refused: 127.0.0.2 is a loopback address (127.0.0.0/8); allow it in egress.allow'),
    );
    expect(connections).toBe(1);
  });

  it('lets egress.block win over egress.allow', async () => {
    const endpoint = agent(createEndpointAgent({ policy: { allow: ['127.0.0.0/8'], block: ['127.0.0.1/32'] }, tls: NO_TLS }));
    await expect(get(`http://127.0.0.1:${port}/`, endpoint)).rejects.toMatchObject(
      refusal('egress to 127.0.0.1 refused: 127.0.0.1 is blocked by egress.block (127.0.0.1/32)'),
    );
  });

  it('gives the sender a stable error code to classify', async () => {
    const endpoint = agent(createEndpointAgent({ policy: DEFAULT_POLICY, tls: NO_TLS }));
    const sender = createSender({ dispatcher: endpoint, maxResponseBytes: 1024 });
    const result = await sender.send({ url: `http://localhost:${port}/hook`, headers: {}, body: Buffer.from('{}'), timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: false, statusCode: null, errorCode: 'WHARF_ERR_EGRESS_BLOCKED' });
    expect(result.error).toMatch(/loopback address/);
  });
});
