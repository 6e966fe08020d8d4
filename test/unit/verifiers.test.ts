import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { loadConvoyVectors } from '../fixtures/convoy-vectors.ts';
import { Reader } from '../../src/core/settings.ts';
import type { SettingIssue } from '../../src/core/settings.ts';
import { VERIFIER_TYPES, parseVerifier, verifierSecretKeys, verify } from '../../src/sources/verifiers/index.ts';
import type { IncomingRequest, VerifierConfig, VerifierType, VerifyResult } from '../../src/sources/verifiers/index.ts';

const AT = 'projects[0].sources[1].http.verifier';
const NOW = 1_700_000_000;
const PAYLOAD = '{"id":"evt_1","type":"order.created","total":"12.50","note":"Zoë ☃"}';
const BODY = Buffer.from(PAYLOAD, 'utf8');
const TAMPERED = Buffer.from(PAYLOAD.replace('12.50', '0.01'), 'utf8');

function parse(value: unknown): { config: VerifierConfig; issues: SettingIssue[] } {
  const r = new Reader();
  const config = parseVerifier(r, value, AT);
  return { config, issues: r.issues };
}

/** A config that must parse cleanly, so every test also goes through parseVerifier. */
function configOf(value: unknown): VerifierConfig {
  const { config, issues } = parse(value);
  expect(issues).toEqual([]);
  // Stored encrypted as JSON: it must come back the same.
  expect(JSON.parse(JSON.stringify(config))).toEqual(config);
  return config;
}

/** As Node's HTTP server hands headers over: names lower-cased. */
function request(body: Buffer, headers: Record<string, string | string[]>): IncomingRequest {
  return { body, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) };
}

const rejected = (reason: string | RegExp): VerifyResult =>
  ({ ok: false, reason: typeof reason === 'string' ? reason : expect.stringMatching(reason) }) as VerifyResult;

const hmacOf = (algorithm: string, key: string | Buffer, data: string | Buffer, encoding: 'hex' | 'base64'): string =>
  createHmac(algorithm, key).update(data).digest(encoding);

describe('none', () => {
  it('accepts every request, signed or not', () => {
    const config = configOf({ type: 'none' });
    expect(config).toEqual({ type: 'none' });
    expect(verify(config, request(BODY, {}))).toEqual({ ok: true });
    expect(verify(config, request(TAMPERED, { authorization: 'Basic Zm9vOmJhcg==' }))).toEqual({ ok: true });
  });
});

describe('github', () => {
  const secret = 'It\'s a Secret to Everybody';
  // GitHub: X-Hub-Signature-256 is "sha256=" followed by the hex HMAC-SHA256 of the payload.
  const sign = (body: Buffer | string, key = secret) => ({ 'X-Hub-Signature-256': `sha256=${hmacOf('sha256', key, body, 'hex')}` });
  const config = configOf({ type: 'github', secret });

  it('accepts a request signed as GitHub signs it', () => {
    expect(verify(config, request(BODY, sign(BODY)), NOW)).toEqual({ ok: true });
  });

  it('matches the example in GitHub\'s documentation', () => {
    // Documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    const header = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(verify(config, request(Buffer.from('Hello, World!'), { 'X-Hub-Signature-256': header }), NOW)).toEqual({ ok: true });
  });

  it('rejects a tampered body, a wrong secret and a missing header', () => {
    expect(verify(config, request(TAMPERED, sign(BODY)), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, sign(BODY, 'another secret')), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('X-Hub-Signature-256 header is missing'));
  });

  it('rejects the old SHA-1 header and a signature without its prefix', () => {
    const sha1 = { 'X-Hub-Signature': `sha1=${hmacOf('sha1', secret, BODY, 'hex')}` };
    expect(verify(config, request(BODY, sha1), NOW)).toEqual(rejected('X-Hub-Signature-256 header is missing'));
    const bare = { 'X-Hub-Signature-256': hmacOf('sha256', secret, BODY, 'hex') };
    expect(verify(config, request(BODY, bare), NOW)).toEqual(rejected('X-Hub-Signature-256 header does not start with "sha256="'));
    expect(verify(config, request(BODY, { 'X-Hub-Signature-256': 'sha256=' }), NOW)).toEqual(
      rejected('X-Hub-Signature-256 header has no signature after "sha256="'),
    );
  });

  it('refuses a header given twice rather than choosing one', () => {
    const twice = { 'x-hub-signature-256': [sign(BODY)['X-Hub-Signature-256'], 'sha256=00'] };
    expect(verify(config, request(BODY, twice), NOW)).toEqual(rejected('X-Hub-Signature-256 header is given more than once'));
  });
});

describe('shopify', () => {
  const secret = 'shpss_0123456789abcdef0123456789abcdef';
  // Shopify: X-Shopify-Hmac-SHA256 is the base64 HMAC-SHA256 of the raw body, keyed with the client secret.
  const sign = (body: Buffer, key = secret) => ({ 'X-Shopify-Hmac-Sha256': hmacOf('sha256', key, body, 'base64') });
  const config = configOf({ type: 'shopify', secret });

  it('accepts a request signed as Shopify signs it', () => {
    expect(verify(config, request(BODY, sign(BODY)), NOW)).toEqual({ ok: true });
  });

  it('rejects a tampered body, a wrong secret, a hex digest and a missing header', () => {
    expect(verify(config, request(TAMPERED, sign(BODY)), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, sign(BODY, 'shpss_other')), NOW)).toEqual(rejected('signature does not match'));
    const hex = { 'X-Shopify-Hmac-Sha256': hmacOf('sha256', secret, BODY, 'hex') };
    expect(verify(config, request(BODY, hex), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('X-Shopify-Hmac-SHA256 header is missing'));
  });
});

describe('stripe', () => {
  const secret = 'whsec_test_4eC39HqLyjWDarjtT1zdp7dc';
  // Stripe: v1 is the hex HMAC-SHA256 of "<t>.<raw body>", keyed with the whole endpoint secret as text.
  const v1 = (t: number, body: Buffer | string, key = secret) => hmacOf('sha256', key, Buffer.concat([Buffer.from(`${t}.`), Buffer.from(body)]), 'hex');
  const sign = (t: number, body: Buffer | string, key = secret) => ({ 'Stripe-Signature': `t=${t},v1=${v1(t, body, key)}` });
  const config = configOf({ type: 'stripe', secret });

  it('defaults the tolerance to 300 seconds', () => {
    expect(config).toEqual({ type: 'stripe', secret, tolerance: 300 });
  });

  it('accepts a request signed as Stripe signs it, with v0 and rolled v1 signatures beside it', () => {
    expect(verify(config, request(BODY, sign(NOW, BODY)), NOW)).toEqual({ ok: true });
    const rolling = `t=${NOW},v1=${v1(NOW, BODY, 'whsec_old')},v1=${v1(NOW, BODY)},v0=${'0'.repeat(64)}`;
    expect(verify(config, request(BODY, { 'Stripe-Signature': rolling }), NOW)).toEqual({ ok: true });
  });

  it('accepts clock skew up to the tolerance, either way', () => {
    expect(verify(config, request(BODY, sign(NOW - 300, BODY)), NOW).ok).toBe(true);
    expect(verify(config, request(BODY, sign(NOW + 300, BODY)), NOW).ok).toBe(true);
    expect(verify(config, request(BODY, sign(NOW + 301, BODY)), NOW)).toEqual(
      rejected(`timestamp ${NOW + 301} is outside the tolerance of 300s`),
    );
  });

  it('rejects a tampered body, a wrong secret, a stale timestamp and a missing header', () => {
    expect(verify(config, request(TAMPERED, sign(NOW, BODY)), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, sign(NOW, BODY, 'whsec_other')), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, sign(NOW - 301, BODY)), NOW)).toEqual(
      rejected(`timestamp ${NOW - 301} is outside the tolerance of 300s`),
    );
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('Stripe-Signature header is missing'));
  });

  it('honours a configured tolerance', () => {
    const wide = configOf({ type: 'stripe', secret, tolerance: 3600 });
    expect(verify(wide, request(BODY, sign(NOW - 3600, BODY)), NOW).ok).toBe(true);
    expect(verify(wide, request(BODY, sign(NOW - 3601, BODY)), NOW)).toEqual(rejected(/outside the tolerance of 3600s/));
  });

  it('does not accept the v0 or a moved timestamp in place of v1', () => {
    expect(verify(config, request(BODY, { 'Stripe-Signature': `t=${NOW},v0=${v1(NOW, BODY)}` }), NOW)).toEqual(
      rejected('Stripe-Signature header has no v1 signature'),
    );
    // The signature binds the timestamp: re-dating a captured request breaks it.
    const moved = `t=${NOW + 10},v1=${v1(NOW, BODY)}`;
    expect(verify(config, request(BODY, { 'Stripe-Signature': moved }), NOW)).toEqual(rejected('no v1 signature matches'));
  });

  it('rejects malformed headers with a reason', () => {
    const cases: [string, string][] = [
      [`v1=${v1(NOW, BODY)}`, 'Stripe-Signature header has no t'],
      [`t=${NOW},t=${NOW},v1=${v1(NOW, BODY)}`, 'Stripe-Signature header has more than one t'],
      [`t=1.7e9,v1=${v1(NOW, BODY)}`, 'Stripe-Signature timestamp "1.7e9" is not unix seconds'],
      [`t=Infinity,v1=${v1(NOW, BODY)}`, 'Stripe-Signature timestamp "Infinity" is not unix seconds'],
      [`t=${NOW},garbage`, 'Stripe-Signature header has a malformed part "garbage"'],
    ];
    for (const [header, reason] of cases) {
      expect(verify(config, request(BODY, { 'Stripe-Signature': header }), NOW), header).toEqual(rejected(reason));
    }
  });
});

describe('standard_webhooks', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const headers = (id: string, t: number, payload: string, key = secret) => ({
    'webhook-id': id,
    'webhook-timestamp': String(t),
    'webhook-signature': new Webhook(key).sign(id, new Date(t * 1000), payload),
  });
  const config = configOf({ type: 'standard_webhooks', secret });

  it('defaults the tolerance to 300 seconds', () => {
    expect(config).toEqual({ type: 'standard_webhooks', secret, tolerance: 300 });
  });

  it('accepts a request signed by the standardwebhooks library', () => {
    expect(verify(config, request(BODY, headers('msg_2Kx', NOW, PAYLOAD)), NOW)).toEqual({ ok: true });
  });

  it('accepts any of several signatures and skips versions it does not know', () => {
    const other = 'whsec_' + Buffer.from('another key of 24 bytes!').toString('base64');
    const ours = headers('msg_2', NOW, PAYLOAD)['webhook-signature'];
    const theirs = headers('msg_2', NOW, PAYLOAD, other)['webhook-signature'];
    const signature = `v1a,${Buffer.alloc(64).toString('base64')} ${theirs} ${ours}`;
    expect(verify(config, request(BODY, { ...headers('msg_2', NOW, PAYLOAD), 'webhook-signature': signature }), NOW)).toEqual({ ok: true });
    expect(verify(configOf({ type: 'standard_webhooks', secret: other }), request(BODY, { ...headers('msg_2', NOW, PAYLOAD), 'webhook-signature': signature }), NOW)).toEqual({ ok: true });
  });

  it('rejects a tampered body, a wrong secret, a stale timestamp and a missing header', () => {
    const wrong = 'whsec_' + Buffer.from('not the key you are after').toString('base64');
    expect(verify(config, request(TAMPERED, headers('msg_1', NOW, PAYLOAD)), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, headers('msg_1', NOW, PAYLOAD, wrong)), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, headers('msg_1', NOW - 301, PAYLOAD)), NOW)).toEqual(
      rejected(`timestamp ${NOW - 301} is outside the tolerance of 300s`),
    );
    expect(verify(config, request(BODY, headers('msg_1', NOW + 301, PAYLOAD)), NOW)).toEqual(
      rejected(`timestamp ${NOW + 301} is outside the tolerance of 300s`),
    );
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const { [name]: _dropped, ...rest } = headers('msg_1', NOW, PAYLOAD);
      expect(verify(config, request(BODY, rest), NOW)).toEqual(rejected(`${name} header is missing`));
    }
  });

  it('accepts Svix\'s names for the same headers, and binds its id too', () => {
    const svix = (id: string) => Object.fromEntries(Object.entries(headers(id, NOW, PAYLOAD)).map(([k, v]) => [k.replace('webhook-', 'svix-'), v]));
    expect(verify(config, request(BODY, svix('msg_svix')), NOW)).toEqual({ ok: true });
    expect(verify(config, request(BODY, { ...svix('msg_svix'), 'svix-id': 'msg_other' }), NOW)).toEqual(rejected('no v1 signature matches'));
    const { 'svix-signature': _dropped, ...unsigned } = svix('msg_svix');
    expect(verify(config, request(BODY, unsigned), NOW)).toEqual(rejected('svix-signature header is missing'));
    // The unbranded names win when both are there: a webhook-id added to a Svix request is what gets checked.
    expect(verify(config, request(BODY, { ...svix('msg_svix'), 'webhook-id': 'msg_svix' }), NOW)).toEqual(rejected('webhook-timestamp header is missing'));
  });

  it('binds the message id and the timestamp into the signature', () => {
    const signed = headers('msg_1', NOW, PAYLOAD);
    expect(verify(config, request(BODY, { ...signed, 'webhook-id': 'msg_2' }), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, { ...signed, 'webhook-timestamp': String(NOW - 1) }), NOW)).toEqual(
      rejected('no v1 signature matches'),
    );
  });

  it('rejects a loose timestamp and a header with no v1 entry', () => {
    const signed = headers('msg_1', NOW, PAYLOAD);
    expect(verify(config, request(BODY, { ...signed, 'webhook-timestamp': `${NOW}.0` }), NOW)).toEqual(
      rejected(`webhook-timestamp "${NOW}.0" is not unix seconds`),
    );
    const noV1 = { ...signed, 'webhook-signature': signed['webhook-signature'].replace('v1,', 'v2,') };
    expect(verify(config, request(BODY, noV1), NOW)).toEqual(rejected('webhook-signature header has no v1 signature'));
  });

  it('verifies the exact bytes, even when they are not UTF-8', () => {
    const binary = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x7d]);
    const key = Buffer.from(secret.slice(6), 'base64');
    const sig = createHmac('sha256', key).update(Buffer.concat([Buffer.from(`msg_b.${NOW}.`), binary])).digest('base64');
    const h = { 'webhook-id': 'msg_b', 'webhook-timestamp': String(NOW), 'webhook-signature': `v1,${sig}` };
    expect(verify(config, request(binary, h), NOW)).toEqual({ ok: true });
  });
});

describe('hmac', () => {
  const secret = 'convoy-source-secret';

  it('simple: accepts prefix + digest in each hash and encoding', () => {
    for (const [hash, encoding] of [['SHA256', 'hex'], ['SHA256', 'base64'], ['SHA512', 'hex'], ['SHA512', 'base64']] as const) {
      const config = configOf({ type: 'hmac', header: 'X-Acme-Signature', hash, encoding, secret, prefix: 'sha=' });
      const header = `sha=${hmacOf(hash.toLowerCase(), secret, BODY, encoding)}`;
      expect(verify(config, request(BODY, { 'X-Acme-Signature': header }), NOW), `${hash} ${encoding}`).toEqual({ ok: true });
    }
  });

  it('simple: rejects a tampered body, a wrong secret and a missing header', () => {
    const config = configOf({ type: 'hmac', header: 'X-Acme-Signature', secret });
    const sign = (body: Buffer, key = secret) => ({ 'X-Acme-Signature': hmacOf('sha256', key, body, 'hex') });
    expect(verify(config, request(BODY, sign(BODY)), NOW)).toEqual({ ok: true });
    expect(verify(config, request(TAMPERED, sign(BODY)), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, sign(BODY, 'wrong')), NOW)).toEqual(rejected('signature does not match'));
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('X-Acme-Signature header is missing'));
    expect(verify(config, request(BODY, { 'X-Acme-Signature': '' }), NOW)).toEqual(rejected('X-Acme-Signature header is empty'));
  });

  it('advanced: rejects a tampered body, a wrong secret, a stale timestamp and a missing header', () => {
    const config = configOf({ type: 'hmac', header: 'X-Convoy-Signature', secret, mode: 'advanced' });
    const sign = (t: number, body: Buffer, key = secret) => ({
      'X-Convoy-Signature': `t=${t},v1=${hmacOf('sha256', key, Buffer.concat([Buffer.from(`${t},`), body]), 'hex')}`,
    });
    expect(verify(config, request(BODY, sign(NOW, BODY)), NOW)).toEqual({ ok: true });
    expect(verify(config, request(TAMPERED, sign(NOW, BODY)), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, sign(NOW, BODY, 'wrong')), NOW)).toEqual(rejected('no v1 signature matches'));
    expect(verify(config, request(BODY, sign(NOW - 301, BODY)), NOW)).toEqual(
      rejected(`timestamp ${NOW - 301} is outside the tolerance of 300s`),
    );
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('X-Convoy-Signature header is missing'));
    expect(verify(config, request(BODY, { 'X-Convoy-Signature': 'v1=abc' }), NOW)).toEqual(rejected('X-Convoy-Signature header has no t'));
  });

  it('advanced: reads t=…,v1=… as Stripe does, naming the configured header in each reason', () => {
    const config = configOf({ type: 'hmac', header: 'X-Convoy-Signature', secret, mode: 'advanced' });
    const v1 = hmacOf('sha256', secret, Buffer.concat([Buffer.from(`${NOW},`), BODY]), 'hex');
    const cases: [string, string][] = [
      [`t=${NOW},t=${NOW},v1=${v1}`, 'X-Convoy-Signature header has more than one t'],
      [`t=1.7e9,v1=${v1}`, 'X-Convoy-Signature timestamp "1.7e9" is not unix seconds'],
      [`t=${NOW},garbage`, 'X-Convoy-Signature header has a malformed part "garbage"'],
      [`t=${NOW},v0=${v1}`, 'X-Convoy-Signature header has no v1 signature'],
    ];
    for (const [header, reason] of cases) {
      expect(verify(config, request(BODY, { 'X-Convoy-Signature': header }), NOW), header).toEqual(rejected(reason));
    }
    // Order-free, unknown keys skipped, any of several v1.
    expect(verify(config, request(BODY, { 'X-Convoy-Signature': `v2=x,v1=00,v1=${v1},t=${NOW}` }), NOW)).toEqual({ ok: true });
  });
});

describe('Convoy conformance vectors through verify', () => {
  const vectors = loadConvoyVectors();

  it('covers both outcomes and both modes', () => {
    expect(vectors.some((v) => v.valid) && vectors.some((v) => !v.valid)).toBe(true);
    expect(vectors.some((v) => v.advanced) && vectors.some((v) => !v.advanced)).toBe(true);
  });

  it.each(vectors.map((v) => [v.name, v.valid, v] as const))('%s → valid %s', (_name, valid, v) => {
    const config = configOf({
      type: 'hmac',
      header: 'X-Convoy-Signature',
      hash: v.hash,
      encoding: v.encoding,
      secret: v.secret,
      mode: v.advanced ? 'advanced' : 'simple',
      ...(v.advanced ? { tolerance: v.tolerance } : {}),
    });
    const result = verify(config, request(Buffer.from(v.payload, 'utf8'), { 'X-Convoy-Signature': v.header }));
    expect(result.ok).toBe(valid);
    if (!result.ok) {
      expect(result.reason).toMatch(/\S/);
      expect(result.reason).not.toContain(v.secret);
    }
  });
});

describe('basic_auth', () => {
  const config = configOf({ type: 'basic_auth', username: 'acme', password: 'correct horse battery staple' });
  const basic = (userPass: string, scheme = 'Basic') => ({ Authorization: `${scheme} ${Buffer.from(userPass).toString('base64')}` });

  it('accepts the configured credentials, whatever the body and the scheme\'s case', () => {
    expect(verify(config, request(BODY, basic('acme:correct horse battery staple')), NOW)).toEqual({ ok: true });
    // Credentials authenticate the sender, not the bytes: a changed body is not theirs to catch.
    expect(verify(config, request(TAMPERED, basic('acme:correct horse battery staple', 'basic')), NOW)).toEqual({ ok: true });
  });

  it('rejects a wrong password, a wrong user, another scheme and a missing header, without saying which part was wrong', () => {
    expect(verify(config, request(BODY, basic('acme:wrong')), NOW)).toEqual(rejected('credentials do not match'));
    expect(verify(config, request(BODY, basic('other:correct horse battery staple')), NOW)).toEqual(rejected('credentials do not match'));
    expect(verify(config, request(BODY, basic('acme')), NOW)).toEqual(rejected('credentials do not match'));
    expect(verify(config, request(BODY, { Authorization: 'Bearer correct horse battery staple' }), NOW)).toEqual(
      rejected('Authorization header is not Basic credentials'),
    );
    expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected('Authorization header is missing'));
  });
});

describe('api_key', () => {
  const config = configOf({ type: 'api_key', header_name: 'X-Api-Key', header_value: 'key_live_8f2b0123456789' });

  it('accepts the configured value in the configured header', () => {
    expect(verify(config, request(BODY, { 'x-api-key': 'key_live_8f2b0123456789' }), NOW)).toEqual({ ok: true });
    expect(verify(config, request(TAMPERED, { 'X-API-KEY': 'key_live_8f2b0123456789' }), NOW)).toEqual({ ok: true });
  });

  it('rejects a wrong value, a near miss and a missing header', () => {
    expect(verify(config, request(BODY, { 'x-api-key': 'key_live_0000' }), NOW)).toEqual(rejected('X-Api-Key header does not match'));
    expect(verify(config, request(BODY, { 'x-api-key': 'key_live_8f2b ' }), NOW)).toEqual(rejected('X-Api-Key header does not match'));
    expect(verify(config, request(BODY, { authorization: 'key_live_8f2b0123456789' }), NOW)).toEqual(rejected('X-Api-Key header is missing'));
  });
});

describe('reasons never carry secrets or expected signatures', () => {
  it('holds across every failing request above and a few more', () => {
    const secret = 'do-not-leak-me-ever';
    const standard = 'whsec_' + Buffer.from('do-not-leak-me-either!!!').toString('base64');
    // What each scheme would have accepted for the bytes actually checked (TAMPERED): a reason
    // that printed the expected signature would contain one of these.
    const signed = (prefix: string) => Buffer.concat([Buffer.from(prefix), TAMPERED]);
    const expected = [
      ...(['hex', 'base64'] as const).flatMap((enc) => [
        hmacOf('sha256', secret, TAMPERED, enc),
        hmacOf('sha256', secret, signed(`${NOW},`), enc),
        hmacOf('sha256', secret, signed(`${NOW}.`), enc),
      ]),
      hmacOf('sha256', Buffer.from(standard.slice('whsec_'.length), 'base64'), signed(`m.${NOW}.`), 'base64'),
    ];
    const configs = [
      configOf({ type: 'hmac', header: 'X-Sig', secret }),
      configOf({ type: 'hmac', header: 'X-Sig', secret, mode: 'advanced' }),
      configOf({ type: 'github', secret }),
      configOf({ type: 'shopify', secret }),
      configOf({ type: 'stripe', secret }),
      configOf({ type: 'standard_webhooks', secret: standard }),
      configOf({ type: 'basic_auth', username: 'u', password: secret }),
      configOf({ type: 'api_key', header_name: 'X-Sig', header_value: secret }),
    ];
    const requests: Record<string, string>[] = [
      {},
      { 'X-Sig': 'nope', 'X-Hub-Signature-256': 'sha256=nope', 'X-Shopify-Hmac-SHA256': 'nope' },
      { 'X-Sig': `t=${NOW},v1=nope`, 'Stripe-Signature': `t=${NOW},v1=nope`, Authorization: 'Basic dTp4' },
      { 'webhook-id': 'm', 'webhook-timestamp': String(NOW), 'webhook-signature': 'v1,nope' },
    ];
    for (const config of configs) {
      for (const headers of requests) {
        const result = verify(config, request(TAMPERED, headers), NOW);
        expect(result.ok).toBe(false);
        if (result.ok) continue;
        for (const hidden of [secret, standard, ...expected]) {
          expect(result.reason).not.toContain(hidden);
        }
      }
    }
  });
});

describe('parseVerifier', () => {
  it('fills in the defaults', () => {
    expect(configOf({ type: 'hmac', header: 'X-Sig', secret: 's-secret-long-enough' })).toEqual({
      type: 'hmac',
      header: 'X-Sig',
      hash: 'SHA256',
      encoding: 'hex',
      secret: 's-secret-long-enough',
      mode: 'simple',
      prefix: '',
    });
    expect(configOf({ type: 'hmac', header: 'X-Sig', secret: 's-secret-long-enough', mode: 'advanced', hash: 'SHA512', encoding: 'base64' })).toEqual({
      type: 'hmac',
      header: 'X-Sig',
      hash: 'SHA512',
      encoding: 'base64',
      secret: 's-secret-long-enough',
      mode: 'advanced',
      tolerance: 300,
    });
    expect(configOf({ type: 'none' })).toEqual({ type: 'none' });
  });

  it('reads YAML strings and env-substituted blanks like the rest of the settings', () => {
    expect(configOf({ type: 'stripe', secret: 's-secret-long-enough', tolerance: '600' })).toEqual({ type: 'stripe', secret: 's-secret-long-enough', tolerance: 600 });
    expect(configOf({ type: 'hmac', header: 'X-Sig', secret: 's-secret-long-enough', mode: 'advanced', prefix: '' })).toMatchObject({ mode: 'advanced' });
  });

  it('requires the block, naming type none as the way to accept everything', () => {
    for (const missing of [undefined, null]) {
      expect(parse(missing).issues).toEqual([{ path: AT, message: 'is required; use type: none to accept unverified requests' }]);
    }
  });

  it('fails closed when the block could not be read', () => {
    for (const value of [undefined, 'none', { type: 'nope' }, {}]) {
      const { config, issues } = parse(value);
      expect(issues).not.toEqual([]);
      expect(verify(config, request(BODY, {}), NOW)).toEqual(rejected(/not configured/));
    }
  });

  it('names every problem with its path', () => {
    const types = VERIFIER_TYPES.join(', ');
    const cases: [unknown, SettingIssue[]][] = [
      ['hmac', [{ path: AT, message: 'must be a mapping (got "hmac")' }]],
      [[], [{ path: AT, message: 'must be a mapping (got a list)' }]],
      [{}, [{ path: `${AT}.type`, message: `is required: one of ${types}` }]],
      [{ type: 'svix', secret: 'x' }, [{ path: `${AT}.type`, message: `must be one of ${types} (got "svix")` }]],
      [
        { type: 'hmac' },
        [
          { path: `${AT}.header`, message: 'is required: the request header that carries the signature' },
          { path: `${AT}.secret`, message: 'is required' },
        ],
      ],
      [
        { type: 'hmac', header: 'X Sig', secret: 's-secret-long-enough', hash: 'MD5', encoding: 'base32', mode: 'fast' },
        [
          { path: `${AT}.header`, message: 'must be a header name (got "X Sig")' },
          { path: `${AT}.hash`, message: 'must be one of SHA256, SHA512 (got "MD5")' },
          { path: `${AT}.encoding`, message: 'must be one of hex, base64 (got "base32")' },
          { path: `${AT}.mode`, message: 'must be one of simple, advanced (got "fast")' },
        ],
      ],
      [
        { type: 'hmac', header: 'X-Sig', secret: 's-secret-long-enough', mode: 'advanced', prefix: 'sha256=', tolerance: 0 },
        [
          { path: `${AT}.prefix`, message: 'applies to mode simple only (advanced headers are t=…,v1=…)' },
          { path: `${AT}.tolerance`, message: 'must be an integer from 1 to 3153600000 (got 0)' },
        ],
      ],
      [
        { type: 'hmac', header: 'X-Sig', secret: 's-secret-long-enough', tolerance: 60 },
        [{ path: `${AT}.tolerance`, message: 'applies to mode advanced only (simple signatures carry no timestamp)' }],
      ],
      [
        { type: 'basic_auth', username: 'a:b' },
        [
          { path: `${AT}.username`, message: 'must not contain ":"' },
          { path: `${AT}.password`, message: 'is required' },
        ],
      ],
      [{ type: 'basic_auth', password: 'p-password-long-enough' }, [{ path: `${AT}.username`, message: 'is required' }]],
      [
        { type: 'api_key' },
        [
          { path: `${AT}.header_name`, message: 'is required: the request header that carries the key' },
          { path: `${AT}.header_value`, message: 'is required' },
        ],
      ],
      [{ type: 'github' }, [{ path: `${AT}.secret`, message: 'is required' }]],
      [{ type: 'shopify', secret: '' }, [{ path: `${AT}.secret`, message: 'must not be empty' }]],
      [{ type: 'stripe', secret: 's-secret-long-enough', tolerance: 'soon' }, [{ path: `${AT}.tolerance`, message: 'must be an integer from 1 to 3153600000 (got "soon")' }]],
    ];
    for (const [value, issues] of cases) {
      expect(parse(value).issues, JSON.stringify(value)).toEqual(issues);
    }
  });

  it('reports keys that do not belong to the type', () => {
    expect(parse({ type: 'github', secret: 's-secret-long-enough', header: 'X-Hub-Signature', tolerance: 5 }).issues).toEqual([
      { path: `${AT}.header`, message: '', unknown: true },
      { path: `${AT}.tolerance`, message: '', unknown: true },
    ]);
    expect(parse({ type: 'none', secret: 's-secret-long-enough' }).issues).toEqual([{ path: `${AT}.secret`, message: '', unknown: true }]);
  });

  it('refuses a secret, password or API key shorter than 16 characters, saying so', () => {
    for (const block of [
      { type: 'hmac', header: 'X-Sig', secret: 'short' },
      { type: 'github', secret: 'short' },
      { type: 'basic_auth', username: 'u', password: 'short' },
      { type: 'api_key', header_name: 'X-Key', header_value: 'short' },
    ]) {
      const { issues } = parse(block);
      expect(issues).toHaveLength(1);
      expect(issues[0]!.message).toBe('must be at least 16 characters (got 5): a short secret can be guessed');
    }
  });

  it('checks the standard_webhooks secret is whsec_ + padded base64', () => {
    expect(configOf({ type: 'standard_webhooks', secret: 'whsec_YWJjZGVmZ2hpamtsbW5vcHE=' })).toMatchObject({ secret: 'whsec_YWJjZGVmZ2hpamtsbW5vcHE=' });
    const cases: [string, RegExp][] = [
      ['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', /must start with "whsec_"/],
      ['whsec_', /at least 16 characters/],
      ['whsec_not base64!', /base64/],
      ['whsec_YWIYWIYWIYWIY', /base64/],
      // Well formed, but 11 bytes of key: too short to be a secret (issue 12).
      ['whsec_YWJjZGVmZ2hpams=', /at least 16 bytes of key material/],
      ['whsec_YW-_YW-_YW-_YW-_', /base64/],
    ];
    for (const [secret, message] of cases) {
      const { issues } = parse({ type: 'standard_webhooks', secret });
      expect(issues, secret).toEqual([{ path: `${AT}.secret`, message: expect.stringMatching(message) }]);
    }
  });

  it('never quotes a secret in a message', () => {
    const secret = 'hunter2-hunter2-hunter2';
    const blocks = [
      { type: 'hmac', header: 'X-Sig', secret: 12345 },
      { type: 'github', secret: `${secret}${'x'.repeat(1024)}` },
      { type: 'basic_auth', username: 'u', password: { value: secret } },
      { type: 'api_key', header_name: 'X-Key', header_value: [secret] },
      { type: 'standard_webhooks', secret },
      { type: 'standard_webhooks', secret: `whsec_${secret}!` },
      { type: 'stripe', secret: true },
    ];
    for (const block of blocks) {
      const { issues } = parse(block);
      expect(issues.length, JSON.stringify(block)).toBe(1);
      expect(issues[0].message).not.toMatch(/hunter2|12345/);
      expect(issues[0].message).toMatch(/^must /);
    }
    expect(parse(blocks[0]).issues[0]).toEqual({ path: `${AT}.secret`, message: 'must be a string (got a number)' });
  });
});

describe('verifierSecretKeys', () => {
  it('names the keys that hold secrets, per type', () => {
    const expected: Record<VerifierType, string[]> = {
      none: [],
      hmac: ['secret'],
      basic_auth: ['password'],
      api_key: ['header_value'],
      github: ['secret'],
      shopify: ['secret'],
      stripe: ['secret'],
      standard_webhooks: ['secret'],
    };
    for (const type of VERIFIER_TYPES) expect(verifierSecretKeys(type)).toEqual(expected[type]);
    // Stored blocks are read back unchecked; an unknown type must not throw.
    expect(verifierSecretKeys('svix' as VerifierType)).toEqual([]);
    expect(verifierSecretKeys('toString' as VerifierType)).toEqual([]);
  });

  it('covers every secret a parsed block holds', () => {
    const blocks = [
      { type: 'hmac', header: 'X-Sig', secret: 'SECRET-SECRET-SECRET' },
      { type: 'basic_auth', username: 'u', password: 'SECRET-SECRET-SECRET' },
      { type: 'api_key', header_name: 'X-Key', header_value: 'SECRET-SECRET-SECRET' },
      { type: 'github', secret: 'SECRET-SECRET-SECRET' },
      { type: 'shopify', secret: 'SECRET-SECRET-SECRET' },
      { type: 'stripe', secret: 'SECRET-SECRET-SECRET' },
    ];
    for (const block of blocks) {
      const config = { ...configOf(block) } as Record<string, unknown>;
      for (const key of verifierSecretKeys(config.type as VerifierType)) delete config[key];
      expect(JSON.stringify(config)).not.toContain('SECRET-SECRET-SECRET');
    }
  });
});
