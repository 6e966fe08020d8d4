/**
 * SQS for the integration tests: the `fauxqs` emulator (an npm devDependency), which
 * @aws-sdk/client-sqs talks to unchanged. Its own CLI listens on every interface, so it runs as a
 * child Node process that builds fauxqs's app and binds it to 127.0.0.1 on a free port. State is in
 * memory only; tests create their own queues.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  SendMessageBatchCommand,
  SQSClient,
  type MessageAttributeValue,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs';
import type { BrokerFixture, PublishMessage } from './fixture.ts';

export const SQS_REGION = 'us-east-1';
/** fauxqs checks no signatures, but the SDK signs every request and needs some credentials. */
export const SQS_CREDENTIALS = { access_key_id: 'test', secret_access_key: 'test' };

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

// Runs inside the child: listens, prints the address, and exits when the parent goes away (stdin closes).
const CHILD = `
const { buildApp } = await import('fauxqs');
const app = buildApp({ logger: false });
const address = await app.listen({ port: Number(process.env.FAUXQS_PORT ?? 0), host: '127.0.0.1' });
process.stdout.write('FAUXQS_LISTENING ' + address + '\\n');
process.stdin.on('end', () => app.close().finally(() => process.exit(0)));
process.stdin.resume();
`;

export interface Fauxqs {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

function nodeBinary(): string {
  // The repo's Node 24 (the system node may be older than fauxqs and the SDK need).
  const local = `${ROOT}node_modules/.bin/node`;
  return existsSync(local) ? local : process.execPath;
}

/** Starts one fauxqs process (on `port`, or a free one) and resolves once it answers /health. */
export async function launchFauxqs(port = 0, timeoutMs = 20_000): Promise<Fauxqs> {
  const child = spawn(nodeBinary(), ['--input-type=module', '-e', CHILD], {
    cwd: ROOT,
    env: { ...process.env, FAUXQS_PORT: String(port) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`fauxqs did not start within ${timeoutMs} ms`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}; output: ${output.trim().slice(-2000)}`));
    }
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const m = /FAUXQS_LISTENING (\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`fauxqs exited (code ${code}, signal ${signal})`)));
  });
  child.removeAllListeners('exit');
  const endpoint = address.replace('://localhost', '://127.0.0.1');
  const res = await fetch(`${endpoint}/health`);
  if (!res.ok) {
    await kill(child);
    throw new Error(`fauxqs at ${endpoint} answered /health with ${res.status}`);
  }
  return { endpoint, port: Number(new URL(endpoint).port), stop: () => kill(child) };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    return (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2_000) })).ok;
  } catch {
    return false;
  }
}

export async function start(): Promise<(() => Promise<void>) | void> {
  process.env.WHARF_TEST_SQS_REGION = SQS_REGION;
  process.env.WHARF_TEST_SQS_ACCESS_KEY_ID = SQS_CREDENTIALS.access_key_id;
  process.env.WHARF_TEST_SQS_SECRET_ACCESS_KEY = SQS_CREDENTIALS.secret_access_key;
  // One already given (and answering) is used as it is.
  const given = process.env.WHARF_TEST_SQS_ENDPOINT;
  if (given && (await answers(given))) return;
  const fauxqs = await launchFauxqs();
  process.env.WHARF_TEST_SQS_ENDPOINT = fauxqs.endpoint;
  return fauxqs.stop;
}

/** Read when used: the globalSetup sets these before the test workers start. */
export const ENDPOINT = process.env.WHARF_TEST_SQS_ENDPOINT!;
export const REGION = SQS_REGION;
export const ACCESS_KEY_ID = process.env.WHARF_TEST_SQS_ACCESS_KEY_ID ?? 'test';
// fauxqs checks no signature, so the tests can use a secret they then look for in logs and health.
export const SECRET = 'sqs-test-secret-never-logged';

export function sqsClient(endpoint = process.env.WHARF_TEST_SQS_ENDPOINT!): SQSClient {
  return new SQSClient({ endpoint, region: REGION, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET } });
}

export const queueName = (what: string): string => `${what}-${randomBytes(4).toString('hex')}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 80);

export async function createQueue(client: SQSClient, name: string, attributes?: Record<string, string>): Promise<string> {
  const out = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  return out.QueueUrl!;
}

function attributes(headers: Record<string, string> | undefined): Record<string, MessageAttributeValue> | undefined {
  if (!headers || Object.keys(headers).length === 0) return undefined;
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]));
}

/** SendMessageBatch in tens; fails on any entry SQS refused. */
export async function send(client: SQSClient, queueUrl: string, entries: Omit<SendMessageBatchRequestEntry, 'Id'>[]): Promise<void> {
  for (let i = 0; i < entries.length; i += 10) {
    const out = await client.send(
      new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries.slice(i, i + 10).map((e, j) => ({ ...e, Id: String(j) })) }),
    );
    if (out.Failed?.length) throw new Error(`SendMessageBatch to ${queueUrl} refused: ${JSON.stringify(out.Failed)}`);
  }
}

/** Queues for the conformance suite, each consumed by a source of a whole Wharf. */
export const fixture: BrokerFixture = {
  type: 'sqs',
  async channel(name) {
    const client = sqsClient();
    const queueUrl = await createQueue(client, name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 80));
    return {
      block: {
        queue_url: queueUrl,
        region: REGION,
        endpoint: process.env.WHARF_TEST_SQS_ENDPOINT!, // read now: the bench starts fauxqs after importing this
        credentials: { access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET },
        // Short polls and timeouts keep redeliveries after a stop within the suite's waits.
        wait_time_seconds: 2,
        visibility_timeout: 5,
        workers: 2,
      },
      async publish(messages: PublishMessage[]) {
        await send(
          client,
          queueUrl,
          messages.map((m) => ({ MessageBody: Buffer.isBuffer(m.body) ? m.body.toString('utf8') : m.body, MessageAttributes: attributes(m.headers) })),
        );
      },
      async close() {
        await client.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => undefined);
        client.destroy();
      },
    };
  },
  // fauxqs keeps messages in memory only: a restart would lose them, so there is no restart test.
};

