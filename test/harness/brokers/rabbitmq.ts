/**
 * RabbitMQ runs on the project's machines before a session (127.0.0.1:5672, guest/guest); when it
 * does not answer it is started the way the machine starts it. Tests use their own queues.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import type { BrokerFixture } from './fixture.ts';

const run = promisify(execFile);
export const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

async function probe(): Promise<Error | null> {
  try {
    const conn = await amqp.connect(AMQP_URL);
    await conn.close();
    return null;
  } catch (err) {
    return err as Error;
  }
}

/** Waits until the broker takes connections again (after a start or a restart). */
export async function waitForRabbit(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (last && Date.now() < deadline) {
    await delay(500);
    last = await probe();
  }
  if (last) throw new Error(`RabbitMQ did not answer on ${AMQP_URL.replace(/\/\/.*@/, '//')} within ${timeoutMs} ms: ${last.message}`);
}

export async function start(): Promise<void> {
  process.env.WHARF_TEST_AMQP_URL = AMQP_URL;
  if ((await probe()) === null) return;
  try {
    await run('rabbitmq-server', ['-detached']);
  } catch (err) {
    console.error(`rabbitmq-server -detached: ${(err as Error).message.trim()}`);
  }
  await waitForRabbit();
}

/**
 * Restarts the RabbitMQ application inside the running node (what a broker upgrade or crash
 * looks like to clients: every connection drops; durable queues and persistent messages stay).
 */
export async function restartRabbit(): Promise<void> {
  await run('rabbitmqctl', ['stop_app']);
  await run('rabbitmqctl', ['start_app']);
  await waitForRabbit();
}

const URL = AMQP_URL;

/** Publishes persistent messages on a confirm channel of a connection of its own. */
async function publish(queue: string, messages: { body: Buffer | string; headers?: Record<string, string> }[]): Promise<void> {
  const conn = await amqp.connect(URL);
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    for (const m of messages) {
      ch.sendToQueue(queue, Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body), {
        persistent: true,
        messageId: randomBytes(12).toString('hex'),
        headers: m.headers ?? {},
      });
    }
    await ch.waitForConfirms();
  } finally {
    await conn.close();
  }
}

export const fixture: BrokerFixture = {
  type: 'rabbitmq',
  async channel(name) {
    const queue = `wharf-test-${name}`;
    return {
      block: { url: URL, queue },
      publish: (messages) => publish(queue, messages),
      async close() {
        const conn = await amqp.connect(URL);
        const ch = await conn.createChannel();
        await ch.deleteQueue(queue);
        await conn.close();
      },
    };
  },
  restart: restartRabbit,
};
