/**
 * The portal's building blocks: the one escaping function and the template that applies it,
 * the delivery filters, header redaction, the base URL of links, and the `portal` config keys.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { escapeHtml, href, html, time } from '../../src/portal/html.ts';
import { parseDeliveryFilters, parseTime, redactRequestHeaders } from '../../src/portal/filters.ts';
import { portalBaseUrl, type PortalOptions } from '../../src/portal/options.ts';
import { linkState } from '../../src/store/portal-links.ts';

describe('portal html', () => {
  it('escapes the five characters that matter in content and quoted attributes', () => {
    expect(escapeHtml(`<script>"a" & 'b'</script>`)).toBe('&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;');
  });

  it('escapes every interpolated value, once, and only values', () => {
    const hostile = '"><img src=x onerror=alert(1)>';
    const out = html`<input value="${hostile}"><p>${['<b>', 1, null, undefined, false]}</p>${html`<i>${'&'}</i>`}`.value;
    expect(out).toBe('<input value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"><p>&lt;b&gt;1</p><i>&amp;</i>');
  });

  it('builds links with encoded queries and leaves empty values out', () => {
    expect(href('/portal/deliveries', { status: 'failure', endpoint_id: 'a&b=c', event_type: '', from: null })).toBe(
      '/portal/deliveries?status=failure&endpoint_id=a%26b%3Dc',
    );
    expect(time(new Date('2026-01-31T12:34:56.789Z')).value).toBe('<time datetime="2026-01-31T12:34:56.789Z">2026-01-31 12:34:56 UTC</time>');
  });
});

describe('portal delivery filters', () => {
  const mine = (id: string) => id === 'mine';
  const parse = (q: Record<string, unknown>) => parseDeliveryFilters(q, mine);

  it('reads every filter', () => {
    const r = parse({ status: 'failure,discarded', endpoint_id: 'mine', event_type: 'order.paid', from: '2026-01-01T10:00', to: '2026-01-02T00:00:00Z', before: '01a208db-4f48-7392-b923-91ee4bad781d' });
    expect(r.error).toBeNull();
    expect(r.filter).toEqual({
      statuses: ['failure', 'discarded'],
      endpointId: 'mine',
      eventType: 'order.paid',
      from: new Date('2026-01-01T10:00:00Z'),
      to: new Date('2026-01-02T00:00:00Z'),
      before: '01a208db-4f48-7392-b923-91ee4bad781d',
      perPage: 25,
    });
    expect(parse({ per_page: '5' }).filter).toEqual({ statuses: [], endpointId: null, eventType: null, from: null, to: null, before: null, perPage: 5 });
  });

  it('says what is wrong, naming the field, instead of failing', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ status: 'lost' }, 'status: must be one of scheduled, processing, success, failure, retry, discarded (got "lost")'],
      [{ endpoint_id: 'theirs' }, 'endpoint_id: no such endpoint among yours'],
      [{ event_type: 'x'.repeat(201) }, 'event_type: must be at most 200 characters'],
      [{ from: 'yesterday' }, 'from: must be a date and time'],
      [{ to: '2026-02-30T10:00' }, 'to: must be a date and time'],
      [{ to: '2026-13-01T10:00' }, 'to: must be a date and time'],
      [{ from: '2026-01-01T25:00' }, 'from: must be a date and time'],
      [{ from: '2026-01-02T00:00', to: '2026-01-01T00:00' }, 'to: must be after from'],
      [{ before: "1' OR 1=1" }, 'before: is not a page of this list'],
      [{ per_page: '0' }, 'per_page: must be a whole number from 1 to 100'],
      [{ per_page: '1e2' }, 'per_page: must be a whole number from 1 to 100'],
      // Given twice: refused, never half-used (the first was taken, the other dropped).
      [{ status: ['failure', 'success'] }, 'status: must be a string (got a list: give it once)'],
      [{ endpoint_id: ['mine', 'theirs'] }, 'endpoint_id: must be a string (got a list: give it once)'],
      [{ before: ['01a208db-4f48-7392-b923-91ee4bad781d', 'x'] }, 'before: must be a string (got a list: give it once)'],
    ];
    for (const [q, message] of cases) expect(parse(q).error, JSON.stringify(q)).toContain(message);
    expect(parse({ status: ['failure', 'success'] }).filter.statuses).toEqual([]);
    // What was typed is kept, to be shown back in the form.
    expect(parse({ status: 'lost' }).values.status).toBe('lost');
  });

  it('reads times: a local time as UTC, or with a zone; with `zoned`, only with a zone; never a day that does not exist', () => {
    expect(parseTime('2030-01-31T12:00')).toEqual(new Date('2030-01-31T12:00:00Z'));
    expect(parseTime('2030-01-31T12:00:00+05:30', { zoned: true })).toEqual(new Date('2030-01-31T06:30:00Z'));
    expect(parseTime('2030-01-31T12:00:00', { zoned: true })).toBeNull();
    expect(parseTime('2030-02-30T00:00:00Z', { zoned: true })).toBeNull();
  });
});

describe('portal header redaction', () => {
  it('hides signatures and credentials, whatever their case, and keeps the rest', () => {
    const shown = redactRequestHeaders(
      {
        'content-type': 'application/json',
        'X-Convoy-Signature': 't=1,v1=abc',
        'webhook-signature': 'v1,xyz',
        'webhook-id': 'msg_1',
        'X-Acme-Sig': 'deadbeef',
        authorization: 'Bearer secret',
        'x-api-key': 'k',
        'X-Wharf-Event-Type': 'order.paid',
      },
      'x-acme-sig',
    );
    expect(shown).toEqual({
      'content-type': 'application/json',
      'X-Convoy-Signature': '********',
      'webhook-signature': '********',
      'webhook-id': 'msg_1',
      'X-Acme-Sig': '********',
      authorization: '********',
      'x-api-key': '********',
      'X-Wharf-Event-Type': 'order.paid',
    });
  });
});

describe('portal links', () => {
  it('a link is revoked, expired, used or active, in that order', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const past = new Date('2025-12-31T00:00:00Z');
    const base = { kind: 'one_time' as const, expires_at: null, used_at: null, revoked_at: null };
    expect(linkState(base, now)).toBe('active');
    expect(linkState({ ...base, used_at: past }, now)).toBe('used');
    expect(linkState({ ...base, kind: 'long_lived', used_at: past }, now)).toBe('active');
    expect(linkState({ ...base, used_at: past, expires_at: past }, now)).toBe('expired');
    expect(linkState({ ...base, expires_at: past, revoked_at: past }, now)).toBe('revoked');
  });

  it('their base URL: public_url, else the listen address, else the Host the request named', () => {
    const req = { protocol: 'http', host: 'wharf.internal:8080', socket: { localPort: 5005 } } as unknown as FastifyRequest;
    const options: PortalOptions = { publicUrl: '', sessionMinutes: 60, frameAncestors: "'none'", listenHost: '127.0.0.1' };
    expect(portalBaseUrl({ ...options, publicUrl: 'https://hooks.example.com/' }, req)).toBe('https://hooks.example.com');
    expect(portalBaseUrl({ ...options, listenHost: '127.0.0.1' }, req)).toBe('http://127.0.0.1:5005');
    expect(portalBaseUrl({ ...options, listenHost: '::1' }, req)).toBe('http://[::1]:5005');
    expect(portalBaseUrl({ ...options, listenHost: '0.0.0.0' }, req)).toBe('http://wharf.internal:8080');
  });
});

describe('portal config', () => {
  const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-portal-config-'));
    try {
      const file = join(dir, 'wharf.yaml');
      writeFileSync(file, yaml);
      return loadConfig({ file, env, cwd: dir }).config;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  // The defaults are in config.test.ts.
  it('takes values and WHARF_PORTAL_URL', () => {
    expect(load('portal: { public_url: "https://hooks.example.com", session_minutes: 15, frame_ancestors: "https://app.example.com" }').portal).toEqual({
      public_url: 'https://hooks.example.com',
      session_minutes: 15,
      frame_ancestors: 'https://app.example.com',
    });
    expect(load('', { WHARF_PORTAL_URL: 'https://portal.example.com' }).portal.public_url).toBe('https://portal.example.com');
  });

  it('refuses bad values, naming the key', () => {
    expect(() => load('portal: { public_url: "ftp://x.example.com" }')).toThrow(/portal\.public_url: must be "" or an http\(s\) URL/);
    expect(() => load('portal: { public_url: "https://x.example.com/?a=1" }')).toThrow(/portal\.public_url/);
    expect(() => load('portal: { session_minutes: 0 }')).toThrow(/portal\.session_minutes: must be an integer from 1 to 10080/);
    expect(() => load(`portal: { frame_ancestors: "'none'; script-src *" }`)).toThrow(/portal\.frame_ancestors: must be a CSP source list/);
    expect(() => load('portal: { colour: red }')).toThrow(/portal\.colour/);
  });
});
