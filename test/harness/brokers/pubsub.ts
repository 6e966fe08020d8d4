/**
 * Starts Google's pstest Pub/Sub fake for the integration tests and publishes its address as
 * WHARF_TEST_PUBSUB_HOST (`host:port`, plaintext gRPC) and its inspection URL as
 * WHARF_TEST_PUBSUB_INSPECT (see pstest/main.go: what the fake recorded of each message, acks and
 * nacks included, which the Pub/Sub API itself never shows). pstest is a Go package (Debian's
 * golang-google-cloud-dev); `pstest/main.go` wraps it in a program, built once into
 * `.wharf-test/pstest/` and rebuilt only when main.go is newer than the binary. The fake keeps
 * everything in memory: tests create their own topics and subscriptions (`fixture`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rename, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { PubSub } from '@google-cloud/pubsub';
import type { BrokerFixture } from './fixture.ts';
import { answers } from '../net.ts';

const run = promisify(execFile);

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE_DIR = fileURLToPath(new URL('./pstest/', import.meta.url));
const WORK = `${ROOT}.wharf-test/pstest`;
const BINARY = `${WORK}/pstest`;
/** Where Debian's golang-google-cloud-dev puts cloud.google.com/go and its dependencies. */
const DEBIAN_GOPATH = '/usr/share/gocode';

async function mtime(path: string): Promise<number | null> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return null;
  }
}

/** Builds the fake unless an up-to-date binary exists; GOPATH mode, as Debian ships the sources. */
async function build(): Promise<void> {
  const built = await mtime(BINARY);
  const source = await mtime(`${SOURCE_DIR}main.go`);
  if (built !== null && source !== null && built >= source) return;
  await mkdir(`${WORK}/gopath`, { recursive: true });
  // Built under a temporary name and renamed, so a concurrent run never starts half a binary.
  const partial = `${BINARY}.${process.pid}`;
  const env = {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: `${DEBIAN_GOPATH}:${WORK}/gopath`,
    GOCACHE: `${WORK}/gocache`,
    GOFLAGS: '',
  };
  try {
    await run('go', ['build', '-o', partial, '.'], { cwd: SOURCE_DIR, env, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `go build of the pstest Pub/Sub fake failed (needs golang-go and golang-google-cloud-dev): ${(e.stderr ?? e.message).trim().slice(-2000)}`,
      { cause: err },
    );
  }
  await rename(partial, BINARY);
}

/** Resolves with the two lines the fake prints (its addresses), or rejects when it dies first. */
function addresses(child: ChildProcess, timeoutMs: number): Promise<{ grpc: string; http: string }> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`pstest printed no addresses within ${timeoutMs} ms`)), timeoutMs);
    function fail(e: Error): void {
      clearTimeout(timer);
      reject(new Error(`${e.message}${err ? `; stderr: ${err.trim().slice(-1000)}` : ''}`));
    }
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n');
      if (lines.length > 2) {
        clearTimeout(timer);
        resolve({ grpc: lines[0].trim(), http: lines[1].trim() });
      }
    });
    child.once('error', (e) => fail(e));
    child.once('exit', (code, signal) => fail(new Error(`pstest exited (${signal ?? code}) before printing its addresses`)));
  });
}


export async function start(): Promise<(() => Promise<void>) | void> {
  // A fake started by hand (pstest/main.go) and named in the environment is used as it is.
  const given = process.env.WHARF_TEST_PUBSUB_HOST;
  if (given && process.env.WHARF_TEST_PUBSUB_INSPECT && (await answers(given))) return;

  await build();
  // stdin stays open: the fake exits when it closes, so it dies with the run even on a crash.
  const child = spawn(BINARY, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let at: { grpc: string; http: string };
  try {
    at = await addresses(child, 20_000);
    if (!(await answers(at.grpc))) throw new Error(`pstest does not answer on ${at.grpc}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.stdout!.resume();
  child.stderr!.resume();
  process.env.WHARF_TEST_PUBSUB_HOST = at.grpc;
  process.env.WHARF_TEST_PUBSUB_INSPECT = at.http;

  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
}

/** The project the fixture's topics and subscriptions live in; the fake takes any. */
export const PUBSUB_PROJECT = 'wharf-test';

export function emulatorHost(): string {
  const host = process.env.WHARF_TEST_PUBSUB_HOST;
  if (!host) throw new Error('WHARF_TEST_PUBSUB_HOST is not set: start() (the integration globalSetup) starts the pstest fake');
  return host;
}

/** A client of the fake for test topics and subscriptions (the SDK loads only when one is wanted). */
export async function adminClient(): Promise<PubSub> {
  const { PubSub } = await import('@google-cloud/pubsub');
  // The universe domain, given, keeps the auth library from looking for a GCE metadata server.
  return new PubSub({ projectId: PUBSUB_PROJECT, apiEndpoint: emulatorHost(), emulatorMode: true, universeDomain: 'googleapis.com' });
}

export const fixture: BrokerFixture = {
  type: 'pubsub',
  async channel(name) {
    const admin = await adminClient();
    const [topic] = await admin.createTopic(`wharf-${name}`);
    topic.setPublishOptions({ batching: { maxMessages: 500, maxMilliseconds: 5 } });
    const subscription = `wharf-${name}-sub`;
    // pstest refuses an ack deadline of 0 (the SDK's "unset"): give one.
    await topic.createSubscription(subscription, { ackDeadlineSeconds: 10 });
    return {
      // pstest hands each stream about one message per 10 ms tick: more streams go faster.
      block: { project_id: PUBSUB_PROJECT, subscription, emulator_host: emulatorHost(), workers: 4 },
      async publish(messages) {
        await Promise.all(
          messages.map((m) => topic.publishMessage({ data: typeof m.body === 'string' ? Buffer.from(m.body) : m.body, attributes: m.headers })),
        );
      },
      async close() {
        await admin.subscription(subscription).delete().catch(() => undefined);
        await topic.delete().catch(() => undefined);
        await admin.close();
      },
    };
  },
  // The fake keeps its messages only as long as it runs: there is no restart to offer.
};
