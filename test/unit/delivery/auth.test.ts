import { generateKeyPairSync } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Reader } from '../../../src/core/settings.ts';
import type { SettingIssue } from '../../../src/core/settings.ts';
import { authSecretKeys, createAuthHeaders, nestAuth, parseEndpointAuth } from '../../../src/delivery/auth.ts';
import type { EndpointAuth } from '../../../src/delivery/auth.ts';
import type { OAuth2TokenSource } from '../../../src/delivery/oauth2.ts';

const AT = 'projects[0].endpoints[2].authentication';
const SECRET = 's3cr3t-Value-that-must-never-be-quoted';

const ecJwk = (curve = 'P-256'): JsonWebKey =>
  generateKeyPairSync('ec', { namedCurve: curve }).privateKey.export({ format: 'jwk' });
const JWK = ecJwk();

function parse(value: unknown): { auth: EndpointAuth | null; issues: SettingIssue[] } {
  const r = new Reader();
  const auth = parseEndpointAuth(r, value, AT);
  return { auth, issues: r.issues };
}

function issuesOf(value: unknown): SettingIssue[] {
  const { issues } = parse(value);
  // Whatever went wrong, the secrets given are not in the messages.
  for (const issue of issues) {
    expect(issue.message).not.toContain(SECRET);
    expect(issue.message).not.toContain(String(JWK.d));
  }
  return issues;
}

const issue = (path: string, message: string | RegExp): SettingIssue =>
  ({ path: `${AT}${path}`, message: typeof message === 'string' ? message : expect.stringMatching(message) }) as SettingIssue;

describe('parseEndpointAuth', () => {
  it("takes Convoy's nested shape as the flat one, and answers in it", () => {
    const flat = parse({ type: 'api_key', header_name: 'X-Key', header_value: 'v' });
    expect(parse({ type: 'api_key', api_key: { header_name: 'X-Key', header_value: 'v' } })).toEqual(flat);
    expect(parse({ type: 'api_key', api_key: { header_name: 'X-Key', header_value: 'v' }, basic_auth: null, oauth2: null })).toEqual(flat);
    expect(parse({ type: 'basic_auth', basic_auth: { username: 'u', password: 'p' } }).auth).toEqual({ type: 'basic_auth', username: 'u', password: 'p' });
    // Another type's block that is not null is named, not dropped.
    expect(issuesOf({ type: 'api_key', api_key: { header_name: 'X-Key', header_value: 'v' }, basic_auth: { username: 'u' } })).toEqual([
      expect.objectContaining({ path: `${AT}.basic_auth` }),
    ]);
    expect(nestAuth({ type: 'api_key', header_name: 'X-Key', header_value: '********' })).toEqual({ type: 'api_key', api_key: { header_name: 'X-Key', header_value: '********' } });
  });

  it('is null when the block is absent', () => {
    expect(parse(undefined)).toEqual({ auth: null, issues: [] });
    expect(parse(null)).toEqual({ auth: null, issues: [] });
  });

  it('reads api_key', () => {
    expect(parse({ type: 'api_key', header_name: 'X-Api-Key', header_value: SECRET })).toEqual({
      auth: { type: 'api_key', header_name: 'X-Api-Key', header_value: SECRET },
      issues: [],
    });
  });

  it('reads basic_auth, with a colon allowed in the password', () => {
    expect(parse({ type: 'basic_auth', username: 'wharf', password: `a:${SECRET}` })).toEqual({
      auth: { type: 'basic_auth', username: 'wharf', password: `a:${SECRET}` },
      issues: [],
    });
  });

  it('reads oauth2 with a shared secret, defaulting scope, audience and authentication_type', () => {
    expect(parse({ type: 'oauth2', url: 'https://auth.example.com/token', client_id: 'wharf', client_secret: SECRET })).toEqual({
      auth: {
        type: 'oauth2',
        url: 'https://auth.example.com/token',
        client_id: 'wharf',
        scope: null,
        audience: null,
        authentication_type: 'shared_secret',
        client_secret: SECRET,
      },
      issues: [],
    });
  });

  it('reads oauth2 with a client assertion, issuer and subject defaulting to client_id', () => {
    const { auth, issues } = parse({
      type: 'oauth2',
      url: 'http://auth.example.com/token',
      client_id: 'wharf',
      scope: 'webhooks:write',
      audience: 'https://api.example.com',
      authentication_type: 'client_assertion',
      signing_key: JWK,
      grant_type: 'client_credentials',
      signing_algorithm: 'ES256',
    });
    expect(issues).toEqual([]);
    expect(auth).toEqual({
      type: 'oauth2',
      url: 'http://auth.example.com/token',
      client_id: 'wharf',
      scope: 'webhooks:write',
      audience: 'https://api.example.com',
      authentication_type: 'client_assertion',
      signing_key: JWK,
      issuer: 'wharf',
      subject: 'wharf',
    });
  });

  it('takes the signing key as JSON text too, and explicit issuer and subject', () => {
    const { auth, issues } = parse({
      type: 'oauth2',
      url: 'https://auth.example.com/token',
      client_id: 'wharf',
      authentication_type: 'client_assertion',
      signing_key: JSON.stringify({ ...JWK, kid: 'k1', alg: 'ES256', use: 'sig' }),
      issuer: 'iss-1',
      subject: 'sub-1',
    });
    expect(issues).toEqual([]);
    expect(auth).toMatchObject({ signing_key: { ...JWK, kid: 'k1' }, issuer: 'iss-1', subject: 'sub-1' });
  });

  it('survives a JSON round trip, as it is stored', () => {
    const { auth } = parse({ type: 'oauth2', url: 'https://a.example/t', client_id: 'c', authentication_type: 'client_assertion', signing_key: JWK });
    expect(JSON.parse(JSON.stringify(auth))).toEqual(auth);
  });

  describe('refuses', () => {
    it('a block that is not a mapping', () => {
      expect(issuesOf('api_key')).toEqual([issue('', 'must be a mapping (got "api_key")')]);
      expect(issuesOf([1])).toEqual([issue('', 'must be a mapping (got a list)')]);
    });

    it('a missing or unknown type', () => {
      expect(issuesOf({ header_name: 'X' })).toEqual([issue('.type', 'is required: one of api_key, basic_auth, oauth2')]);
      expect(issuesOf({ type: 'hmac' })).toEqual([issue('.type', 'must be one of api_key, basic_auth, oauth2 (got "hmac")')]);
    });

    it('missing api_key fields', () => {
      expect(issuesOf({ type: 'api_key' })).toEqual([issue('.header_name', 'is required'), issue('.header_value', 'is required')]);
    });

    it('header names that are not tokens or that Wharf sets itself', () => {
      const with_ = (header_name: string) => issuesOf({ type: 'api_key', header_name, header_value: SECRET });
      expect(with_('X Api Key')).toEqual([issue('.header_name', 'must be a header name (got "X Api Key")')]);
      expect(with_('X-Key:')).toEqual([issue('.header_name', 'must be a header name (got "X-Key:")')]);
      expect(with_('Content-Type')).toEqual([issue('.header_name', 'names a header Wharf sets itself (got "Content-Type")')]);
      expect(with_('host')).toEqual([issue('.header_name', 'names a header Wharf sets itself (got "host")')]);
      expect(with_('User-Agent')).toEqual([issue('.header_name', 'names a header Wharf sets itself (got "User-Agent")')]);
      expect(with_('X-Wharf-Event-Id')).toEqual([issue('.header_name', 'names a header Wharf sets itself (got "X-Wharf-Event-Id")')]);
      expect(with_('x-wharf-anything')).toEqual([issue('.header_name', 'names a header Wharf sets itself (got "x-wharf-anything")')]);
      expect(with_('Authorization')).toEqual([]);
    });

    it('header values that would split the header, without quoting them', () => {
      expect(issuesOf({ type: 'api_key', header_name: 'X-Key', header_value: `${SECRET}\r\nX-Evil: 1` })).toEqual([
        issue('.header_value', 'must not contain control characters such as line breaks'),
      ]);
      expect(issuesOf({ type: 'api_key', header_name: 'X-Key', header_value: 12345 })).toEqual([
        issue('.header_value', 'must be a string (got a number)'),
      ]);
      expect(issuesOf({ type: 'api_key', header_name: 'X-Key', header_value: '  ' })).toEqual([issue('.header_value', 'must not be empty')]);
    });

    it('keys of another type', () => {
      expect(issuesOf({ type: 'api_key', header_name: 'X-Key', header_value: SECRET, password: SECRET })).toEqual([
        { path: `${AT}.password`, message: '', unknown: true },
      ]);
    });

    it('basic_auth without fields, a colon in the username, a password that is not text', () => {
      expect(issuesOf({ type: 'basic_auth' })).toEqual([issue('.username', 'is required'), issue('.password', 'is required')]);
      expect(issuesOf({ type: 'basic_auth', username: 'a:b', password: SECRET })).toEqual([issue('.username', 'must not contain ":"')]);
      expect(issuesOf({ type: 'basic_auth', username: 'a', password: { v: SECRET } })).toEqual([
        issue('.password', 'must be a string (got a mapping)'),
      ]);
    });

    it('oauth2 without url, client_id or client_secret', () => {
      expect(issuesOf({ type: 'oauth2' })).toEqual([
        issue('.client_id', 'is required'),
        issue('.url', 'is required: the OAuth2 token endpoint'),
        issue('.client_secret', 'is required'),
      ]);
    });

    it('oauth2 token URLs that are not http(s) or carry credentials', () => {
      const with_ = (url: string) => issuesOf({ type: 'oauth2', url, client_id: 'c', client_secret: SECRET });
      expect(with_('auth.example.com/token')).toEqual([issue('.url', 'must be an absolute http or https URL (got "auth.example.com/token")')]);
      expect(with_('ftp://auth.example.com/token')).toEqual([issue('.url', 'must be an http or https URL (got "ftp:")')]);
      expect(with_(`https://user:${SECRET}@auth.example.com/token`)).toEqual([
        issue('.url', 'must not carry credentials'),
      ]);
    });

    it('an unknown authentication_type, grant_type or signing_algorithm', () => {
      expect(
        issuesOf({
          type: 'oauth2',
          url: 'https://a.example/t',
          client_id: 'c',
          client_secret: SECRET,
          authentication_type: 'private_key_jwt',
          grant_type: 'password',
          signing_algorithm: 'RS256',
        }),
      ).toEqual([
        issue('.authentication_type', 'must be one of shared_secret, client_assertion (got "private_key_jwt")'),
        issue('.grant_type', 'must be one of client_credentials (got "password")'),
        issue('.signing_algorithm', 'must be one of ES256 (got "RS256")'),
      ]);
    });

    it('fields of the other authentication_type', () => {
      expect(issuesOf({ type: 'oauth2', url: 'https://a.example/t', client_id: 'c', client_secret: SECRET, signing_key: JWK, issuer: 'i' })).toEqual([
        issue('.signing_key', 'applies to authentication_type client_assertion only'),
        issue('.issuer', 'applies to authentication_type client_assertion only'),
      ]);
      expect(
        issuesOf({ type: 'oauth2', url: 'https://a.example/t', client_id: 'c', authentication_type: 'client_assertion', signing_key: JWK, client_secret: SECRET }),
      ).toEqual([issue('.client_secret', 'applies to authentication_type shared_secret only')]);
    });

    describe('signing keys that cannot sign ES256', () => {
      const withKey = (signing_key: unknown) =>
        issuesOf({ type: 'oauth2', url: 'https://a.example/t', client_id: 'c', authentication_type: 'client_assertion', signing_key });
      const { d: _d, ...publicJwk } = JWK;
      const other = ecJwk();

      it.each<[string, unknown, string]>([
        ['missing', undefined, 'is required: the EC P-256 private key (JWK) that signs client assertions'],
        ['not JSON text', `{"kty":"EC","d":"${SECRET}"`, 'must be a JWK mapping or its JSON text (got text that is not JSON)'],
        ['a list', [JWK], 'must be a JWK mapping (got a list)'],
        ['an RSA key', { kty: 'RSA', n: 'x', e: 'AQAB', d: SECRET }, 'must be an EC key (kty "EC")'],
        ['without kty', { crv: 'P-256', d: SECRET }, 'must be an EC key (kty "EC"), kty is missing'],
        ['on P-384', ecJwk('P-384'), 'must be on curve P-256 (crv "P-256"), as ES256 requires'],
        ['for another algorithm', { ...JWK, alg: 'ES384' }, 'alg must be ES256 when given'],
        ['for encryption', { ...JWK, use: 'enc' }, 'use must be sig when given'],
        ['public only', publicJwk, 'is a public key: d (the private part) is missing'],
        ['with y missing', { ...JWK, y: undefined }, 'y is missing'],
        ['with a short d', { ...JWK, d: 'AAAA' }, 'd must be 32 bytes of base64url'],
        ['with d that is not base64url', { ...JWK, d: `${'+'.repeat(42)}A` }, 'd must be 32 bytes of base64url'],
        ['whose x and y belong to another key', { ...JWK, x: other.x, y: other.y }, 'x and y are not the public half of d'],
        ['whose x and y are not a point at all', { ...JWK, x: 'A'.repeat(43), y: 'A'.repeat(43) }, 'x and y are not the public half of d'],
        ['whose d is zero', { ...JWK, d: 'A'.repeat(43) }, 'is not a valid P-256 private key'],
        ['whose d is beyond the curve order', { ...JWK, d: '_'.repeat(43) }, 'is not a valid P-256 private key'],
      ])('%s', (_name, key, message) => {
        expect(withKey(key)).toEqual([issue('.signing_key', message)]);
      });
    });
  });
});

describe('authSecretKeys', () => {
  it('names the secret key of every type', () => {
    expect(authSecretKeys(null)).toEqual([]);
    expect(authSecretKeys({ type: 'api_key', header_name: 'X', header_value: 'v' })).toEqual(['header_value']);
    expect(authSecretKeys({ type: 'basic_auth', username: 'u', password: 'p' })).toEqual(['password']);
    const common = { type: 'oauth2', url: 'https://a.example/t', client_id: 'c', scope: null, audience: null } as const;
    expect(authSecretKeys({ ...common, authentication_type: 'shared_secret', client_secret: 's' })).toEqual(['client_secret']);
    expect(authSecretKeys({ ...common, authentication_type: 'client_assertion', signing_key: JWK, issuer: 'i', subject: 's' })).toEqual([
      'signing_key',
    ]);
  });
});

describe('createAuthHeaders', () => {
  const calls: string[] = [];
  const tokens: OAuth2TokenSource = {
    token: async (auth, cacheKey) => {
      calls.push(`${cacheKey}:${auth.client_id}`);
      return 'tok-123';
    },
    clear: (cacheKey) => calls.push(`clear:${cacheKey ?? '*'}`),
  };
  const auth = createAuthHeaders({ oauth2: tokens });

  it('sends an API key in its header', async () => {
    expect(await auth.headers({ type: 'api_key', header_name: 'X-Api-Key', header_value: 'k' }, 'ep_1')).toEqual({ 'X-Api-Key': 'k' });
  });

  it('sends Basic credentials as base64 of UTF-8 user:password', async () => {
    expect(await auth.headers({ type: 'basic_auth', username: 'Aladdin', password: 'open sesame' }, 'ep_1')).toEqual({
      authorization: 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==',
    });
    expect(await auth.headers({ type: 'basic_auth', username: 'zoë', password: 'p:w' }, 'ep_1')).toEqual({
      authorization: `Basic ${Buffer.from('zoë:p:w').toString('base64')}`,
    });
  });

  it('sends the OAuth2 token as a bearer token, asking with the endpoint key', async () => {
    const oauth = { type: 'oauth2', url: 'https://a.example/t', client_id: 'c', scope: null, audience: null, authentication_type: 'shared_secret', client_secret: 's' } as const;
    expect(await auth.headers(oauth, 'ep_9')).toEqual({ authorization: 'Bearer tok-123' });
    expect(calls).toContain('ep_9:c');
    auth.close();
    expect(calls).toContain('clear:*');
  });
});
