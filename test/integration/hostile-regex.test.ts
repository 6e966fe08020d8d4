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
// Linear is not enough: RE2's time is the product of the compiled pattern and the text. Over
// this a/b text, `a[ab]{900}c` makes re2js's DFA thrash (~0.5 s for 64 KiB); each evaluation has
// a work budget, and routing yields between evaluations.
const AB = Array.from({ length: 65_535 }, (_, i) => ((i * 7919) % 13 < 6 ? 'a' : 'b')).join('') + 'c';
const COSTLY = 'a[ab]{900}c';

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

  it('bounds one evaluation: a pattern that is slow over 64 KiB answers at once, as no match', async () => {
    const watch = watchEventLoop();
    const res = await t.api('POST', '/subscriptions/test_filter', { request: { body: { s: AB } }, filter: { body: { s: { $regex: COSTLY } } } });
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data).toBe(false);
  });

  it('routes a batch of events through a costly filter without holding the event loop', async () => {
    const ep = await t.api('POST', '/endpoints', { name: 'costly', url: `${rx.url}/costly`, skip_ping_validation: true });
    expect(ep.status, ep.text).toBe(201);
    const sub = await t.api('POST', '/subscriptions', {
      name: 'costly',
      endpoint_id: ep.body.data.uid,
      filter_config: { event_types: ['costly.test'], filter: { body: { s: { $regex: 'a[ab]{100}c' } } } },
    });
    expect(sub.status, sub.text).toBe(201);
    // Each about 10 ms of matching (104 instructions over 1,000 characters: within the budget),
    // and each different so no DFA state is reused; posted at once, most of them are routed in
    // one group-commit batch: 400 ms in all, were routing not to give the loop back.
    const n = 40;
    const data = Array.from({ length: n }, (_, i) => {
      const mix = AB.slice(i * 997, i * 997 + 998);
      return { s: `${mix.slice(0, 897)}a${mix.slice(898)}c`, i }; // an 'a', 100 of a/b, a 'c'
    });
    const watch = watchEventLoop();
    const results = await Promise.all(data.map((d) => t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'costly.test', data: d })));
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(results.map((r) => r.status)).toEqual(data.map(() => 201));
    // Every one matches, so every one is delivered.
    await expect.poll(() => rx.requests.filter((r) => r.path.startsWith('/costly')).length, { timeout: 15_000 }).toBe(n);
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
    const here = () => rx.requests.filter((r) => r.path.startsWith('/regex'));
    await expect.poll(() => here().length, { timeout: 10_000 }).toBe(1);
    expect(JSON.parse(here()[0]!.body.toString())).toEqual({ s: `${SUBJECT}=`, i: 1 });
  });

  it.each([
    ['lookahead', '(?=a)b', 'is not a pattern RE2 accepts'],
    ['a backreference', '(a)\\1', 'is not a pattern RE2 accepts'],
    ['a pattern RE2 compiles to over 1,000 instructions', '[a-z]{1000}', 'is too large: RE2 compiles it to 1002 instructions'],
  ])('refuses %s, naming the field', async (_name, pattern, message) => {
    const ep = await t.api('POST', '/endpoints', { name: `refused-${_name}`, url: `${rx.url}/x`, skip_ping_validation: true });
    const res = await t.api('POST', '/subscriptions', {
      name: 'refused',
      endpoint_id: ep.body.data.uid,
      filter_config: { filter: { body: { s: { $regex: pattern } } } },
    });
    expect(res.status).toBe(400);
    expect(res.body.data.field).toBe('filter_config.filter.body.s.$regex');
    expect(res.body.message).toContain(message);
    const tried = await t.api('POST', '/subscriptions/test_filter', { request: { body: { s: 'ab' } }, filter: { body: { s: { $regex: pattern } } } });
    expect(tried.status).toBe(400);
    expect(tried.body.message.startsWith(`filter.body.s.$regex: ${message}`), tried.body.message).toBe(true);
  });
});
