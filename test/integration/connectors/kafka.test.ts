/**
 * The Kafka connector against a real Kafka-protocol broker (librdkafka's mock cluster, started by
 * test/harness/brokers/kafka.ts): first the connector alone with an in-test sink, then the shared
 * conformance suite through a whole Wharf.
 */
import { LOOPBACK_EGRESS } from '../../harness/egress.ts';
import { setTimeout as delay } from 'node:timers/promises';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, it, type TestContext } from 'vitest';
import { connector, type KafkaConfig } from '../../../connectors/kafka.ts';
import type { AcceptResult, BrokerMessage, Connector, Sink } from '../../../src/core/connector.ts';
import { Reader } from '../../../src/core/settings.ts';
import { quiet, until } from './support.ts';
import { describeConformance, type PublishMessage } from './conformance.ts';
import { freePort, TcpRelay } from '../../harness/net.ts';
import { brokers, createTopic, fixture, send, testClient, topicName } from '../../harness/brokers/kafka.ts';


// ---------------------------------------------------------------------------------------------

/** A sink that records what it is given and can be told to fail, wait, or hold. */
class TestSink implements Sink {
  /** Every accept call, retries included. */
  readonly calls: BrokerMessage[][] = [];
  /** Messages of accept calls that resolved, by id. */
  readonly stored = new Map<string, BrokerMessage>();
  /** Throw (a transient failure) for batches this says so of. */
  fail: (batch: BrokerMessage[]) => boolean = () => false;
  /** Awaited inside accept before answering. */
  gate: () => Promise<void> = async () => undefined;
  /** Runs at the start of every accept. */
  onAccept: (batch: BrokerMessage[]) => Promise<void> | void = () => undefined;
  inside = 0;
  maxInside = 0;
  readonly resolvedAt: number[] = [];

  async accept(batch: BrokerMessage[]): Promise<AcceptResult[]> {
    this.calls.push(batch);
    this.inside += batch.length;
    this.maxInside = Math.max(this.maxInside, this.inside);
    try {
      await this.onAccept(batch);
      await this.gate();
      if (this.fail(batch)) throw new Error('database unavailable (test)');
      for (const m of batch) this.stored.set(m.id, m);
      this.resolvedAt.push(Date.now());
      return batch.map((m) => ({ status: 'stored', event_id: m.id }));
    } finally {
      this.inside -= batch.length;
    }
  }

  /** Ids in the order accept first saw them. */
  firstSeen(): string[] {
    return [...new Set(this.calls.flat().map((m) => m.id))];
  }
}

const offsetOf = (id: string): number => Number(id.split('/').at(-1));
const partitionOf = (id: string): number => Number(id.split('/').at(-2));

// Concurrent: each test has its own topic and group, and most of the time goes to waiting for the
// mock cluster's group joins (about 3 s each), which overlap.
describe.concurrent('kafka connector', () => {
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;

  beforeAll(async () => {
    kafka = testClient();
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
  });
  afterAll(async () => {
    await Promise.all([admin?.disconnect(), producer?.disconnect()]);
  });

  /** A connector for `block`, stopped when the test ends. */
  async function open(ctx: TestContext, block: Record<string, unknown>): Promise<{ c: Connector; config: KafkaConfig }> {
    const r = new Reader();
    const config = connector.parse(r, block, 'kafka');
    if (r.issues.length > 0) throw new Error(`bad test block: ${JSON.stringify(r.issues)}`);
    const c = await connector.create(config, { logger: quiet, name: 'test/kafka', egress: LOOPBACK_EGRESS });
    ctx.onTestFinished(() => c.stop({ timeoutMs: 2_000 }));
    return { c, config };
  }

  /** A fresh topic and the block of a group of its own that reads it from the beginning. */
  async function channel(what: string, extra: Record<string, unknown> = {}) {
    const topic = topicName(what);
    await createTopic(admin, topic);
    const group = `wharf-${topic}`;
    return { topic, group, block: { brokers: brokers(), topic, consumer_group: group, from_beginning: true, ...extra } };
  }

  /**
   * An admin answer that covers the topic's four partitions. Under a loaded full run the mock
   * cluster (three brokers) has now and then answered for none of them: kafkajs then throws from
   * inside `fetchTopicOffsets`, or `fetchOffsets` lists no topic. Such an answer is asked again,
   * a few times; what the tests assert is read from a complete one.
   */
  async function complete(ask: () => Promise<Record<number, number>>): Promise<Record<number, number>> {
    for (let tries = 1; ; tries++) {
      try {
        const offsets = await ask();
        if (Object.keys(offsets).length === 4 || tries === 5) return offsets;
      } catch (err) {
        if (tries === 5) throw err;
      }
      await delay(200);
    }
  }

  /** Committed offset per partition (-1: none). */
  async function committed(group: string, topic: string): Promise<Record<number, number>> {
    return complete(async () => {
      const [t] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      return Object.fromEntries((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    });
  }

  async function highWater(topic: string): Promise<Record<number, number>> {
    return complete(async () => Object.fromEntries((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)])));
  }

  const seq = (n: number, from = 0): PublishMessage[] => Array.from({ length: n }, (_, i) => ({ body: `m${from + i}` }));

  it('hands every message to the sink in bounded chunks, commits only what accept stored, reports lag', async (ctx) => {
    const { expect } = ctx;
    const { topic, group, block } = await channel('all', { workers: 2, max_in_flight: 7 });
    const { c } = await open(ctx, block);
    const sink = new TestSink();
    const violations: string[] = [];
    sink.onAccept = async (batch) => {
      const inFlight = c.health().inFlight;
      if (inFlight > 14) violations.push(`health().inFlight ${inFlight} > workers × max_in_flight`);
      if (batch.length > 7) violations.push(`a batch of ${batch.length} > max_in_flight`);
      // Nothing of this batch (or after it) may be committed while it is inside accept.
      const at = (await committed(group, topic))[partitionOf(batch[0]!.id)]!;
      if (at > offsetOf(batch[0]!.id)) violations.push(`committed ${at} while ${batch[0]!.id} is inside accept`);
    };
    expect(c.health()).toEqual({ state: 'stopped', inFlight: 0, lag: null, lastError: null });

    await c.start(sink);
    expect(c.health().state).toBe('connecting');
    const messages = Array.from({ length: 60 }, (_, i) => ({
      key: `k${i}`,
      value: Buffer.from(`{"seq":${i}}`),
      headers: { 'X-Trace': `t${i}`, multi: ['a', Buffer.from('b')] },
    }));
    await producer.send({ topic, messages });

    await until(() => sink.stored.size, (n) => n === 60, '60 messages stored');
    expect(violations).toEqual([]);
    expect(sink.maxInside).toBeLessThanOrEqual(14);
    // Each exactly once, and in offset order within each partition.
    const ids = sink.calls.flat().map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of [0, 1, 2, 3]) {
      const offsets = ids.filter((id) => partitionOf(id) === p).map(offsetOf);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
    const m7 = [...sink.stored.values()].find((m) => m.key === 'k7')!;
    expect(m7.id).toMatch(new RegExp(`^${topic}/[0-3]/\\d+$`));
    expect(m7.body.toString()).toBe('{"seq":7}');
    expect(m7.headers).toEqual({ 'x-trace': 't7', multi: 'a, b' });
    expect(m7.receivedAt).toBeInstanceOf(Date);

    const high = await highWater(topic);
    await until(() => committed(group, topic), (cm) => [0, 1, 2, 3].every((p) => cm[p] === high[p]), 'all offsets committed');
    await until(() => c.health(), (h) => h.lag === 0, 'lag 0', 10_000);
    expect(c.health()).toEqual({ state: 'running', inFlight: 0, lag: 0, lastError: null });

    await c.stop({ timeoutMs: 5_000 });
    expect(c.health()).toEqual({ state: 'stopped', inFlight: 0, lag: null, lastError: null });
  });

  it('commits nothing while accept fails, retries the same chunk, and loses nothing', async (ctx) => {
    const { expect } = ctx;
    const { topic, group, block } = await channel('reject', { max_in_flight: 5 });
    await send(producer, topic, seq(12), 0);
    const { c } = await open(ctx, block);
    const sink = new TestSink();
    let failing = true;
    sink.fail = () => failing;
    await c.start(sink);

    // Failing: the lag counts all 12 and nothing is committed; the error is in health().
    const failed = await until(() => c.health(), (h) => h.lag === 12 && sink.calls.length >= 3, 'lag 12 while failing', 15_000);
    expect(failed.state).toBe('running');
    expect(failed.lastError).toMatch(new RegExp(`sink did not store ${topic}/0 offsets 0-4, retrying: database unavailable \\(test\\)`));
    expect(failed.inFlight).toBe(5);
    expect((await committed(group, topic))[0]).toBe(-1);
    // The same chunk every time: nothing after it is handed over before it is stored.
    for (const call of sink.calls) expect(call.map((m) => m.id)).toEqual([0, 1, 2, 3, 4].map((o) => `${topic}/0/${o}`));
    expect(sink.stored.size).toBe(0);

    failing = false;
    await until(() => sink.stored.size, (n) => n === 12, 'all 12 stored after recovery');
    expect([...sink.stored.keys()].map(offsetOf).sort((a, b) => a - b)).toEqual([...Array(12).keys()]);
    await until(() => committed(group, topic), (cm) => cm[0] === 12, 'offset 12 committed');
    await until(() => c.health(), (h) => h.lag === 0, 'lag back to 0', 10_000);
    expect(c.health()).toMatchObject({ state: 'running', inFlight: 0, lastError: null });
  });

  it('never commits past a message whose chunk failed: a restarted consumer sees it and everything after again', async (ctx) => {
    const { expect } = ctx;
    // The mock cluster lets a group's next member in only once the last one's session timed out,
    // even after it left: 6 s rather than 30.
    const { topic, group, block } = await channel('contiguous', { max_in_flight: 5, session_timeout: 6 });
    await send(producer, topic, seq(30), 0);

    const first = await open(ctx, block);
    const sink1 = new TestSink();
    const poisoned = `${topic}/0/12`;
    sink1.fail = (batch) => batch.some((m) => m.id === poisoned);
    await first.c.start(sink1);
    await until(() => sink1.calls.filter(sink1.fail).length, (n) => n >= 3, 'the chunk with offset 12 tried three times', 15_000);

    const failedChunks = sink1.calls.filter(sink1.fail).map((b) => b.map((m) => m.id));
    const chunk = failedChunks[0]!;
    // Retried as it was, and nothing after it ever reached the sink.
    for (const again of failedChunks) expect(again).toEqual(chunk);
    const firstFailed = offsetOf(chunk[0]!);
    const lastFailed = offsetOf(chunk.at(-1)!);
    expect(firstFailed).toBeLessThanOrEqual(12);
    expect(Math.max(...sink1.firstSeen().map(offsetOf))).toBe(lastFailed);
    // Everything before the chunk is stored and committed; the chunk is not.
    expect([...sink1.stored.keys()].map(offsetOf).sort((a, b) => a - b)).toEqual([...Array(firstFailed).keys()]);
    expect((await committed(group, topic))[0]).toBe(firstFailed);

    await first.c.stop({ timeoutMs: 5_000 });
    expect((await committed(group, topic))[0]).toBe(firstFailed);

    // A new consumer of the group starts at the failed chunk: all of it and after, nothing before.
    const second = await open(ctx, block);
    const sink2 = new TestSink();
    await second.c.start(sink2);
    await until(() => sink2.stored.size, (n) => n === 30 - firstFailed, `offsets ${firstFailed}-29 stored again`);
    expect(sink2.firstSeen().map(offsetOf)).toEqual(Array.from({ length: 30 - firstFailed }, (_, i) => firstFailed + i));
    await until(() => committed(group, topic), (cm) => cm[0] === 30, 'offset 30 committed');
  });

  it('stop() waits for the chunk inside accept and commits it; a second stop() is the same', async (ctx) => {
    const { expect } = ctx;
    const { topic, group, block } = await channel('slowstop');
    await send(producer, topic, seq(10), 0);
    const { c } = await open(ctx, block);
    const sink = new TestSink();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    sink.gate = () => held;
    await c.start(sink);
    await until(() => sink.calls.length, (n) => n === 1, 'the first accept');
    expect(sink.calls[0]!.map((m) => offsetOf(m.id))).toEqual([...Array(10).keys()]);
    expect(c.health().inFlight).toBe(10);

    const began = Date.now();
    const stopping = c.stop({ timeoutMs: 20_000 });
    expect(c.stop({ timeoutMs: 1 })).toBe(stopping);
    expect(c.health().state).toBe('stopping');
    await new Promise((r) => setTimeout(r, 1_000));
    // Still inside accept: nothing committed yet, and stop() has not returned.
    expect((await committed(group, topic))[0]).toBe(-1);
    expect(c.health().state).toBe('stopping');
    release();
    await stopping;
    expect(sink.resolvedAt[0]!).toBeGreaterThanOrEqual(began + 1_000);
    expect((await committed(group, topic))[0]).toBe(10);
    expect(c.health()).toEqual({ state: 'stopped', inFlight: 0, lag: null, lastError: null });
    expect(sink.calls).toHaveLength(1);
  });

  it('stop() gives up on an accept that outlasts its timeout and commits none of it', async (ctx) => {
    const { expect } = ctx;
    const { topic, group, block } = await channel('hungstop');
    await send(producer, topic, seq(3), 0);
    const { c } = await open(ctx, block);
    const sink = new TestSink();
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    sink.gate = () => hung;
    // At the end the accept returns, so the abandoned consumer can finish closing.
    ctx.onTestFinished(() => release());
    await c.start(sink);
    await until(() => sink.calls.length, (n) => n === 1, 'the first accept');
    const began = Date.now();
    await c.stop({ timeoutMs: 500 });
    // The timeout, plus the short grace to leave the group.
    expect(Date.now() - began).toBeLessThan(4_000);
    expect(c.health().state).toBe('stopped');
    expect((await committed(group, topic))[0]).toBe(-1);
  });

  it('keeps trying while the broker is down at start, reports it, and consumes once it answers', async (ctx) => {
    const { expect } = ctx;
    const { topic, block } = await channel('late');
    await send(producer, topic, seq(3), 0);
    const port = await freePort();
    const { c } = await open(ctx, { ...block, brokers: [`127.0.0.1:${port}`] });
    const sink = new TestSink();
    await c.start(sink);
    const down = await until(() => c.health(), (h) => h.lastError !== null, 'an error in health()', 15_000);
    expect(down.state).toBe('connecting');
    expect(down.lastError).toContain(`127.0.0.1:${port}`);
    expect(down.lastError).toContain('ECONNREFUSED');

    // The "broker" comes up: a proxy to the mock cluster's first broker on that port. It serves the
    // bootstrap; the metadata then points the consumer at the real brokers.
    const proxy = new TcpRelay(port, brokers()[0]!);
    await proxy.up();
    try {
      await until(() => sink.stored.size, (n) => n === 3, 'the 3 messages once the broker answers', 40_000);
      expect(c.health()).toMatchObject({ state: 'running', lastError: null });
    } finally {
      await proxy.down();
    }
  });
  // Credentials in broker texts: test/integration/source-secrets.test.ts (the source manager scrubs them).
});

describeConformance(fixture);
