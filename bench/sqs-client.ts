/**
 * What one SQS receive-and-delete costs the client: the CPU of this process for a ReceiveMessage of
 * ten messages (attributes included, as the SQS source asks) and the DeleteMessageBatch of their
 * receipts, against the test harness's fauxqs (a child process, on the same cores). Three clients,
 * each in its own rounds, the rounds taking turns so that a drifting machine moves them alike:
 *
 * - `sdk`: the SDK's own SHA-256 and a logger with an `info` that does nothing (the source until
 *   2026-12-05: the SDK builds a redacted copy of every answer for `info`);
 * - `no-info`: the SDK's SHA-256, a logger without `info`;
 * - `sha256`: Wharf's `Sha256` (connectors/sqs.ts) as well (the source from the late afternoon of
 *   2026-12-05);
 * - `wharf`: the SQS source's client settings now: Wharf's `Md5` for the body checks as well, and
 *   the SDK's `cacheMiddleware` (a command's handler resolved once, not at every send; the SDK
 *   caches only sends without options, so the receive, which passes its abort signal here as the
 *   source does, still resolves its own).
 *
 *   node bench/sqs-client.ts --pairs 2000 --rounds 4
 */
import { Agent } from 'node:http';
import { parseArgs } from 'node:util';
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Md5, Sha256 } from '../connectors/sqs.ts';
import { launchFauxqs } from '../test/harness/brokers/sqs.ts';

const { values } = parseArgs({ options: { pairs: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '4' } } });
const pairs = Number(values.pairs);
const rounds = Number(values.rounds);
const VARIANTS = ['sdk', 'no-info', 'sha256', 'wharf'] as const;
type Variant = (typeof VARIANTS)[number];

const quiet = (): undefined => undefined;
const fauxqs = await launchFauxqs();
const client = (variant: Variant): SQSClient =>
  new SQSClient({
    region: 'us-east-1',
    endpoint: fauxqs.endpoint,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
    requestHandler: { httpAgent: new Agent({ keepAlive: true }) },
    logger: { debug: quiet, warn: quiet, error: quiet, info: variant === 'sdk' ? quiet : (undefined as unknown as () => void) },
    ...(variant === 'sha256' || variant === 'wharf' ? { sha256: Sha256 } : {}),
    ...(variant === 'wharf' ? { md5: Md5, cacheMiddleware: true } : {}),
  });

const clients = Object.fromEntries(VARIANTS.map((v) => [v, client(v)])) as Record<Variant, SQSClient>;
const { QueueUrl } = await clients.sdk.send(new CreateQueueCommand({ QueueName: `sqs-client-${Date.now()}` }));
const body = JSON.stringify({ event_type: 'bench.sqs', data: { pad: 'x'.repeat(200) } });
const attributes = { 'x-bench-seq': { DataType: 'String', StringValue: '12345' } };

async function fill(messages: number): Promise<void> {
  for (let i = 0; i < messages; i += 10) {
    const Entries = Array.from({ length: 10 }, (_, k) => ({ Id: String(k), MessageBody: body, MessageAttributes: attributes }));
    await clients.sdk.send(new SendMessageBatchCommand({ QueueUrl, Entries }));
  }
}

/** The source passes its stop's signal with every receive. */
const never = new AbortController();

/** `n` receive-and-delete pairs; the process's CPU (user + system) a pair, in ms. */
async function round(c: SQSClient, n: number): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const got = await c.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }),
      { abortSignal: never.signal },
    );
    const messages = got.Messages ?? [];
    if (messages.length !== 10) throw new Error(`a receive got ${messages.length} messages, not 10: the queue ran dry`);
    await c.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: messages.map((m, k) => ({ Id: String(k), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / n;
}

try {
  const warmup = 50;
  await fill((warmup * VARIANTS.length + pairs * rounds * VARIANTS.length) * 10 + 100);
  for (const v of VARIANTS) await round(clients[v], warmup);
  const results: Record<Variant, number[]> = { sdk: [], 'no-info': [], sha256: [], wharf: [] };
  for (let r = 0; r < rounds; r++) {
    // Each round starts with a different variant.
    for (let k = 0; k < VARIANTS.length; k++) {
      const v = VARIANTS[(r + k) % VARIANTS.length]!;
      results[v].push(await round(clients[v], pairs));
    }
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  console.log(`client CPU a receive (10 messages) and its delete, ${pairs} pairs a round, ${rounds} rounds each:`);
  for (const v of VARIANTS) {
    console.log(`  ${v.padEnd(8)} median ${median(results[v]).toFixed(3)} ms  (rounds: ${results[v].map((x) => x.toFixed(3)).join(', ')})`);
  }
} finally {
  for (const c of Object.values(clients)) c.destroy();
  await fauxqs.stop();
}
