/**
 * Amazon SQS through @aws-sdk/client-sqs v3. `workers` receive loops long-poll the queue and hand
 * each received batch to the sink without waiting for it, until `max_in_flight` messages are
 * received and not yet deleted. A batch is deleted only once the sink resolved for it; while the
 * sink works, its visibility is extended so SQS does not hand it to another consumer. When the sink
 * fails, the batch is made visible again after a backoff delay and the loops pause: SQS redelivers,
 * and the MessageId (the same on every delivery) lets Wharf deduplicate.
 */
import type * as SqsSdk from '@aws-sdk/client-sqs';
import type { ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue, SQSClient } from '@aws-sdk/client-sqs';
import { createHash, createHmac, createSecretKey, type Hash, type Hmac, type KeyObject } from 'node:crypto';
import { Agent as HttpAgent, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Duplex } from 'node:stream';
import { backoffMs, sleep, within } from '../src/core/backoff.ts';
import type { BrokerMessage, Connector, ConnectorDeps, ConnectorHealth, ConnectorModule, ConnectorState, EgressGuard, Sink } from '../src/core/connector.ts';
import { absent, got, type Reader } from '../src/core/settings.ts';

export interface SqsCredentials {
  access_key_id: string;
  secret_access_key: string;
  session_token: string | null;
}

export interface SqsConfig {
  /** Exactly one of queue_url and queue_name is set; a name is resolved with GetQueueUrl at connect. */
  queue_url: string | null;
  queue_name: string | null;
  region: string;
  endpoint: string | null;
  /** The source's own access key; null only with `use_default_credentials`. */
  credentials: SqsCredentials | null;
  /**
   * The SDK's default provider chain (environment, profile, web identity, instance role): Wharf's
   * own AWS identity, which only the operator's config file may lend to a source.
   */
  use_default_credentials: boolean;
  wait_time_seconds: number;
  max_messages: number;
  visibility_timeout: number;
  workers: number;
  max_in_flight: number;
}

const KEYS = [
  'queue_url',
  'queue_name',
  'region',
  'endpoint',
  'credentials',
  'use_default_credentials',
  'wait_time_seconds',
  'max_messages',
  'visibility_timeout',
  'workers',
  'max_in_flight',
];
const CREDENTIAL_KEYS = ['access_key_id', 'secret_access_key', 'session_token'];

// AWS: up to 80 letters, digits, "-" and "_", the ".fifo" suffix included.
const QUEUE_NAME = /^(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)$/;
// Loose on purpose: emulators accept regions AWS does not have.
const REGION = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const AWS_REGION_LABEL = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const EXAMPLE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/orders';

/** How often the queue depth (health().lag) is asked for. */
const LAG_REFRESH_MS = 5_000;
const DELETE_ATTEMPTS = 3;

/** The region an amazonaws.com queue URL names (sqs.<region>.amazonaws.com, VPC endpoints, legacy hosts). */
export function regionOfQueueUrl(queueUrl: string): string | null {
  let host: string;
  try {
    host = new URL(queueUrl).hostname;
  } catch {
    return null;
  }
  if (!/\.amazonaws\.com(?:\.cn)?$/.test(host)) return null;
  return host.split('.').find((label) => AWS_REGION_LABEL.test(label)) ?? null;
}

function parseQueueUrl(r: Reader, value: unknown, path: string): string | null {
  const text = r.optional(value, path, 2048);
  if (text === null) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    r.bad(path, `must be an http or https queue URL such as ${EXAMPLE_URL}${got(text)}`);
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    r.bad(path, `must be an http or https queue URL (got ${JSON.stringify(url.protocol)})`);
    return null;
  }
  if (url.username || url.password) {
    r.bad(path, 'must not carry credentials: give them under credentials');
    return null;
  }
  const name = url.pathname.split('/').filter(Boolean).at(-1) ?? '';
  if (!QUEUE_NAME.test(name)) {
    r.bad(path, `must end in the queue's name, as in ${EXAMPLE_URL}${got(text)}`);
    return null;
  }
  return text;
}

function parseEndpoint(r: Reader, value: unknown, path: string): string | null {
  const text = r.optional(value, path, 2048);
  if (text === null) return null;
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) r.bad(path, `must be an http or https URL such as https://sqs.us-east-1.amazonaws.com${got(text)}`);
  else if (url.username || url.password) r.bad(path, 'must not carry credentials: give them under credentials');
  else return text;
  return null;
}

function parseCredentials(r: Reader, value: unknown, path: string): SqsCredentials | null {
  if (absent(value)) return null;
  const c = r.fields(value, path, CREDENTIAL_KEYS);
  if (!c) return null;
  if (absent(c.access_key_id)) r.bad(`${path}.access_key_id`, 'is required with credentials');
  if (absent(c.secret_access_key)) r.bad(`${path}.secret_access_key`, 'is required with credentials');
  return {
    access_key_id: r.text(c.access_key_id, `${path}.access_key_id`, '', { max: 128 }),
    secret_access_key: r.text(c.secret_access_key, `${path}.secret_access_key`, '', { max: 256, secret: true }),
    session_token: r.optional(c.session_token, `${path}.session_token`, 8192, true),
  };
}

function parse(r: Reader, value: unknown, at: string): SqsConfig {
  const given = r.fields(value, at, KEYS);
  const b = given ?? {};
  const queueUrl = parseQueueUrl(r, b.queue_url, `${at}.queue_url`);
  let queueName = r.optional(b.queue_name, `${at}.queue_name`, 80);
  if (queueName !== null && !QUEUE_NAME.test(queueName)) {
    r.bad(`${at}.queue_name`, `must be 1-80 letters, digits, "-" or "_" (a FIFO queue's ending in ".fifo")${got(queueName)}`);
    queueName = null;
  }
  const hasUrl = !absent(b.queue_url) && b.queue_url !== '';
  const hasName = !absent(b.queue_name) && b.queue_name !== '';
  if (!hasUrl && !hasName) r.bad(at, 'needs queue_url, or queue_name with region: the queue to consume');
  if (hasUrl && hasName) r.bad(`${at}.queue_name`, 'cannot be given with queue_url: give one of them');

  let region = r.optional(b.region, `${at}.region`, 64);
  if (region !== null && !REGION.test(region)) {
    r.bad(`${at}.region`, `must be an AWS region such as us-east-1${got(region)}`);
    region = null;
  }
  const urlRegion = queueUrl === null ? null : regionOfQueueUrl(queueUrl);
  if (region === null && absent(b.region)) {
    if (urlRegion !== null) region = urlRegion;
    else if (queueUrl !== null && !hasName) r.bad(`${at}.region`, 'is required when queue_url is not an amazonaws.com URL naming its region');
    else if (queueName !== null && !hasUrl) r.bad(`${at}.region`, 'is required with queue_name');
  } else if (region !== null && urlRegion !== null && region !== urlRegion) {
    r.bad(`${at}.region`, `must match the region of queue_url (${urlRegion})${got(region)}`);
  }

  const credentials = parseCredentials(r, b.credentials, `${at}.credentials`);
  const useDefault = r.boolean(b.use_default_credentials, `${at}.use_default_credentials`, false);
  if (given !== null && credentials === null && !useDefault && absent(b.credentials)) {
    r.bad(
      `${at}.credentials`,
      "is required: the source's own access_key_id and secret_access_key (in the config file, use_default_credentials: true lends it Wharf's own AWS identity instead)",
    );
  }
  if (credentials !== null && useDefault) r.bad(`${at}.use_default_credentials`, 'cannot be given with credentials: give one of them');
  return {
    queue_url: queueUrl,
    queue_name: hasUrl ? null : queueName,
    region: region ?? '',
    endpoint: parseEndpoint(r, b.endpoint, `${at}.endpoint`),
    credentials,
    use_default_credentials: useDefault,
    wait_time_seconds: r.integer(b.wait_time_seconds, `${at}.wait_time_seconds`, 0, 20, 20),
    max_messages: r.integer(b.max_messages, `${at}.max_messages`, 1, 10, 10),
    visibility_timeout: r.integer(b.visibility_timeout, `${at}.visibility_timeout`, 1, 43_200, 30),
    workers: r.integer(b.workers, `${at}.workers`, 1, 64, 1),
    max_in_flight: r.integer(b.max_in_flight, `${at}.max_in_flight`, 1, 10_000, 100),
  };
}

/** An attribute value as text: strings and numbers as given, binary as base64. */
function attributeText(value: MessageAttributeValue): string {
  if (value.DataType?.startsWith('Binary')) return value.BinaryValue ? Buffer.from(value.BinaryValue).toString('base64') : '';
  return value.StringValue ?? '';
}

export function toBrokerMessage(m: Message & { MessageId: string }, fifo: boolean): BrokerMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(m.MessageAttributes ?? {})) headers[name.toLowerCase()] = attributeText(value);
  return {
    id: m.MessageId,
    body: Buffer.from(m.Body ?? '', 'utf8'),
    headers,
    key: fifo ? (m.Attributes?.MessageGroupId ?? null) : null,
    receivedAt: new Date(),
  };
}

/** `Name: message` of an SDK or network error (Node's connect errors may be AggregateErrors without a message). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const name = err.name && err.name !== 'Error' ? err.name : typeof code === 'string' ? code : '';
  let message = err.message;
  if (!message && err instanceof AggregateError) message = err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).join('; ');
  return name && !message.startsWith(name) ? `${name}: ${message}` : message || name || 'unknown error';
}

/** One received message and the handle that deletes it. */
interface Held {
  receipt: string;
  message: BrokerMessage;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

type Sdk = typeof SqsSdk;

/**
 * A keep-alive agent whose sockets obey the egress guard: names through its `lookup`, and IP
 * literals (which net.connect dials without a lookup) judged before a socket is opened.
 */
function guardedAgent<A extends typeof HttpAgent | typeof HttpsAgent>(Base: A, egress: EgressGuard, maxSockets: number): InstanceType<A> {
  const Guarded = class extends (Base as typeof HttpAgent) {
    override createConnection(options: ClientRequestArgs, callback?: (err: Error | null, socket: Duplex) => void): Duplex | null | undefined {
      const refused = egress.refusal(String(options.host ?? options.hostname ?? ''));
      if (refused === null) return super.createConnection(options, callback);
      // The agent takes a connection error through the callback, and nothing is dialled.
      process.nextTick(() => callback?.(refused, undefined as unknown as Duplex));
      return undefined;
    }
  };
  return new Guarded({ keepAlive: true, maxSockets, lookup: egress.lookup }) as InstanceType<A>;
}

type HashInput = string | ArrayBuffer | ArrayBufferView;

/** Signing keys as KeyObjects, by the key the SDK holds (it caches one per day, region and credentials). */
const signingKeys = new WeakMap<object, KeyObject>();

function hmacKey(secret: HashInput): string | KeyObject {
  if (typeof secret === 'string') return secret;
  let key = signingKeys.get(secret);
  if (!key) {
    key = createSecretKey(ArrayBuffer.isView(secret) ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength) : Buffer.from(secret));
    signingKeys.set(secret, key);
  }
  return key;
}

/**
 * The SDK's checksums on node:crypto, in the shape it asks for (`new C(secret?)`, `update`, a
 * promised `digest`, `reset`).
 * - SHA-256 and HMAC-SHA-256 for the SigV4 signer (a request takes two hashes, an HMAC keyed by
 *   the secret access key as text, and one keyed by the cached signing key). The SDK's own
 *   converts the signing key to a key object for every HMAC (on Node 24, createHmac with bytes
 *   costs more than with a KeyObject, as src/core/hmac.ts measured) and copies each hash before
 *   its digest; this one converts each key once and digests once, as the signer asks. About a
 *   tenth less of the client's CPU a receive and its delete (`node bench/sqs-client.ts`).
 * - MD5, with which the SDK checks every received message's body against SQS's `MD5OfBody`. Its
 *   own is MD5 in JavaScript (@smithy/md5-js); the check stays, on OpenSSL's.
 */
class NodeChecksum {
  readonly #algorithm: 'sha256' | 'md5';
  readonly #secret: HashInput | undefined;
  #hash: Hash | Hmac;
  #digest: Uint8Array | null = null;

  constructor(algorithm: 'sha256' | 'md5', secret?: HashInput) {
    this.#algorithm = algorithm;
    this.#secret = secret;
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash(this.#algorithm) : createHmac(this.#algorithm, hmacKey(this.#secret));
  }

  update(data: HashInput): void {
    if (typeof data === 'string') this.#hash.update(data, 'utf8');
    else this.#hash.update(ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data));
  }

  /** The same digest however often it is asked for; an update after it throws, as node:crypto's does. */
  digest(): Promise<Uint8Array> {
    if (this.#digest === null) {
      const out = this.#hash.digest();
      this.#digest = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    return Promise.resolve(this.#digest);
  }

  reset(): void {
    this.#hash = this.#fresh();
    this.#digest = null;
  }
}

/** SHA-256, or HMAC-SHA-256 keyed by `secret`, for the SDK's `sha256`. */
export class Sha256 extends NodeChecksum {
  constructor(secret?: HashInput) {
    super('sha256', secret);
  }
}

/** MD5 for the SDK's `md5` (its body checks). */
export class Md5 extends NodeChecksum {
  constructor() {
    super('md5');
  }
}

/**
 * Whether this Node's OpenSSL gives MD5 (one built for FIPS does not): where it does not, the
 * SDK keeps its own, so the check never turns into a failure of every receive.
 */
const OPENSSL_MD5 = ((): boolean => {
  try {
    createHash('md5');
    return true;
  } catch {
    return false;
  }
})();

class SqsConnector implements Connector {
  private readonly config: SqsConfig;
  private readonly deps: ConnectorDeps;
  private readonly sdk: Sdk;
  private readonly client: SQSClient;
  /** The queue as logs and health name it. */
  private readonly where: string;
  private readonly fifo: boolean;

  private state: ConnectorState = 'stopped';
  private sink: Sink | null = null;
  private queueUrl: string | null;
  private resolving: Promise<string | null> | null = null;
  private readonly abort = new AbortController();
  private main: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  /** Set once the client is destroyed: late sink results must not reach it. */
  private closed = false;

  /** Received, not yet deleted or handed back. */
  private inFlight = 0;
  /** Promised to receives under way, so concurrent loops together stay within max_in_flight. */
  private reserved = 0;
  private readonly slotWaiters = new Set<() => void>();
  private readonly batches = new Set<Promise<void>>();
  /** After the sink failed the loops wait until then before receiving more. */
  private pausedUntil = 0;
  private sinkFailures = 0;

  private lag: number | null = null;
  private brokerError: string | null = null;
  private sinkError: string | null = null;

  constructor(config: SqsConfig, deps: ConnectorDeps, sdk: Sdk) {
    this.config = config;
    this.deps = deps;
    this.sdk = sdk;
    this.queueUrl = config.queue_url;
    this.where = config.queue_url ?? `${config.queue_name} (${config.region})`;
    this.fifo = (config.queue_url ?? config.queue_name ?? '').endsWith('.fifo');
    const c = config.credentials;
    // A socket per long poll, plus one per batch that may be deleting or extending at once.
    const maxSockets = config.workers + Math.min(64, Math.ceil(config.max_in_flight / config.max_messages));
    this.client = new sdk.SQSClient({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      // Without credentials of its own, a source reaches for Wharf's identity only when the operator
      // said so; otherwise every request fails, naming why, rather than falling back to the chain.
      credentials: c
        ? { accessKeyId: c.access_key_id, secretAccessKey: c.secret_access_key, ...(c.session_token ? { sessionToken: c.session_token } : {}) }
        : config.use_default_credentials === true
          ? undefined
          : () => Promise.reject(new Error("sqs.credentials: this source has no access key of its own and may not use the default AWS provider chain (use_default_credentials is the config file's to give)")),
      requestHandler: {
        connectionTimeout: 5_000,
        // A long poll is silent for up to wait_time_seconds; anything well beyond that is a dead connection.
        requestTimeout: (config.wait_time_seconds + 15) * 1_000,
        throwOnRequestTimeout: true,
        // Every connection the SDK opens goes through the egress policy, whichever host it was
        // sent to (the queue URL, `endpoint`, or a QueueUrl that GetQueueUrl answered).
        httpAgent: guardedAgent(HttpAgent, deps.egress, maxSockets),
        httpsAgent: guardedAgent(HttpsAgent, deps.egress, maxSockets),
      },
      sha256: Sha256,
      ...(OPENSSL_MD5 ? { md5: Md5 } : {}),
      // A command's middleware resolved once per command class, not at every send (the SDK rebuilds
      // and sorts the stack otherwise). The SDK caches only sends without options: the deletes and
      // visibility changes, not the receives, which pass the stop's abort signal.
      cacheMiddleware: true,
      // No `info`: the SDK calls it for every response with a redacted deep copy of the request
      // and the answer (every message received), which it builds only when `info` exists.
      logger: {
        debug: () => undefined,
        info: undefined as unknown as () => void,
        warn: (...content: unknown[]) => deps.logger.warn({ connector: deps.name, sdk: content.map(String).join(' ') }, 'SQS client warning'),
        error: (...content: unknown[]) => deps.logger.error({ connector: deps.name, sdk: content.map(String).join(' ') }, 'SQS client error'),
      },
    });
  }

  async start(sink: Sink): Promise<void> {
    if (this.sink || this.stopping) throw new Error(`sqs connector ${this.deps.name} was already started`);
    this.sink = sink;
    this.state = 'connecting';
    this.main = this.run();
  }

  stop(options: { timeoutMs: number }): Promise<void> {
    this.stopping ??= this.shutdown(options.timeoutMs);
    return this.stopping;
  }

  health(): ConnectorHealth {
    return { state: this.state, inFlight: this.inFlight, lag: this.lag, lastError: this.brokerError ?? this.sinkError };
  }

  private async run(): Promise<void> {
    // IP literals are dialled without a lookup: judged here, until the policy or the source changes.
    // The SDK sends to `endpoint` when one is given, else to the queue URL's host.
    const target = this.config.endpoint ?? this.config.queue_url;
    const hosts = target ? [new URL(target).hostname] : [];
    for (let n = 0; !this.abort.signal.aborted; n++) {
      try {
        for (const h of hosts) await this.deps.egress.check(h);
        break;
      } catch (err) {
        this.brokerFailed(`${this.where}: ${describe(err)}`);
        await sleep(backoffMs(n), this.abort.signal);
      }
    }
    const loops = Array.from({ length: this.config.workers }, () => this.receiveLoop());
    await Promise.all([...loops, this.lagLoop()]);
  }

  // ---- receiving ----

  private async receiveLoop(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      const pause = this.pausedUntil - Date.now();
      if (pause > 0) await sleep(pause, signal);
      const queueUrl = await this.resolveQueueUrl();
      if (queueUrl === null) break;
      const slots = await this.reserveSlots(signal);
      if (slots === 0) break;
      let received: Message[];
      try {
        // Until a receive succeeds, poll without waiting, so health turns 'running' at once.
        const wait = this.state === 'running' ? this.config.wait_time_seconds : 0;
        received = await this.receive(queueUrl, slots, wait, signal);
      } catch (err) {
        this.releaseSlots(slots);
        if (signal.aborted) break;
        this.brokerFailed(`ReceiveMessage from ${this.where} failed: ${describe(err)}`);
        await sleep(backoffMs(failures++), signal);
        continue;
      }
      failures = 0;
      this.brokerOk();
      const held = this.hold(received);
      this.reserved -= slots;
      this.inFlight += held.length;
      if (held.length < slots) this.wakeSlotWaiters();
      if (held.length > 0) this.dispatch(queueUrl, held);
    }
  }

  private async receive(queueUrl: string, max: number, wait: number, signal: AbortSignal): Promise<Message[]> {
    const out = await this.client.send(
      new this.sdk.ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: wait,
        VisibilityTimeout: this.config.visibility_timeout,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
      { abortSignal: signal },
    );
    return out.Messages ?? [];
  }

  /** The messages that can be acked, as the sink sees them. */
  private hold(received: Message[]): Held[] {
    const held: Held[] = [];
    for (const m of received) {
      if (m.ReceiptHandle && m.MessageId) held.push({ receipt: m.ReceiptHandle, message: toBrokerMessage({ ...m, MessageId: m.MessageId }, this.fifo) });
      else this.deps.logger.warn({ connector: this.deps.name, queue: this.where }, 'SQS returned a message without MessageId or ReceiptHandle; skipped');
    }
    return held;
  }

  /** The queue URL, resolving queue_name once (shared by the loops), with backoff; null when stopping. */
  private resolveQueueUrl(): Promise<string | null> {
    if (this.queueUrl !== null) return Promise.resolve(this.queueUrl);
    this.resolving ??= (async () => {
      const signal = this.abort.signal;
      for (let attempt = 0; !signal.aborted; attempt++) {
        try {
          const out = await this.client.send(new this.sdk.GetQueueUrlCommand({ QueueName: this.config.queue_name! }), { abortSignal: signal });
          if (!out.QueueUrl) throw new Error('GetQueueUrl answered without a QueueUrl');
          this.queueUrl = out.QueueUrl;
          return this.queueUrl;
        } catch (err) {
          if (signal.aborted) break;
          this.brokerFailed(`GetQueueUrl for ${this.where} failed: ${describe(err)}`);
          await sleep(backoffMs(attempt), signal);
        }
      }
      return null;
    })();
    return this.resolving;
  }

  // ---- the in-flight bound ----

  /** Slots for one receive (at most max_messages); waits while max_in_flight are out; 0 when stopping. */
  private async reserveSlots(signal: AbortSignal): Promise<number> {
    while (!signal.aborted) {
      const free = this.config.max_in_flight - this.inFlight - this.reserved;
      if (free > 0) {
        const n = Math.min(free, this.config.max_messages);
        this.reserved += n;
        return n;
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.slotWaiters.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.slotWaiters.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    return 0;
  }

  private releaseSlots(n: number): void {
    this.reserved -= n;
    this.wakeSlotWaiters();
  }

  private settle(n: number): void {
    this.inFlight -= n;
    this.wakeSlotWaiters();
  }

  private wakeSlotWaiters(): void {
    for (const wake of [...this.slotWaiters]) wake();
  }

  // ---- one batch: sink, then delete or hand back ----

  private dispatch(queueUrl: string, held: Held[]): void {
    const done: Promise<void> = this.handleBatch(queueUrl, held)
      .catch((err: unknown) => this.deps.logger.error({ connector: this.deps.name, queue: this.where, error: describe(err) }, 'handling an SQS batch failed'))
      .finally(() => this.batches.delete(done));
    this.batches.add(done);
  }

  private async handleBatch(queueUrl: string, held: Held[]): Promise<void> {
    const keeper = this.keepInvisible(queueUrl, held);
    let stored = false;
    try {
      await this.sink!.accept(held.map((h) => h.message));
      stored = true;
      this.sinkFailures = 0;
      this.sinkError = null;
    } catch (err) {
      this.sinkError = `storing messages from ${this.where} failed: ${describe(err)}`;
      this.deps.logger.warn({ connector: this.deps.name, queue: this.where, error: this.sinkError, messages: held.length }, 'sink failed; SQS will redeliver the batch');
    } finally {
      clearInterval(keeper);
    }
    try {
      if (this.closed) return; // stop gave up waiting: the client is gone, SQS redelivers after the visibility timeout
      if (stored) await this.deleteBatch(queueUrl, held);
      else await this.handBack(queueUrl, held);
    } finally {
      this.settle(held.length);
    }
  }

  /** Extends the batch's visibility every half timeout while the sink works on it. */
  private keepInvisible(queueUrl: string, held: Held[]): ReturnType<typeof setInterval> {
    let busy = false;
    const timer = setInterval(
      () => {
        if (busy || this.closed) return;
        busy = true;
        this.changeVisibility(queueUrl, held, this.config.visibility_timeout, 'extending visibility').finally(() => (busy = false));
      },
      (this.config.visibility_timeout * 1_000) / 2,
    );
    return timer;
  }

  /** After a sink failure: pause the loops, and let SQS redeliver the batch after the same delay. */
  private async handBack(queueUrl: string, held: Held[]): Promise<void> {
    const delayMs = backoffMs(this.sinkFailures++, { baseMs: 1_000, capMs: 30_000 });
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + delayMs);
    const seconds = Math.min(43_200, Math.max(1, Math.ceil(delayMs / 1_000)));
    await this.changeVisibility(queueUrl, held, seconds, 'handing back after a sink failure');
  }

  private async changeVisibility(queueUrl: string, held: Held[], seconds: number, why: string): Promise<void> {
    for (const part of chunks(held, 10)) {
      const entries: ChangeMessageVisibilityBatchRequestEntry[] = part.map((h, i) => ({ Id: String(i), ReceiptHandle: h.receipt, VisibilityTimeout: seconds }));
      try {
        const out = await this.client.send(new this.sdk.ChangeMessageVisibilityBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
        for (const f of out.Failed ?? []) {
          this.deps.logger.warn(
            { connector: this.deps.name, queue: this.where, message_id: part[Number(f.Id)]?.message.id, code: f.Code, error: f.Message },
            `ChangeMessageVisibility failed while ${why}`,
          );
        }
      } catch (err) {
        if (this.closed) return;
        this.deps.logger.warn({ connector: this.deps.name, queue: this.where, error: describe(err) }, `ChangeMessageVisibilityBatch failed while ${why}`);
      }
    }
  }

  /** Deletes a stored batch; what cannot be deleted comes back later and is deduplicated downstream. */
  private async deleteBatch(queueUrl: string, held: Held[]): Promise<void> {
    for (const part of chunks(held, 10)) {
      const entries = part.map((h, i) => ({ Id: String(i), ReceiptHandle: h.receipt }));
      for (let attempt = 0; ; attempt++) {
        try {
          const out = await this.client.send(new this.sdk.DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
          for (const f of out.Failed ?? []) {
            this.deps.logger.warn(
              { connector: this.deps.name, queue: this.where, message_id: part[Number(f.Id)]?.message.id, code: f.Code, error: f.Message },
              'DeleteMessageBatch could not delete a stored message; SQS will redeliver it and it will be deduplicated',
            );
          }
          break;
        } catch (err) {
          if (this.closed) return;
          if (attempt + 1 >= DELETE_ATTEMPTS) {
            this.deps.logger.warn(
              { connector: this.deps.name, queue: this.where, error: describe(err), messages: part.length },
              'DeleteMessageBatch failed; SQS will redeliver the stored messages and they will be deduplicated',
            );
            break;
          }
          await sleep(backoffMs(attempt + 2));
        }
      }
    }
  }

  // ---- health ----

  private async lagLoop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (this.queueUrl !== null) {
        try {
          const out = await this.client.send(
            new this.sdk.GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }),
            { abortSignal: signal },
          );
          const n = Number(out.Attributes?.ApproximateNumberOfMessages);
          this.lag = Number.isFinite(n) ? n : null;
        } catch (err) {
          if (!signal.aborted) this.deps.logger.debug({ connector: this.deps.name, queue: this.where, error: describe(err) }, 'GetQueueAttributes failed');
        }
      }
      await sleep(this.queueUrl === null ? 250 : LAG_REFRESH_MS, signal);
    }
  }

  /** Credentials in SDK texts are scrubbed by the source manager (from health() and the logger). */
  private brokerFailed(message: string): void {
    if (this.brokerError !== message || this.state === 'running') {
      this.deps.logger.warn({ connector: this.deps.name, queue: this.where, error: message }, 'SQS not available; retrying');
    }
    this.brokerError = message;
    if (this.state === 'running') this.state = 'connecting';
  }

  private brokerOk(): void {
    if (this.state === 'connecting') {
      this.state = 'running';
      this.deps.logger.info({ connector: this.deps.name, queue: this.where }, 'consuming from SQS');
    }
    this.brokerError = null;
  }

  // ---- stop ----

  private async shutdown(timeoutMs: number): Promise<void> {
    if (!this.main) {
      this.closed = true;
      this.client.destroy();
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    // Ends the long polls, the backoff sleeps and the waits for in-flight room.
    this.abort.abort();
    await this.main;
    const pending = [...this.batches];
    if (pending.length > 0) {
      if (!(await within(Promise.allSettled(pending), timeoutMs))) {
        this.deps.logger.warn(
          { connector: this.deps.name, queue: this.where, inFlight: this.inFlight, timeoutMs },
          'stop: the sink did not finish in time; SQS will redeliver those messages after their visibility timeout',
        );
      }
    }
    this.closed = true;
    this.client.destroy();
    this.state = 'stopped';
  }
}

export const connector: ConnectorModule<SqsConfig> = {
  type: 'sqs',
  secretKeys: ['credentials.secret_access_key', 'credentials.session_token'],
  addresses: (c) => {
    if (c.queue_url !== null) {
      const u = new URL(c.queue_url);
      // AWS answers one queue under several hosts (sqs.<region>.amazonaws.com, the legacy
      // <region>.queue.amazonaws.com, VPC endpoints): the region and path name it.
      const region = regionOfQueueUrl(c.queue_url);
      const host = region !== null && u.hostname.endsWith('.amazonaws.com') ? `sqs.${region}.amazonaws.com` : u.host.toLowerCase();
      return [`sqs://${host}${u.pathname.replace(/\/+$/, '')}`];
    }
    const at = c.endpoint === null ? c.region : new URL(c.endpoint).host.toLowerCase();
    return [`sqs://${at}/${c.queue_name}`];
  },
  hosts: (c) => {
    if (c.endpoint !== null) return [{ host: new URL(c.endpoint).hostname, key: 'endpoint' }];
    if (c.queue_url !== null) return [{ host: new URL(c.queue_url).hostname, key: 'queue_url' }];
    return [{ host: `sqs.${c.region}.amazonaws.com`, key: 'region' }];
  },
  parse,
  async create(config, deps) {
    const sdk = await import('@aws-sdk/client-sqs');
    return new SqsConnector(config, deps, sdk);
  },
};
