import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { loadConvoyVectors, type Vector } from '../fixtures/convoy-vectors.ts';
import { hmac, safeEqual } from '../../src/core/hmac.ts';
import type { HashAlgorithm, SignatureEncoding, SignatureSettings } from '../../src/core/types.ts';
import { generateSecret, signatureHeaders, validateSecret } from '../../src/delivery/signatures.ts';
import { verifyConvoySignature } from '../../src/sources/verifiers/convoy.ts';
import type { ConvoyVerifyOptions } from '../../src/sources/verifiers/convoy.ts';

const vectors = loadConvoyVectors();
const HEADER = 'X-Convoy-Signature';
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

const convoy = (hash: HashAlgorithm = 'SHA256', encoding: SignatureEncoding = 'hex'): SignatureSettings => ({
  scheme: 'convoy',
  header: HEADER,
  hash,
  encoding,
});
const standard: SignatureSettings = { scheme: 'standard-webhooks', header: 'ignored', hash: 'SHA512', encoding: 'hex' };

describe('Convoy conformance vectors', () => {
  it('covers both outcomes', () => {
    expect(vectors.filter((v) => v.valid).length).toBeGreaterThanOrEqual(8);
    expect(vectors.filter((v) => !v.valid).length).toBeGreaterThanOrEqual(1);
  });

  it.each(vectors.filter((v) => v.valid).map((v) => [v.name, v] as const))('signer reproduces %s', (_name, v) => {
    const timestamp = v.advanced ? Number(/(?:^|,)t=(\d+)/.exec(v.header)?.[1]) : 1_700_000_000;
    const headers = signatureHeaders({
      settings: convoy(v.hash, v.encoding),
      advanced: v.advanced,
      secrets: [v.secret],
      body: Buffer.from(v.payload, 'utf8'),
      timestamp,
      messageId: 'evt_1',
    });
    const expected = v.advanced ? canonicalAdvanced(v.header, v.secret, v) : v.header;
    expect(headers).toEqual({ [HEADER]: expected });
  });

  it.each(vectors.map((v) => [v.name, v.valid, v] as const))('verifier: %s → valid %s', (_name, valid, v) => {
    const result = verifyConvoySignature(v.header, Buffer.from(v.payload, 'utf8'), {
      secrets: [v.secret],
      hash: v.hash,
      encoding: v.encoding,
      advanced: v.advanced,
      toleranceSeconds: v.tolerance,
      now: nowSeconds(),
    });
    expect(result.ok).toBe(valid);
    if (!result.ok) expect(result.reason).toMatch(/\S/);
  });
});

/**
 * The header Wharf's signer would emit for a valid vector: vectors written in another order or with
 * extra v1 values (decoys) still carry exactly one v1 that matches, and Wharf writes `t` first.
 */
function canonicalAdvanced(header: string, secret: string, v: Vector): string {
  const t = /(?:^|,)t=(\d+)/.exec(header)?.[1];
  const sig = createHmac(v.hash.toLowerCase(), secret).update(`${t},${v.payload}`).digest(v.encoding);
  expect(header.split(',')).toContain(`v1=${sig}`);
  return `t=${t},v1=${sig}`;
}

describe('convoy signing', () => {
  const body = Buffer.from('{"event":"charge.success"}', 'utf8');

  it('simple mode signs with the newest secret only', () => {
    const headers = signatureHeaders({
      settings: convoy(),
      advanced: false,
      secrets: ['new', 'old'],
      body,
      timestamp: 1_700_000_000,
      messageId: 'evt_1',
    });
    expect(headers).toEqual({ [HEADER]: createHmac('sha256', 'new').update(body).digest('hex') });
    const verify = (secrets: string[]) =>
      verifyConvoySignature(headers[HEADER], body, {
        secrets,
        hash: 'SHA256',
        encoding: 'hex',
        advanced: false,
        toleranceSeconds: 300,
      }).ok;
    expect(verify(['new'])).toBe(true);
    expect(verify(['old'])).toBe(false);
  });

  it('advanced mode with two secrets carries two v1 values, each verifying alone', () => {
    const timestamp = nowSeconds();
    const headers = signatureHeaders({
      settings: { ...convoy('SHA512', 'base64'), header: 'X-Sig' },
      advanced: true,
      secrets: ['newer-secret', 'older-secret'],
      body,
      timestamp,
      messageId: 'evt_1',
    });
    expect(Object.keys(headers)).toEqual(['X-Sig']);
    const parts = headers['X-Sig'].split(',');
    expect(parts[0]).toBe(`t=${timestamp}`);
    expect(parts.filter((p) => p.startsWith('v1='))).toHaveLength(2);
    expect(parts[1]).toBe(`v1=${hmac('SHA512', 'newer-secret', `${timestamp},${body.toString()}`, 'base64')}`);
    expect(parts[2]).toBe(`v1=${hmac('SHA512', 'older-secret', `${timestamp},${body.toString()}`, 'base64')}`);

    for (const secret of ['newer-secret', 'older-secret']) {
      const result = verifyConvoySignature(headers['X-Sig'], body, {
        secrets: [secret],
        hash: 'SHA512',
        encoding: 'base64',
        advanced: true,
        toleranceSeconds: 300,
      });
      expect(result).toEqual({ ok: true });
    }
    const stranger = verifyConvoySignature(headers['X-Sig'], body, {
      secrets: ['someone-else'],
      hash: 'SHA512',
      encoding: 'base64',
      advanced: true,
      toleranceSeconds: 300,
    });
    expect(stranger.ok).toBe(false);
  });

  it('refuses to sign without a secret or with a non-integer timestamp', () => {
    const base = { settings: convoy(), advanced: true, body, messageId: 'evt_1' };
    expect(() => signatureHeaders({ ...base, secrets: [], timestamp: 1_700_000_000 })).toThrow(/secret/);
    expect(() => signatureHeaders({ ...base, secrets: ['s'], timestamp: 1.5 })).toThrow(/timestamp/);
  });
});

describe('convoy verifier edge cases', () => {
  const secret = 'convoy-webhook-secret';
  const body = Buffer.from('{"a":1}', 'utf8');
  const now = 1_700_000_000;
  const sig = (t: number | string) => hmac('SHA256', secret, `${t},${body.toString()}`, 'hex');
  const verify = (header: string | undefined, overrides: Partial<ConvoyVerifyOptions> = {}) =>
    verifyConvoySignature(header, body, {
      secrets: [secret],
      hash: 'SHA256',
      encoding: 'hex',
      advanced: true,
      toleranceSeconds: 300,
      now,
      ...overrides,
    });

  it('accepts a fresh header and tolerates small clock skew both ways', () => {
    expect(verify(`t=${now},v1=${sig(now)}`)).toEqual({ ok: true });
    expect(verify(`t=${now - 300},v1=${sig(now - 300)}`).ok).toBe(true);
    expect(verify(`t=${now + 300},v1=${sig(now + 300)}`).ok).toBe(true);
    expect(verify(`t=${now - 301},v1=${sig(now - 301)}`).ok).toBe(false);
    expect(verify(`t=${now + 301},v1=${sig(now + 301)}`).ok).toBe(false);
  });

  it('rejects malformed timestamps and headers', () => {
    expect(verify(undefined)).toEqual({ ok: false, reason: expect.stringMatching(/missing/) });
    expect(verify('')).toMatchObject({ ok: false });
    // Each of these is a number to a lax parser (Number(), parseFloat), and each carries the
    // signature that parser's reading of it would check, so only a strict digits-only parse rejects.
    for (const t of ['1.7e9', '0x6553f100', '1700000000.0', '+1700000000', '1700000000.4']) {
      expect(verify(`t=${t},v1=${sig(now)}`).ok, `t=${t}`).toBe(false);
    }
    for (const t of ['Infinity', '-Infinity', 'NaN', '-1700000000', '0', '', '17000000001700000000000']) {
      expect(verify(`t=${t},v1=${sig(t)}`, { toleranceSeconds: Infinity }).ok, `t=${t}`).toBe(false);
    }
    expect(verify(`t=${now},t=${now},v1=${sig(now)}`).ok).toBe(false);
    expect(verify(`t=${now}`)).toEqual({ ok: false, reason: expect.stringMatching(/v1/) });
    expect(verify(`t=${now},garbage,v1=${sig(now)}`).ok).toBe(false);
  });

  it('ignores unknown keys and accepts any of several secrets', () => {
    expect(verify(`v0=abc,t=${now},v1=${sig(now)}`).ok).toBe(true);
    expect(verify(`t=${now},v1=${sig(now)}`, { secrets: ['rotated-out', secret] }).ok).toBe(true);
  });

  it('checks the body byte for byte', () => {
    const header = `t=${now},v1=${sig(now)}`;
    const result = verifyConvoySignature(header, Buffer.from('{"a":2}'), {
      secrets: [secret],
      hash: 'SHA256',
      encoding: 'hex',
      advanced: true,
      toleranceSeconds: 300,
      now,
    });
    expect(result.ok).toBe(false);
  });
});

describe('standard-webhooks signing', () => {
  const payload = '{"type":"invoice.paid","amount":42}';
  const body = Buffer.from(payload, 'utf8');

  it('produces headers the standardwebhooks library verifies', () => {
    const secret = generateSecret('standard-webhooks');
    const timestamp = nowSeconds();
    const headers = signatureHeaders({
      settings: standard,
      advanced: true,
      secrets: [secret],
      body,
      timestamp,
      messageId: 'evt_2Vd9',
    });
    expect(Object.keys(headers).sort()).toEqual(['webhook-id', 'webhook-signature', 'webhook-timestamp']);
    expect(headers['webhook-id']).toBe('evt_2Vd9');
    expect(headers['webhook-timestamp']).toBe(String(timestamp));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign('evt_2Vd9', new Date(timestamp * 1000), payload));
    expect(new Webhook(secret).verify(payload, headers)).toEqual(JSON.parse(payload));
  });

  it('signs once per secret so either side of a rotation verifies', () => {
    const newer = generateSecret('standard-webhooks');
    const older = generateSecret('standard-webhooks');
    const headers = signatureHeaders({
      settings: standard,
      advanced: false,
      secrets: [newer, older],
      body,
      timestamp: nowSeconds(),
      messageId: 'evt_rot',
    });
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(() => new Webhook(older).verify(payload, headers)).not.toThrow();
    expect(() => new Webhook(newer).verify(payload, headers)).not.toThrow();
    expect(() => new Webhook(generateSecret('standard-webhooks')).verify(payload, headers)).toThrow(
      /No matching signature/,
    );
  });

  it('accepts a secret without the whsec_ prefix, like the library', () => {
    const raw = Buffer.from('0123456789abcdefghijklmn').toString('base64');
    const headers = signatureHeaders({
      settings: standard,
      advanced: false,
      secrets: [raw],
      body,
      timestamp: nowSeconds(),
      messageId: 'evt_raw',
    });
    expect(() => new Webhook(`whsec_${raw}`).verify(payload, headers)).not.toThrow();
  });

  it('fails verification for a tampered body', () => {
    const secret = generateSecret('standard-webhooks');
    const headers = signatureHeaders({
      settings: standard,
      advanced: false,
      secrets: [secret],
      body,
      timestamp: nowSeconds(),
      messageId: 'evt_t',
    });
    expect(() => new Webhook(secret).verify(payload.replace('42', '43'), headers)).toThrow(/No matching signature/);
  });

  it('refuses a secret that is not base64', () => {
    expect(() =>
      signatureHeaders({
        settings: standard,
        advanced: false,
        secrets: ['whsec_not base64!'],
        body,
        timestamp: nowSeconds(),
        messageId: 'evt_x',
      }),
    ).toThrow(/base64/);
  });
});

describe('non-ASCII bodies', () => {
  const payload = '{"name":"Zoë ☃"}';
  const body = Buffer.from(payload, 'utf8');

  it('convoy signs the UTF-8 bytes and verifies', () => {
    expect(body.length).toBeGreaterThan(payload.length);
    const timestamp = nowSeconds();
    const headers = signatureHeaders({
      settings: convoy(),
      advanced: true,
      secrets: ['s3cret'],
      body,
      timestamp,
      messageId: 'evt_u',
    });
    const expected = createHmac('sha256', 's3cret')
      .update(Buffer.concat([Buffer.from(`${timestamp},`), body]))
      .digest('hex');
    expect(headers[HEADER]).toBe(`t=${timestamp},v1=${expected}`);
    const options: ConvoyVerifyOptions = {
      secrets: ['s3cret'],
      hash: 'SHA256',
      encoding: 'hex',
      advanced: true,
      toleranceSeconds: 60,
    };
    expect(verifyConvoySignature(headers[HEADER], body, options)).toEqual({ ok: true });
    // Latin-1 has the same characters but different bytes: must not verify.
    expect(verifyConvoySignature(headers[HEADER], Buffer.from('{"name":"Zoë"}', 'latin1'), options).ok).toBe(false);
  });

  it('convoy signs bytes that are not valid UTF-8 exactly', () => {
    const binary = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0xc3, 0x7d]);
    const headers = signatureHeaders({
      settings: convoy('SHA512', 'base64'),
      advanced: false,
      secrets: ['k'],
      body: binary,
      timestamp: 1_700_000_000,
      messageId: 'evt_b',
    });
    expect(headers[HEADER]).toBe(createHmac('sha512', 'k').update(binary).digest('base64'));
  });

  it('standard-webhooks signs the UTF-8 bytes and the library verifies', () => {
    const secret = generateSecret('standard-webhooks');
    const headers = signatureHeaders({
      settings: standard,
      advanced: false,
      secrets: [secret],
      body,
      timestamp: nowSeconds(),
      messageId: 'evt_ü',
    });
    expect(new Webhook(secret).verify(payload, headers)).toEqual({ name: 'Zoë ☃' });
    expect(new Webhook(secret).verify(body, headers)).toEqual({ name: 'Zoë ☃' });
  });
});

describe('secrets', () => {
  it('generates convoy secrets of 32 random bytes in base64url', () => {
    const a = generateSecret('convoy');
    const b = generateSecret('convoy');
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(a).not.toBe(b);
    expect(validateSecret('convoy', a)).toBeNull();
  });

  it('generates standard-webhooks secrets of 24 random bytes behind whsec_', () => {
    const a = generateSecret('standard-webhooks');
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(24);
    expect(a).not.toBe(generateSecret('standard-webhooks'));
    expect(validateSecret('standard-webhooks', a)).toBeNull();
    expect(() => new Webhook(a)).not.toThrow();
  });

  it('validates convoy secrets by length only', () => {
    expect(validateSecret('convoy', 'any text, even with spaces')).toBeNull();
    expect(validateSecret('convoy', 'x'.repeat(1024))).toBeNull();
    expect(validateSecret('convoy', '')).toMatch(/empty/);
    expect(validateSecret('convoy', 'x'.repeat(1025))).toMatch(/1024/);
  });

  it('validates standard-webhooks secrets as (whsec_) padded base64', () => {
    expect(validateSecret('standard-webhooks', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBeNull();
    expect(validateSecret('standard-webhooks', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBeNull();
    expect(validateSecret('standard-webhooks', 'whsec_YWJj')).toBeNull();
    expect(validateSecret('standard-webhooks', 'whsec_YWI=')).toBeNull();
    expect(validateSecret('standard-webhooks', '')).toMatch(/empty/);
    expect(validateSecret('standard-webhooks', 'whsec_')).toMatch(/base64/);
    expect(validateSecret('standard-webhooks', 'whsec_not base64!')).toMatch(/base64/);
    expect(validateSecret('standard-webhooks', 'whsec_YWI')).toMatch(/base64/);
    expect(validateSecret('standard-webhooks', 'whsec_YW-_')).toMatch(/base64/);
    expect(validateSecret('standard-webhooks', `whsec_${'A'.repeat(1020)}`)).toMatch(/1024/);
  });
});

describe('safeEqual', () => {
  it('compares contents and returns false on length mismatch without throwing', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('é', 'e')).toBe(false);
  });
});
