/**
 * The conformance suite every broker connector runs against its real broker, through a whole
 * Wharf (sources API → connector → ingest → Postgres → delivery). A connector's test file builds a
 * `BrokerFixture` and calls `describeConformance(fixture)`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../harness/app.ts';
import { startReceiver, type Receiver } from '../../harness/receiver.ts';
import { until } from './support.ts';
import type { BrokerChannel, BrokerFixture } from '../../harness/brokers/fixture.ts';

export type { BrokerChannel, BrokerFixture, PublishMessage } from '../../harness/brokers/fixture.ts';

/** `until` with the timeout before the description, as the suite's callers write it. */
export const eventually = <T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 45_000, what = 'condition'): Promise<T> =>
  until(read, done, what, timeoutMs);

const envelope = (seq: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ endpoint_id: 'ep', event_type: 'conformance.seq', data: { seq }, ...extra });

export function describeConformance(fixture: BrokerFixture): void {
  describe(`${fixture.type} connector conformance (through Wharf)`, () => {
    let t: TestApp;
    let receiver: Receiver;
    const channels: BrokerChannel[] = [];

    beforeAll(async () => {
      receiver = await startReceiver();
      t = await startTestApp({
        ingest: { api_broker_types: [fixture.type] },
        projects: [{ id: 'default', name: 'Default', endpoints: [{ id: 'ep', url: receiver.url }] }],
      });
    });
    afterAll(async () => {
      await t?.stop();
      await receiver?.close();
      for (const c of channels) await c.close?.().catch(() => undefined);
    });

    const unique = (what: string): string => `${what}-${randomBytes(4).toString('hex')}`;

    /** A channel and a source consuming it, running. */
    const source = async (what: string, extra: Record<string, unknown> = {}): Promise<{ id: string; channel: BrokerChannel }> => {
      const name = unique(what);
      const channel = await fixture.channel(name);
      channels.push(channel);
      const res = await t.api('POST', '/sources', { name, type: fixture.type, [fixture.type]: channel.block, ...extra });
      expect(res.status, res.text).toBe(201);
      const id = res.body.data.uid as string;
      await eventually(() => sourceState(id), (s) => s === 'running', 30_000, `source ${id} running`);
      return { id, channel };
    };
    const sourceState = async (id: string): Promise<string | null> => (await t.api('GET', `/sources/${id}`)).body?.data?.status?.state ?? null;

    /** [rows, distinct seqs] of a source's events. */
    const counts = async (sourceId: string): Promise<{ rows: number; distinct: number }> => {
      const { rows } = await t.app.pool.query<{ rows: number; distinct: number }>(
        `SELECT count(*)::int AS rows, count(DISTINCT data::jsonb->>'seq')::int AS distinct FROM events WHERE source_id = $1`,
        [sourceId],
      );
      return rows[0]!;
    };
    const stored = (sourceId: string, n: number, timeoutMs?: number) =>
      eventually(() => counts(sourceId), (c) => c.rows >= n, timeoutMs, `${n} events from ${sourceId}`);

    it('stores 1,000 messages as 1,000 events, none lost, none duplicated, and delivers each', async () => {
      const { id, channel } = await source('thousand');
      const messages = Array.from({ length: 1000 }, (_, i) => ({
        body: envelope(i),
        // Half name their routing in a broker header, half leave it to the envelope.
        headers: i % 2 === 0 ? { 'x-convoy-message-type': 'single' } : ({} as Record<string, string>),
      }));
      for (let i = 0; i < messages.length; i += 250) await channel.publish(messages.slice(i, i + 250));
      await stored(id, 1000);
      // Settled: nothing more arrives (a duplicate would add a row).
      await new Promise((r) => setTimeout(r, 500));
      expect(await counts(id)).toEqual({ rows: 1000, distinct: 1000 });

      const seqs = () => new Set(receiver.requests.map((r) => (JSON.parse(r.body.toString()) as { seq?: number }).seq).filter((s) => s !== undefined));
      await eventually(async () => seqs().size, (n) => n === 1000, 45_000, '1000 deliveries');

      const metrics = (await t.operator('GET', '/metrics')).text;
      const line = metrics.split('\n').find((l) => l.startsWith('wharf_source_messages_total') && l.includes(`source="${id}"`) && l.includes('outcome="stored"'));
      expect(line?.split(' ').at(-1)).toBe('1000');
    });

    it('redelivers a batch whose commit failed mid-batch, and loses nothing', async () => {
      const { id, channel } = await source('failcommit');
      // The database refuses the first three event inserts of this source, part-way through
      // their batches, as a lost connection would (SQLSTATE class 08: transient).
      const tag = id.replace(/\W/g, '_');
      await t.app.pool.query(`CREATE SEQUENCE fail_${tag}`);
      await t.app.pool.query(`CREATE FUNCTION fail_${tag}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.source_id = '${id}' AND (NEW.data::jsonb->>'seq')::int >= 5 AND nextval('fail_${tag}') <= 3 THEN
            RAISE EXCEPTION 'injected failure' USING ERRCODE = '08006';
          END IF;
          RETURN NEW;
        END $$`);
      await t.app.pool.query(`CREATE TRIGGER fail_${tag} BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION fail_${tag}()`);
      try {
        await channel.publish(Array.from({ length: 200 }, (_, i) => ({ body: envelope(i) })));
        await stored(id, 200);
        await new Promise((r) => setTimeout(r, 500));
        expect(await counts(id)).toEqual({ rows: 200, distinct: 200 });
        const { rows } = await t.app.pool.query<{ last_value: string }>(`SELECT last_value FROM fail_${tag}`);
        expect(Number(rows[0]!.last_value)).toBeGreaterThan(3); // the failures did happen
      } finally {
        await t.app.pool.query(`DROP TRIGGER fail_${tag} ON events`);
      }
    });

    it('stops while busy and, started again, loses and duplicates nothing', async () => {
      const { id, channel } = await source('restart');
      // Each of this source's events takes 2 ms to insert, so the 1,000 take seconds whatever the
      // machine: the stop comes while batches are in flight. Without it, a source that joins its
      // batches (broker-sink.ts) could store all 1,000 before the first look saw 20 (a run saw it).
      const tag = id.replace(/\W/g, '_');
      await t.app.pool.query(`CREATE FUNCTION slow_${tag}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.source_id = '${id}' THEN PERFORM pg_sleep(0.002); END IF;
          RETURN NEW;
        END $$`);
      await t.app.pool.query(`CREATE TRIGGER slow_${tag} BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION slow_${tag}()`);
      try {
        await channel.publish(Array.from({ length: 1000 }, (_, i) => ({ body: envelope(i) })));
        const before = await eventually(() => counts(id), (c) => c.rows >= 20, 30_000, 'some events before the stop');
        await t.restart();
        expect(before.rows).toBeLessThan(1000); // it was busy when it stopped
        await stored(id, 1000);
        await new Promise((r) => setTimeout(r, 500));
        expect(await counts(id)).toEqual({ rows: 1000, distinct: 1000 });
      } finally {
        await t.app.pool.query(`DROP TRIGGER slow_${tag} ON events`);
      }
    });

    it('dead-letters malformed and oversized messages without blocking the ones after them, and replays one once fixed', async () => {
      const { id, channel } = await source('poison', { max_body_bytes: 4096 });
      const big = JSON.stringify({ endpoint_id: 'ep', event_type: 'conformance.seq', data: { pad: 'x'.repeat(5000) } });
      await channel.publish([
        { body: envelope(0) },
        { body: 'not json {' },
        { body: JSON.stringify({ endpoint_id: 'ep', data: { seq: 'no type' } }) },
        { body: JSON.stringify({ endpoint_id: 'nowhere', event_type: 'conformance.seq', data: { seq: 100 } }) },
        { body: JSON.stringify({ owner_id: 'later', event_type: 'conformance.seq', data: { seq: 101 } }) },
        { body: big },
        ...Array.from({ length: 9 }, (_, i) => ({ body: envelope(i + 1) })),
      ]);
      await stored(id, 10);
      const letters = await eventually(
        async () => ((await t.api('GET', `/deadletters?source_id=${id}`)).body?.data?.content ?? []) as Record<string, any>[],
        (l) => l.length === 5,
        30_000,
        '5 dead letters',
      );
      const byCode = Object.fromEntries(letters.map((l) => [l.code, l]));
      expect(Object.keys(byCode).sort()).toEqual([
        'WHARF_ERR_INVALID',
        'WHARF_ERR_NOT_JSON',
        'WHARF_ERR_TOO_LARGE',
        'WHARF_ERR_UNKNOWN_ENDPOINT',
        'WHARF_ERR_UNKNOWN_OWNER',
      ]);
      // A list shows each body's size and first bytes; the whole body is one letter's GET.
      expect(byCode.WHARF_ERR_NOT_JSON).toMatchObject({ body_size: 10, body_preview: 'not json {', body_truncated: false });
      for (const l of letters) {
        expect(l).not.toHaveProperty('body');
        expect(l).not.toHaveProperty('body_base64');
      }
      expect(byCode.WHARF_ERR_INVALID!.reason).toContain('event_type');
      expect(byCode.WHARF_ERR_TOO_LARGE!.reason).toContain('max_body_bytes (4096)');
      expect(byCode.WHARF_ERR_TOO_LARGE).toMatchObject({ body_size: Buffer.byteLength(big), body_preview: big.slice(0, 256), body_truncated: true });
      const large = (await t.api('GET', `/deadletters/${byCode.WHARF_ERR_TOO_LARGE!.uid}`)).body.data;
      expect(large).toMatchObject({ body: big, body_size: Buffer.byteLength(big), body_base64: Buffer.from(big).toString('base64') });
      expect(byCode.WHARF_ERR_UNKNOWN_ENDPOINT!.reason).toContain('"nowhere"');
      expect(await counts(id)).toEqual({ rows: 10, distinct: 10 });

      // Still broken: refused again, and kept with its reason.
      const owner = byCode.WHARF_ERR_UNKNOWN_OWNER!.id as string;
      const early = await t.api('POST', `/deadletters/${owner}/replay`);
      expect(early.status, early.text).toBe(422);
      expect(early.body.message).toContain('"later"');
      // Fixed: an endpoint of that owner exists now.
      const created = await t.api('POST', '/endpoints', { name: 'later', url: receiver.url, owner_id: 'later' });
      expect(created.status, created.text).toBe(201);
      const replayed = await t.api('POST', `/deadletters/${owner}/replay`);
      expect(replayed.status, replayed.text).toBe(200);
      expect(replayed.body.data.duplicate).toBe(false);
      expect(await counts(id)).toEqual({ rows: 11, distinct: 11 });
      const after = await t.api('GET', `/deadletters/${owner}`);
      expect(after.body.data.event_id).toBe(replayed.body.data.event_id);
      expect((await t.api('POST', `/deadletters/${owner}/replay`)).status).toBe(409);
      expect((await t.api('POST', `/deadletters/${byCode.WHARF_ERR_NOT_JSON!.id}/replay`)).status).toBe(422);
    });

    it('raw format: the body is the data byte for byte, the type comes from a header, chosen headers are forwarded', async () => {
      const { id, channel } = await source('raw', {
        format: 'raw',
        event_type: 'raw.default',
        event_type_header: 'X-Event-Type',
        forward_headers: ['x-trace'],
      });
      const typed = '{ "order": 7,   "spaced": true }';
      await channel.publish([
        { body: typed, headers: { 'x-event-type': 'raw.typed', 'x-trace': 'trace-1', 'x-secret-ish': 'kept back' } },
        { body: '[1,2,3]' },
      ]);
      await stored(id, 2);
      const { rows } = await t.app.pool.query<{ event_type: string; data: string; custom_headers: Record<string, string>; headers: Record<string, string> }>(
        'SELECT event_type, data, custom_headers, headers FROM events WHERE source_id = $1 ORDER BY event_type DESC',
        [id],
      );
      expect(rows.map((r) => [r.event_type, r.data])).toEqual([
        ['raw.typed', typed],
        ['raw.default', '[1,2,3]'],
      ]);
      expect(rows[0]!.custom_headers).toEqual({ 'x-trace': 'trace-1' });
      expect(rows[0]!.headers['x-secret-ish']).toBe('kept back');
      const delivered = await eventually(
        async () => receiver.requests.find((r) => r.body.toString() === typed),
        (r) => r !== undefined,
        30_000,
        'the raw delivery',
      );
      expect(delivered!.headers['x-trace']).toBe('trace-1');
      expect(delivered!.headers['x-secret-ish']).toBeUndefined();
    });

    if (fixture.restart) {
      it('survives a broker restart without a restart of Wharf', async () => {
        const { id, channel } = await source('brokerrestart');
        await channel.publish(Array.from({ length: 100 }, (_, i) => ({ body: envelope(i) })));
        await stored(id, 100);
        await fixture.restart!();
        await channel.publish(Array.from({ length: 100 }, (_, i) => ({ body: envelope(100 + i) })));
        await stored(id, 200, 55_000);
        expect(await counts(id)).toEqual({ rows: 200, distinct: 200 });
        expect(await sourceState(id)).toBe('running');
      });
    }
  });
}
