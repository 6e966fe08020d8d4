/**
 * Starts a Kafka for the integration tests: librdkafka's mock cluster, which Debian's kcat carries
 * (three brokers on 127.0.0.1, topics auto-created with 4 partitions on first metadata request).
 * kcat runs as a producer whose stdin stays open; the mock cluster lives as long as it does, and
 * closing stdin (also what happens when this process dies) ends it. The address is published as
 * WHARF_TEST_KAFKA_BROKERS (comma-separated host:port). When that variable is set already, a Kafka
 * is assumed to run there and nothing is started.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { answers } from '../net.ts';
import type { BrokerFixture, PublishMessage } from './fixture.ts';

const START_TIMEOUT_MS = 15_000;
// `%5|…|MOCK|…| Mock cluster enabled: … replaced with 127.0.0.1:1,127.0.0.1:2`, or with `-d mock`
// `Mock cluster mockCluster… bootstrap.servers=127.0.0.1:1,…`.
const ADDRESS = /(?:replaced with|bootstrap\.servers=)\s*((?:127\.0\.0\.1:\d+,?)+)/;


export async function start(): Promise<(() => Promise<void>) | void> {
  if (process.env.WHARF_TEST_KAFKA_BROKERS) return;

  // The producer's own broker list is ignored by the mock; 127.0.0.1:1 keeps it from going anywhere.
  const child = spawn('kcat', ['-b', '127.0.0.1:1', '-X', 'test.mock.num.brokers=3', '-P', '-t', 'wharf-keepalive'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const recent: string[] = [];
  let brokers: string | null = null;
  const found = new Promise<string>((resolve, reject) => {
    let pending = '';
    child.stderr!.setEncoding('utf8');
    // Keep reading for the life of the process: a full pipe would block kcat's logging thread.
    child.stderr!.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        recent.push(line);
        if (recent.length > 20) recent.shift();
        const match = brokers ? null : ADDRESS.exec(line);
        if (match) {
          brokers = match[1]!.replace(/,$/, '');
          resolve(brokers);
        }
      }
    });
    child.once('error', (err) => reject(new Error(`cannot run kcat: ${err.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`kcat exited (${signal ?? code}) before its mock cluster was up: ${recent.join(' | ')}`)),
    );
  });

  // It may also reject after the race below is decided (kcat exiting at teardown).
  found.catch(() => undefined);

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin!.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    // The give-up timer is cancelled once the address is in, so it holds no run open.
    const giveUp = new AbortController();
    const address = await Promise.race([
      found.finally(() => giveUp.abort()),
      delay(START_TIMEOUT_MS, undefined, { signal: giveUp.signal }).then(() => {
        throw new Error(`kcat printed no mock cluster address within ${START_TIMEOUT_MS / 1000} s: ${recent.join(' | ')}`);
      }),
    ]);
    for (const broker of address.split(',')) {
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!(await answers(broker))) {
        if (Date.now() > deadline) throw new Error(`kcat mock broker ${broker} does not accept connections`);
        await delay(100);
      }
    }
    process.env.WHARF_TEST_KAFKA_BROKERS = address;
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}

export const brokers = (): string[] => {
  const list = process.env.WHARF_TEST_KAFKA_BROKERS;
  if (!list) throw new Error('WHARF_TEST_KAFKA_BROKERS is not set: the integration globalSetup starts the Kafka mock cluster');
  return list.split(',');
};

export const testClient = (): Kafka => new kafkajs.Kafka({ clientId: 'wharf-test', brokers: brokers(), logLevel: kafkajs.logLevel.NOTHING });

export const topicName = (what: string): string => `wharf-${what}-${randomBytes(4).toString('hex')}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 200);

/** The mock cluster creates a topic (4 partitions) on the first metadata request that names it. */
export async function createTopic(admin: Admin, topic: string): Promise<void> {
  await admin.fetchTopicMetadata({ topics: [topic] });
}

export async function send(producer: Producer, topic: string, messages: PublishMessage[], partition?: number): Promise<void> {
  await producer.send({
    topic,
    messages: messages.map((m) => ({ value: typeof m.body === 'string' ? Buffer.from(m.body) : m.body, headers: m.headers, partition })),
  });
}

export const fixture: BrokerFixture = {
  type: 'kafka',
  async channel(name) {
    const kafka = testClient();
    const admin = kafka.admin();
    const producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
    const topic = topicName(name);
    await createTopic(admin, topic);
    await admin.disconnect();
    return {
      // from_beginning: what is published before the source has joined its group still counts.
      // session_timeout: the mock cluster lets a restarted Wharf back into the group only when the
      // session of the member that left has run out.
      // fetch_max_wait_ms: the mock answers a fetch only when its wait is over, even with data.
      block: { brokers: brokers(), topic, consumer_group: `wharf-${topic}`, from_beginning: true, session_timeout: 6, fetch_max_wait_ms: 100 },
      publish: (messages) => send(producer, topic, messages),
      close: () => producer.disconnect(),
    };
  },
  // The mock cluster keeps its messages only as long as it runs: there is no restart to offer.
};
