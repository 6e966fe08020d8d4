/**
 * A delivery's first attempt kept in the delivery's own row (migration 022, issue 15): which
 * attempts the recorder folds there, that the API shows them as it shows any attempt, in order
 * with the ones kept as rows of delivery_attempts, and that recording one is a HOT update.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../harness/app.ts';
import { startReceiver, type Receiver } from '../../harness/receiver.ts';
import { FOLD_MAX_CHARS, foldsFirstAttempt } from '../../../src/dispatch/worker.ts';
import { FOLD_WITHIN_MS } from '../../../src/store/retention.ts';
import { uuidv7, uuidv7Floor } from '../../../src/core/ids.ts';

// Quotes, backslashes, braces, commas, NULL spelled out and characters of every UTF-8 width: what
// an array literal would escape, and what a bytea cut at byte offsets must not shift (store/params.ts).
const TEXTURE_BODY = '{"ok":"é😀€ \u2028 {,} NULL \\ "q""}';
const TEXTURE_HEADER = 'a "quoted" \\ value, {braced}';

describe("a delivery's first attempt in its own row", () => {
  let t: TestApp;
  let rx: Receiver;
  const flaky = new Set<string>();
  beforeAll(async () => {
    rx = await startReceiver();
    rx.answer((r) => {
      if (r.path === '/large') return { status: 200, body: 'x'.repeat(FOLD_MAX_CHARS + 1) };
      // Short enough to be folded into its delivery; with the header and a long body, a row of its own.
      if (r.path === '/texture') return { status: 200, body: TEXTURE_BODY };
      if (r.path === '/texture-row') return { status: 200, body: TEXTURE_BODY.repeat(20), headers: { 'x-note': TEXTURE_HEADER } };
      const id = String(r.headers['x-wharf-delivery-id']);
      if (r.path === '/flaky' && !flaky.has(id)) {
        flaky.add(id);
        return { status: 503, body: 'busy' };
      }
      return { status: 200, body: 'ok' };
    });
    t = await startTestApp({ projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 2 } }] });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  /** Posts an event to a new endpoint at `path` and waits for its delivery to end as `status`. */
  async function deliver(path: string, status: string): Promise<string> {
    const ep = await t.api('POST', '/endpoints', { name: path, url: `${rx.url}${path}`, skip_ping_validation: true });
    expect(ep.status, ep.text).toBe(201);
    const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'first.attempt', data: { path } });
    expect(ev.status, ev.text).toBe(201);
    const delivery = async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
    await expect.poll(async () => (await delivery())?.status, { timeout: 15_000 }).toBe(status);
    return (await delivery()).uid as string;
  }

  const rowsOf = async (deliveryId: string) =>
    (await t.app.pool.query<{ attempt: number; status_code: number }>('SELECT attempt, status_code FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt', [deliveryId])).rows;
  const firstOf = async (deliveryId: string) =>
    (await t.app.pool.query<{ first_attempt_id: string | null; first_attempted_at: Date | null; first_status_code: number | null; first_response_body: string | null }>(
      'SELECT first_attempt_id, first_attempted_at, first_status_code, first_response_body FROM deliveries WHERE id = $1',
      [deliveryId],
    )).rows[0]!;

  it('keeps a small first attempt in the delivery, in an update that stays HOT, and shows it as any attempt', async () => {
    const stats = async () =>
      (await t.app.pool.query<{ upd: number; hot: number }>(
        `SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE relname = 'deliveries'`,
      )).rows[0]!;
    const before = await stats();
    const id = await deliver('/small', 'Success');
    expect(await rowsOf(id)).toEqual([]);
    const first = await firstOf(id);
    // No id stored for it (migration 023): it is the delivery's, version 8 where the delivery's is 7.
    expect(first).toMatchObject({ first_attempt_id: null, first_attempted_at: expect.any(Date), first_status_code: 200, first_response_body: 'ok' });
    const attemptId = `${id.slice(0, 14)}8${id.slice(15)}`;
    expect(id[14]).toBe('7');
    const sent = rx.requests.find((r) => r.headers['x-wharf-delivery-id'] === id)!;

    const { body } = await t.api('GET', `/eventdeliveries/${id}/deliveryattempts`);
    expect(body.data).toHaveLength(1);
    expect(body.data[0]).toMatchObject({
      uid: attemptId,
      attempt: 1,
      http_status: '200 OK',
      status: true,
      response_data: 'ok',
      url: `${rx.url}/small`,
      msg_id: id,
    });
    // The request headers as sent, the signature among them.
    for (const [k, v] of Object.entries(body.data[0].request_http_header as Record<string, string>)) expect([k, sent.headers[k.toLowerCase()]]).toEqual([k, v]);
    expect(Object.keys(body.data[0].request_http_header).map((k) => k.toLowerCase())).toContain('x-convoy-signature');
    const one = await t.api('GET', `/eventdeliveries/${id}/deliveryattempts/${attemptId}`);
    expect(one.status, one.text).toBe(200);
    expect(one.body.data.uid).toBe(attemptId);

    // The update that wrote it kept the row on its page: no new index entries (what the fold saves).
    // Postgres's statistics can arrive up to ten seconds after the recorder's commit: a backend that
    // flushed them less than a second before holds them until it next commits after that second,
    // or until it has been idle for PGSTAT_IDLE_INTERVAL (10 s, Postgres 15). CI once waited 5 s in vain.
    await expect.poll(async () => (await stats()).upd - before.upd, { timeout: 15_000, interval: 200 }).toBeGreaterThan(0);
    const after = await stats();
    expect(after.hot - before.hot).toBe(after.upd - before.upd);
  });

  it('a first attempt folded before migration 023 keeps the id it was stored with', async () => {
    const id = await deliver('/small', 'Success');
    const stored = uuidv7();
    await t.app.pool.query('UPDATE deliveries SET first_attempt_id = $2 WHERE id = $1', [id, stored]);
    const { body } = await t.api('GET', `/eventdeliveries/${id}/deliveryattempts`);
    expect(body.data.map((a: { uid: string; attempt: number }) => [a.uid, a.attempt])).toEqual([[stored, 1]]);
    expect((await t.api('GET', `/eventdeliveries/${id}/deliveryattempts/${stored}`)).body.data.uid).toBe(stored);
  });

  it('stores what the answers held, byte for byte, in the row and as a row of its own', async () => {
    const attemptsOf = async (id: string) => (await t.api('GET', `/eventdeliveries/${id}/deliveryattempts`)).body.data as Record<string, any>[];
    const folded = await deliver('/texture', 'Success');
    expect((await firstOf(folded)).first_response_body).toBe(TEXTURE_BODY);
    const [a] = await attemptsOf(folded);
    expect([a!.response_data, a!.url]).toEqual([TEXTURE_BODY, `${rx.url}/texture`]);

    const row = await deliver('/texture-row', 'Success');
    expect(await rowsOf(row)).toEqual([{ attempt: 1, status_code: 200 }]);
    const [b] = await attemptsOf(row);
    expect([b!.response_data, b!.response_http_header['x-note'], b!.url]).toEqual([TEXTURE_BODY.repeat(20), TEXTURE_HEADER, `${rx.url}/texture-row`]);

    // The request headers as sent, in both.
    for (const [id, attempt] of [[folded, a!], [row, b!]] as const) {
      const sent = rx.requests.find((r) => r.headers['x-wharf-delivery-id'] === id)!;
      expect(attempt.request_http_header['X-Convoy-Signature']).toBe(sent.headers['x-convoy-signature']);
    }
  });

  it('keeps a first attempt with a long answer as a row of its own', async () => {
    const id = await deliver('/large', 'Success');
    expect(await rowsOf(id)).toEqual([{ attempt: 1, status_code: 200 }]);
    expect((await firstOf(id)).first_attempted_at).toBeNull();
    const { body } = await t.api('GET', `/eventdeliveries/${id}/deliveryattempts`);
    expect(body.data.map((a: { attempt: number; response_data: string }) => [a.attempt, a.response_data.length])).toEqual([[1, FOLD_MAX_CHARS + 1]]);
  });

  it('a retried delivery: its first attempt in the row, the next in delivery_attempts, listed in order', async () => {
    const id = await deliver('/flaky', 'Success');
    expect((await firstOf(id)).first_status_code).toBe(503);
    expect(await rowsOf(id)).toEqual([{ attempt: 2, status_code: 200 }]);
    const { body } = await t.api('GET', `/eventdeliveries/${id}/deliveryattempts`);
    expect(body.data.map((a: { attempt: number; status_code: number; response_data: string }) => [a.attempt, a.status_code, a.response_data])).toEqual([
      [1, 503, 'busy'],
      [2, 200, 'ok'],
    ]);
    // The delivery's own counters are those of its last attempt.
    const d = (await t.api('GET', `/eventdeliveries/${id}`)).body.data;
    expect(d).toMatchObject({ attempts: 2, last_status_code: 200 });
  });
});

describe('which first attempts are folded', () => {
  const attempt = (over: { attempt?: number; madeAgoMs?: number; body?: string }) => {
    return {
      o: {
        attempt: over.attempt ?? 1,
        // The delivery's id says when it was made.
        row: { id: uuidv7Floor(Date.now() - (over.madeAgoMs ?? 0)) },
        url: 'http://127.0.0.1:9/hook',
        result: { error: null, errorCode: null },
      },
      id: uuidv7(),
      requestHeaders: '{"user-agent":"Wharf"}',
      responseHeaders: '{}',
      responseBody: over.body ?? 'ok',
    } as unknown as Parameters<typeof foldsFirstAttempt>[0];
  };

  it('folds a short first attempt made soon after its delivery, and no other', () => {
    const now = Date.now();
    expect(foldsFirstAttempt(attempt({}), now)).toBe(true);
    expect(foldsFirstAttempt(attempt({ attempt: 2 }), now)).toBe(false);
    expect(foldsFirstAttempt(attempt({ madeAgoMs: FOLD_WITHIN_MS + 60_000 }), now)).toBe(false);
    expect(foldsFirstAttempt(attempt({ body: 'x'.repeat(FOLD_MAX_CHARS) }), now)).toBe(false);
  });
});
