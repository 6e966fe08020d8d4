/**
 * The SQS connector against a real SQS API (the fauxqs emulator the harness starts): first driven
 * directly with an in-test sink, then through a whole Wharf by the shared conformance suite.
 */
import { LOOPBACK_EGRESS } from '../../harness/egress.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connector, type SqsConfig } from '../../../connectors/sqs.ts';
import type { AcceptResult, BrokerMessage, Connector, Sink } from '../../../src/core/connector.ts';
import { Reader } from '../../../src/core/settings.ts';
import { ACCESS_KEY_ID, ENDPOINT, REGION, SECRET, createQueue, queueName, fixture, launchFauxqs, send, sqsClient, type Fauxqs } from '../../harness/brokers/sqs.ts';
import { latch, quiet } from './support.ts';
import { describeConformance, eventually } from './conformance.ts';

const publishBodies = (client: SQSClient, queueUrl: string, bodies: string[]) => send(client, queueUrl, bodies.map((b) => ({ MessageBody: b })));

async function queueCounts(client: SQSClient, queueUrl: string): Promise<{ visible: number; hidden: number }> {
  const out = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return { visible: Number(out.Attributes!.ApproximateNumberOfMessages), hidden: Number(out.Attributes!.ApproximateNumberOfMessagesNotVisible) };
}

/** A sink that records what it is given and can be told to fail, wait, or dead-letter. */
class TestSink implements Sink {
  readonly calls: BrokerMessage[][] = [];
  /** How many times each message id reached accept. */
  readonly seen = new Map<string, number>();
  /** Ids whose accept resolved. */
  readonly stored = new Set<string>();
  /** Fail the next n calls as a database outage would. */
  failCalls = 0;
  delayMs = 0;
  /** Calls wait for this while it is set. */
  gate: Promise<void> | null = null;
  /** Bodies answered as dead-lettered. */
  readonly poison = new Set<string>();
  /** Messages inside accept now, and the most ever. */
  active = 0;
  maxActive = 0;
  onAccept: ((messages: BrokerMessage[]) => void) | null = null;

  async accept(messages: BrokerMessage[]): Promise<AcceptResult[]> {
    this.calls.push(messages);
    for (const m of messages) this.seen.set(m.id, (this.seen.get(m.id) ?? 0) + 1);
    this.active += messages.length;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.onAccept?.(messages);
    try {
      if (this.delayMs > 0) await delay(this.delayMs);
      if (this.gate) await this.gate;
      if (this.failCalls > 0) {
        this.failCalls--;
        throw new Error('database unavailable (injected by the test)');
      }
      for (const m of messages) this.stored.add(m.id);
      return messages.map((m) =>
        this.poison.has(m.body.toString())
          ? { status: 'rejected', code: 'WHARF_ERR_NOT_JSON', reason: 'poison (test)', dead_letter_id: `dl-${m.id}` }
          : { status: 'stored', event_id: `ev-${m.id}` },
      );
    } finally {
      this.active -= messages.length;
    }
  }

  bodies(): string[] {
    return this.calls.flat().map((m) => m.body.toString());
  }
}

describe('sqs connector (direct, against fauxqs)', () => {
  let admin: SQSClient;
  const running: Connector[] = [];

  beforeAll(() => {
    expect(ENDPOINT, 'WHARF_TEST_SQS_ENDPOINT (set by the integration globalSetup)').toBeTruthy();
    admin = sqsClient();
  });
  afterEach(async () => {
    for (const c of running.splice(0)) await c.stop({ timeoutMs: 1_000 });
  });
  afterAll(() => admin?.destroy());

  async function startConnector(block: Record<string, unknown>, sink: Sink): Promise<Connector> {
    const r = new Reader();
    const config = connector.parse(
      r,
      { region: REGION, endpoint: ENDPOINT, credentials: { access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET }, ...block },
      'sqs',
    );
    expect(r.issues).toEqual([]);
    const c = await connector.create(config as SqsConfig, { logger: quiet, name: 'test/sqs', egress: LOOPBACK_EGRESS });
    running.push(c);
    await c.start(sink);
    return c;
  }

  it('hands every message to the sink with its attributes, deletes it after, and reports health', async () => {
    const url = await createQueue(admin, queueName('all'));
    const sink = new TestSink();
    const c = await startConnector({ queue_url: url, workers: 2 }, sink);
    expect(c.health()).toMatchObject({ inFlight: 0, lastError: null });
    await eventually(async () => c.health().state, (s) => s === 'running', 5_000, 'running');

    const bodies = Array.from({ length: 35 }, (_, i) => JSON.stringify({ seq: i }));
    await send(
      admin,
      url,
      bodies.map((b, i) => ({
        MessageBody: b,
        MessageAttributes: {
          'X-Convoy-Message-Type': { DataType: 'String', StringValue: 'single' },
          Seq: { DataType: 'Number', StringValue: String(i) },
          Raw: { DataType: 'Binary', BinaryValue: Buffer.from([i, 255]) },
        },
      })),
    );
    await eventually(async () => sink.stored.size, (n) => n === 35, 20_000, '35 messages stored');
    expect(sink.bodies().sort()).toEqual([...bodies].sort());
    expect([...sink.seen.values()].every((n) => n === 1)).toBe(true);
    const first = sink.calls.flat().find((m) => m.body.toString() === bodies[3])!;
    expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.headers).toEqual({ 'x-convoy-message-type': 'single', seq: '3', raw: Buffer.from([3, 255]).toString('base64') });
    expect(first.key).toBeNull();
    expect(sink.calls.every((batch) => batch.length >= 1 && batch.length <= 10)).toBe(true);

    // Deleted: nothing left, visible or in flight.
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 10_000, 'an empty queue');
    await eventually(async () => c.health(), (h) => h.inFlight === 0 && h.lag === 0, 10_000, 'inFlight 0 and lag known');
    expect(c.health()).toEqual({ state: 'running', inFlight: 0, lag: 0, lastError: null });

    // stop() aborts the idle 20 s long polls at once.
    const t0 = Date.now();
    await c.stop({ timeoutMs: 5_000 });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(c.health().state).toBe('stopped');
    await c.stop({ timeoutMs: 5_000 }); // idempotent
  });

  it('deletes nothing before accept resolves, and keeps the batch invisible meanwhile', async () => {
    const url = await createQueue(admin, queueName('gate'));
    const sink = new TestSink();
    const g = latch();
    sink.gate = g.wait;
    const c = await startConnector({ queue_url: url, visibility_timeout: 1, wait_time_seconds: 1 }, sink);
    await publishBodies(admin, url, ['{"held":1}']);
    await eventually(async () => sink.calls.length, (n) => n === 1, 10_000, 'the first accept');

    // Several visibility timeouts pass while accept waits: still there, still invisible, seen once.
    await delay(2_500);
    expect(await queueCounts(admin, url)).toEqual({ visible: 0, hidden: 1 });
    expect(c.health().inFlight).toBe(1);
    expect(sink.seen.size).toBe(1);
    expect([...sink.seen.values()]).toEqual([1]);

    g.open();
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 5_000, 'deleted after accept');
    await eventually(async () => c.health().inFlight, (n) => n === 0, 5_000, 'inFlight 0');
    await delay(1_500);
    expect(sink.calls.length).toBe(1);
  });

  it('does not delete a batch whose accept rejects: it comes back and is stored then', async () => {
    const url = await createQueue(admin, queueName('reject'));
    const sink = new TestSink();
    sink.failCalls = 1;
    const atRedelivery: Promise<{ visible: number; hidden: number }>[] = [];
    // Right when the redelivery arrives, the queue must still hold every message.
    sink.onAccept = () => {
      if (sink.calls.length !== 2) return;
      atRedelivery.push(queueCounts(admin, url));
      sink.delayMs = 300; // this call stores (and deletes) only after the count is taken
    };
    const c = await startConnector({ queue_url: url, wait_time_seconds: 1 }, sink);
    await publishBodies(admin, url, ['{"n":1}', '{"n":2}', '{"n":3}']);
    await eventually(async () => c.health().lastError, (e) => e !== null, 10_000, 'the sink failure in health');
    expect(c.health().lastError).toMatch(/^storing messages from http.* failed: database unavailable \(injected by the test\)$/);

    await eventually(async () => sink.stored.size, (n) => n === 3, 20_000, 'all three stored after the failure');
    const failed = sink.calls[0]!.map((m) => m.id);
    for (const id of failed) expect(sink.seen.get(id)).toBe(2);
    const counts = await atRedelivery[0]!;
    expect(counts.visible + counts.hidden).toBe(3);
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 5_000, 'an empty queue');
    await eventually(async () => c.health(), (h) => h.lastError === null && h.inFlight === 0, 5_000, 'health clear again');
  });

  it('deletes messages the sink dead-lettered, like stored ones', async () => {
    const url = await createQueue(admin, queueName('poison'));
    const sink = new TestSink();
    sink.poison.add('not json {');
    await startConnector({ queue_url: url, visibility_timeout: 1, wait_time_seconds: 1 }, sink);
    await publishBodies(admin, url, ['not json {', '{"ok":true}']);
    await eventually(async () => sink.stored.size, (n) => n === 2, 10_000, 'both answered');
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 5_000, 'an empty queue');
    // Well past the visibility timeout: neither came back.
    await delay(2_000);
    expect([...sink.seen.values()]).toEqual([1, 1]);
  });

  it('extends visibility while a slow accept outlasts the visibility timeout: no redelivery meanwhile', async () => {
    // The emulator does redeliver after the timeout when nobody extends it.
    const control = await createQueue(admin, queueName('control'));
    await publishBodies(admin, control, ['{"control":1}']);
    const once = await admin.send(new ReceiveMessageCommand({ QueueUrl: control, VisibilityTimeout: 1 }));
    expect(once.Messages).toHaveLength(1);
    await delay(1_200);
    const again = await admin.send(new ReceiveMessageCommand({ QueueUrl: control, WaitTimeSeconds: 2 }));
    expect(again.Messages?.[0]?.MessageId).toBe(once.Messages![0]!.MessageId);

    const url = await createQueue(admin, queueName('slow'));
    const sink = new TestSink();
    sink.delayMs = 4_000;
    // Two loops: a message visible again would be picked by the idle one.
    const c = await startConnector({ queue_url: url, visibility_timeout: 2, workers: 2, wait_time_seconds: 1 }, sink);
    await publishBodies(admin, url, ['{"slow":1}', '{"slow":2}']);
    await eventually(async () => sink.stored.size, (n) => n === 2, 20_000, 'both stored');
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 5_000, 'an empty queue');
    await delay(2_500);
    expect([...sink.seen.values()]).toEqual([1, 1]);
    expect(c.health()).toMatchObject({ state: 'running', inFlight: 0, lastError: null });
  });

  it('keeps max_in_flight with several workers, and stops receiving at the bound', async () => {
    const url = await createQueue(admin, queueName('bound'));
    const sink = new TestSink();
    sink.delayMs = 150;
    let maxHealth = 0;
    let c: Connector | null = null;
    sink.onAccept = () => (maxHealth = Math.max(maxHealth, c?.health().inFlight ?? 0));
    const bodies = Array.from({ length: 60 }, (_, i) => `{"i":${i}}`);
    await publishBodies(admin, url, bodies);
    c = await startConnector({ queue_url: url, workers: 3, max_messages: 3, max_in_flight: 7 }, sink);
    const sampler = setInterval(() => (maxHealth = Math.max(maxHealth, c!.health().inFlight)), 5);
    try {
      await eventually(async () => sink.stored.size, (n) => n === 60, 30_000, '60 stored');
    } finally {
      clearInterval(sampler);
    }
    expect(sink.maxActive).toBeLessThanOrEqual(7);
    expect(maxHealth).toBeLessThanOrEqual(7);
    // Pipelined: more than one batch was in the sink at once, up to the bound.
    expect(sink.maxActive).toBeGreaterThan(3);
    expect(sink.calls.every((b) => b.length <= 3)).toBe(true);
    expect([...sink.seen.values()].every((n) => n === 1)).toBe(true);

    // At the bound the loops wait: with accept held, exactly max_in_flight are taken, the rest stay queued.
    const url2 = await createQueue(admin, queueName('bound-held'));
    const held = new TestSink();
    const g = latch();
    held.gate = g.wait;
    await publishBodies(admin, url2, ['{"a":1}', '{"a":2}', '{"a":3}', '{"a":4}', '{"a":5}']);
    const c2 = await startConnector({ queue_url: url2, workers: 2, max_in_flight: 2, wait_time_seconds: 1 }, held);
    await eventually(async () => c2.health().inFlight, (n) => n === 2, 10_000, 'two in flight');
    await delay(1_500);
    expect(c2.health().inFlight).toBe(2);
    expect(held.seen.size).toBe(2);
    expect(await queueCounts(admin, url2)).toEqual({ visible: 3, hidden: 2 });
    // The queue depth SQS reports is the lag (refreshed every few seconds).
    await eventually(async () => c2.health().lag, (lag) => lag === 3, 8_000, 'lag 3');
    g.open();
    await eventually(async () => held.stored.size, (n) => n === 5, 10_000, 'all five stored');
  });

  it('stop() waits for a slow accept and deletes what it stored', async () => {
    const url = await createQueue(admin, queueName('stop'));
    const sink = new TestSink();
    sink.delayMs = 1_500;
    const c = await startConnector({ queue_url: url }, sink);
    await publishBodies(admin, url, ['{"s":1}', '{"s":2}', '{"s":3}']);
    await eventually(async () => sink.calls.length, (n) => n >= 1, 10_000, 'accept under way');
    const taken = sink.calls.flat().length;
    const t0 = Date.now();
    await c.stop({ timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    expect(c.health()).toMatchObject({ state: 'stopped', inFlight: 0 });
    expect(sink.stored.size).toBe(taken);
    // What was stored is gone from the queue; what was never received is still there.
    expect(await queueCounts(admin, url)).toEqual({ visible: 3 - taken, hidden: 0 });
  });

  it('stop() gives up after timeoutMs and leaves the unfinished batch to SQS', async () => {
    const url = await createQueue(admin, queueName('stop-timeout'));
    const sink = new TestSink();
    const g = latch();
    sink.gate = g.wait;
    const c = await startConnector({ queue_url: url, visibility_timeout: 1, wait_time_seconds: 1 }, sink);
    await publishBodies(admin, url, ['{"never":1}']);
    await eventually(async () => sink.calls.length, (n) => n === 1, 10_000, 'accept under way');
    const t0 = Date.now();
    await c.stop({ timeoutMs: 300 });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2_000);
    expect(c.health().state).toBe('stopped');
    // Accept finishing late reaches no destroyed client, and deletes nothing.
    g.open();
    await delay(100);
    expect(sink.stored.size).toBe(1);
    // Not deleted: once its visibility lapses, SQS hands it out again.
    await delay(1_500);
    const back = await admin.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 3 }));
    expect(back.Messages?.map((m) => m.Body)).toEqual(['{"never":1}']);
  });

  it('resolves queue_name and keys FIFO messages by their group', async () => {
    const name = `${queueName('fifo').slice(0, 70)}.fifo`;
    const url = await createQueue(admin, name, { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    const sink = new TestSink();
    const c = await startConnector({ queue_name: name, wait_time_seconds: 1 }, sink);
    await send(admin, url, [
      { MessageBody: '{"f":1}', MessageGroupId: 'customer-1', MessageAttributes: { 'Event-Type': { DataType: 'String', StringValue: 'a.b' } } },
      { MessageBody: '{"f":2}', MessageGroupId: 'customer-2' },
    ]);
    await eventually(async () => sink.stored.size, (n) => n === 2, 10_000, 'both stored');
    const byBody = Object.fromEntries(sink.calls.flat().map((m) => [m.body.toString(), m]));
    expect(byBody['{"f":1}']).toMatchObject({ key: 'customer-1', headers: { 'event-type': 'a.b' } });
    expect(byBody['{"f":2}']).toMatchObject({ key: 'customer-2', headers: {} });
    await eventually(() => queueCounts(admin, url), (q) => q.visible === 0 && q.hidden === 0, 5_000, 'an empty queue');
    expect(c.health().state).toBe('running');
  });

  it('starts while SQS is down, reports it, consumes once it is up, and rides out an outage', async () => {
    let fauxqs: Fauxqs | null = await launchFauxqs();
    const port = fauxqs.port;
    await fauxqs.stop();
    const endpoint = `http://127.0.0.1:${port}`;
    const name = queueName('outage');
    const sink = new TestSink();
    try {
      const c = await startConnector({ queue_name: name, endpoint, wait_time_seconds: 1 }, sink);
      const down = await eventually(async () => c.health(), (h) => h.lastError !== null, 10_000, 'the connection error');
      expect(down.state).toBe('connecting');
      expect(down.lastError).toMatch(new RegExp(`^GetQueueUrl for ${name} \\(${REGION}\\) failed: .*ECONNREFUSED`));

      fauxqs = await launchFauxqs(port);
      let client = sqsClient(endpoint);
      let url = await createQueue(client, name);
      await publishBodies(client, url, ['{"up":1}', '{"up":2}']);
      await eventually(async () => sink.stored.size, (n) => n === 2, 30_000, 'consumed once SQS is up');
      expect(c.health()).toMatchObject({ state: 'running', lastError: null });

      // An outage while running (fauxqs keeps nothing: the queue is created again).
      await fauxqs.stop();
      fauxqs = null;
      const lost = await eventually(async () => c.health(), (h) => h.state === 'connecting', 15_000, 'connecting after the outage');
      expect(lost.lastError).toMatch(/^ReceiveMessage from .* failed: /);
      fauxqs = await launchFauxqs(port);
      client.destroy();
      client = sqsClient(endpoint);
      url = await createQueue(client, name);
      await publishBodies(client, url, ['{"up":3}']);
      await eventually(async () => sink.stored.size, (n) => n === 3, 30_000, 'consumed after the outage');
      expect(c.health()).toMatchObject({ state: 'running', lastError: null });
      client.destroy();
    } finally {
      for (const c of running.splice(0)) await c.stop({ timeoutMs: 1_000 });
      await fauxqs?.stop();
    }
  });
});

describeConformance(fixture);
