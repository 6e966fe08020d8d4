/**
 * A tenant's `$regex` cannot stall the gateway (issue 12, item 1): patterns run on RE2 (re2js), in
 * linear time, through test_filter and through routing alike; what RE2 cannot express is refused
 * with the field named. Each hostile request is answered while the event loop stays responsive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { MAX_LOOP_BLOCK_MS, watchEventLoop } from '../harness/event-loop.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

// The two patterns that froze the process, and a classic nested quantifier; the subject is the
// worst case for each on a backtracking engine: 200 characters that almost match.
const HOSTILE = ['(a|a)*(a|a)*(a|a)*b', '.*.*.*.*.*=', '^(a+)+$'];
const SUBJECT = `${'a'.repeat(200)}!`;

describe('hostile $regex', () => {
  let t: TestApp;
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  it.each(HOSTILE)('test_filter answers %s over 200 characters at once, and the gateway stays up', async (pattern) => {
    const watch = watchEventLoop();
    const [res, health] = await Promise.all([
      t.api('POST', '/subscriptions/test_filter', { request: { body: { s: SUBJECT } }, filter: { body: { s: { $regex: pattern } } } }),
      t.request('GET', '/healthz'),
    ]);
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data).toBe(false);
    expect(health.status).toBe(200);
  });

  it('routes events through subscriptions with hostile patterns without stalling', async () => {
    const ep = await t.api('POST', '/endpoints', { name: 'regex', url: `${rx.url}/regex`, skip_ping_validation: true });
    expect(ep.status, ep.text).toBe(201);
    const sub = await t.api('POST', '/subscriptions', {
      name: 'hostile',
      endpoint_id: ep.body.data.uid,
      filter_config: { event_types: ['*'], filter: { body: { $or: HOSTILE.map((p) => ({ s: { $regex: p } })) } } },
    });
    expect(sub.status, sub.text).toBe(201);

    const watch = watchEventLoop();
    // Only the second matches (`.*.*.*.*.*=` finds the '=').
    const results = await Promise.all(
      [SUBJECT, `${SUBJECT}=`, `${SUBJECT}!`].map((s, i) => t.api('POST', '/events/broadcast', { event_type: 'regex.test', data: { s, i } })),
    );
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(results.map((r) => r.status)).toEqual([201, 201, 201]);
    await expect.poll(() => rx.requests.length, { timeout: 10_000 }).toBe(1);
    expect(JSON.parse(rx.requests[0]!.body.toString())).toEqual({ s: `${SUBJECT}=`, i: 1 });
  });

  it.each([
    ['lookahead', '(?=a)b'],
    ['a backreference', '(a)\\1'],
  ])('refuses %s, which RE2 cannot express, naming the field', async (_name, pattern) => {
    const ep = await t.api('POST', '/endpoints', { name: `refused-${_name}`, url: `${rx.url}/x`, skip_ping_validation: true });
    const res = await t.api('POST', '/subscriptions', {
      name: 'refused',
      endpoint_id: ep.body.data.uid,
      filter_config: { filter: { body: { s: { $regex: pattern } } } },
    });
    expect(res.status).toBe(400);
    expect(res.body.data.field).toBe('filter_config.filter.body.s.$regex');
    expect(res.body.message).toContain('is not a pattern RE2 accepts');
    const tried = await t.api('POST', '/subscriptions/test_filter', { request: { body: { s: 'ab' } }, filter: { body: { s: { $regex: pattern } } } });
    expect(tried.status).toBe(400);
    expect(tried.body.message).toMatch(/^filter\.body\.s\.\$regex: is not a pattern RE2 accepts/);
  });
});
