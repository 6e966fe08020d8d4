import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { describeConformance, type BrokerFixture } from './conformance.ts';
import { restartRabbit } from '../../harness/brokers/rabbitmq.ts';

const URL = process.env.WHARF_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

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

export const rabbitFixture: BrokerFixture = {
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

describeConformance(rabbitFixture);
