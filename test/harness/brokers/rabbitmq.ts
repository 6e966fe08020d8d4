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

type Publish = { body: Buffer | string; headers?: Record<string, string> }[];

/**
 * A publisher for one queue: persistent messages on a confirm channel, resolved once the broker
 * confirmed them. The connection is kept between calls and opened again after a broker restart.
 */
function publisher(queue: string): { publish(messages: Publish): Promise<void>; close(): Promise<void> } {
  let open: Promise<{ conn: amqp.ChannelModel; ch: amqp.ConfirmChannel }> | null = null;
  const connect = async () => {
    const conn = await amqp.connect(URL);
    conn.on('error', () => undefined);
    conn.on('close', () => (open = null));
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    return { conn, ch };
  };
  const send = async (messages: Publish, ids: string[]): Promise<void> => {
    const { ch } = await (open ??= connect());
    messages.forEach((m, i) => {
      ch.sendToQueue(queue, Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body), {
        persistent: true,
        messageId: ids[i],
        headers: m.headers ?? {},
      });
    });
    await ch.waitForConfirms();
  };
  return {
    async publish(messages) {
      // Ids fixed before the first try: a message sent twice is then one message to Wharf.
      const ids = messages.map(() => randomBytes(12).toString('hex'));
      try {
        await send(messages, ids);
      } catch {
        open = null; // the broker restarted under a kept connection: once more on a new one
        await send(messages, ids);
      }
    },
    async close() {
      const current = open;
      open = null;
      if (current) await (await current).conn.close().catch(() => undefined);
    },
  };
}

export const fixture: BrokerFixture = {
  type: 'rabbitmq',
  async channel(name) {
    const queue = `wharf-test-${name}`;
    const p = publisher(queue);
    return {
      block: { url: URL, queue },
      publish: (messages) => p.publish(messages),
      async close() {
        await p.close();
        const conn = await amqp.connect(URL);
        const ch = await conn.createChannel();
        await ch.deleteQueue(queue);
        await conn.close();
      },
    };
  },
  restart: restartRabbit,
};
