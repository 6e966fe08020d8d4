/**
 * How fast Google's pstest fake hands out messages with no Wharf involved: publishes N messages to
 * a fresh topic (the broker bench's fixture) and consumes them with the Pub/Sub SDK's streaming pull
 * over S streams, acking each at once, and prints messages/s. The fake delivers on a 10 ms tick at
 * most one message to each stream (pstest's fake.go, `deliver`), so the ceiling is about
 * S × 100/s whoever consumes.
 *
 *   node bench/pstest-ceiling.ts --messages 3000 --streams 4
 */
import { parseArgs } from 'node:util';
import { adminClient, fixture, start } from '../test/harness/brokers/pubsub.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '3000' }, streams: { type: 'string', default: '4' } } });
const total = Number(values.messages);
const streams = Number(values.streams);

const stop = await start();
const channel = await fixture.channel(`ceiling-${Date.now()}`);
const client = await adminClient();
try {
  await channel.publish(Array.from({ length: total }, (_, i) => ({ body: `{"seq":${i}}` })));
  const subscription = client.subscription(channel.block.subscription as string, {
    flowControl: { maxMessages: 1000, allowExcessMessages: false },
    streamingOptions: { maxStreams: streams },
  });
  const t0 = performance.now();
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    subscription.on('error', reject);
    subscription.on('message', (m: { ack(): void }) => {
      m.ack();
      if (++received === total) resolve();
    });
  });
  const seconds = (performance.now() - t0) / 1000;
  console.log(`pstest alone: ${total} messages over ${streams} stream(s) in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)}/s`);
  await subscription.close();
} finally {
  await channel.close?.();
  await client.close();
  if (stop) await stop();
}
