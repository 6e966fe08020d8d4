/**
 * Google Pub/Sub source connector (@google-cloud/pubsub). A streaming pull with client-side flow
 * control (`max_messages` leased at most) feeds a small batcher; each batch goes to the sink and
 * its messages are acked only after `accept` resolved for them, or all nacked (redelivered by
 * Pub/Sub) when it rejects. The SDK extends the leases of messages while they wait or sit in the
 * sink, and retries dropped streams itself; this module watches those retries for `health`, and
 * closes and reopens the subscription, with backoff, when the SDK gives up on it.
 */
import type * as PubSubModule from '@google-cloud/pubsub';
import type { DebugMessage, Message, PubSub, Subscription } from '@google-cloud/pubsub';
import { backoffMs, sleep, within } from '../src/core/backoff.ts';
import type {
  BrokerMessage,
  Connector,
  ConnectorDeps,
  ConnectorHealth,
  ConnectorModule,
  ConnectorState,
  Sink,
} from '../src/core/connector.ts';
import type { Reader } from '../src/core/settings.ts';
import { absent, got } from '../src/core/settings.ts';

/** The `pubsub:` block of a source, as `parse` returns it (itself a valid block: parsing it again gives it back). */
export interface PubSubConfig {
  project_id: string;
  /** A subscription id of `project_id`, or a full `projects/<p>/subscriptions/<s>` name. */
  subscription: string;
  /** Service-account key (the JSON file's fields); null with an emulator or `use_default_credentials`. */
  credentials: Record<string, unknown> | null;
  /** Application Default Credentials: Wharf's own Google identity, which only the config file may lend. */
  use_default_credentials: boolean;
  /** `host[:port]` of the Pub/Sub API instead of pubsub.googleapis.com, over TLS. */
  api_endpoint: string | null;
  /** `host:port` of an emulator (plaintext, no credentials); PUBSUB_EMULATOR_HOST does the same process-wide. */
  emulator_host: string | null;
  /** Most messages leased and not yet acked (SDK flow control). */
  max_messages: number;
  /** Streaming pull streams, and batches in the sink at once. */
  workers: number;
  /** Most messages handed to the sink in one `accept` (never more than max_messages). */
  batch_size: number;
  /** How long a batch waits for more messages before it goes to the sink. */
  batch_wait_ms: number;
  /** Seconds each lease lasts before the SDK extends it (and how long a lost message stays invisible). */
  ack_deadline: number;
}

const KEYS = [
  'project_id',
  'subscription',
  'credentials',
  'use_default_credentials',
  'api_endpoint',
  'emulator_host',
  'max_messages',
  'workers',
  'batch_size',
  'batch_wait_ms',
  'ack_deadline',
] as const;

// Project ids are lower-case names; domain-scoped ones look like `example.com:name`. Kept loose
// (emulators take anything) but without '/' or spaces, which would break the resource names.
const PROJECT = /^[A-Za-z0-9][A-Za-z0-9.:_-]{0,99}$/;
// Pub/Sub's own rule for subscription ids.
const SUBSCRIPTION_ID = /^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/;
const SUBSCRIPTION_NAME = /^projects\/([^/]+)\/subscriptions\/([^/]+)$/;
const HOST_PORT = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?(:\d{1,5})?$/;

const DEFAULTS = {
  max_messages: 100,
  workers: 1,
  batch_size: 100,
  batch_wait_ms: 20,
  ack_deadline: 60,
};

/**
 * How long after its receipt a message may be nacked. The SDK leases every message it receives
 * with a modAck to the ack deadline, batched for up to 100 ms, and sends the modAcks of one batch
 * as concurrent calls, one per deadline, the 0 s of a nack first: a nack in the same batch as the
 * lease is overtaken by it, and the message stays invisible for the whole ack deadline.
 */
const NACK_SETTLE_MS = 250;

/** How long closing a subscription waits before it nacks what the SDK still holds (> NACK_SETTLE_MS). */
const CLOSE_SETTLE_MS = 400;

/** gRPC status codes the connector tells apart. */
const GRPC = { OK: 0, CANCELLED: 1, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, PERMISSION_DENIED: 7 } as const;

function parse(r: Reader, value: unknown, at: string): PubSubConfig {
  const out: PubSubConfig = {
    project_id: '',
    subscription: '',
    credentials: null,
    use_default_credentials: false,
    api_endpoint: null,
    emulator_host: null,
    ...DEFAULTS,
  };
  const b = r.fields(value, at, KEYS);
  if (b === null) return out;

  if (absent(b.project_id)) r.bad(`${at}.project_id`, 'is required: the Google Cloud project of the subscription');
  else {
    const project = r.text(b.project_id, `${at}.project_id`, '', { max: 100 });
    if (project !== '' && !PROJECT.test(project)) {
      r.bad(`${at}.project_id`, `must be a Google Cloud project id (letters, digits, "-", ".", ":")${got(project)}`);
    } else out.project_id = project;
  }

  if (absent(b.subscription)) r.bad(`${at}.subscription`, 'is required: a subscription id, or projects/<project>/subscriptions/<id>');
  else {
    const sub = r.text(b.subscription, `${at}.subscription`, '', { max: 400 });
    if (sub !== '') {
      const full = SUBSCRIPTION_NAME.exec(sub);
      const id = full ? full[2] : sub;
      if (full && !PROJECT.test(full[1])) r.bad(`${at}.subscription`, `has an invalid project in projects/<project>/subscriptions/<id>${got(sub)}`);
      else if (!SUBSCRIPTION_ID.test(id)) {
        r.bad(
          `${at}.subscription`,
          'must be a subscription id (3-255 letters, digits and "-._~+%", starting with a letter) ' +
            `or projects/<project>/subscriptions/<id>${got(sub)}`,
        );
      } else out.subscription = sub;
    }
  }

  out.credentials = credentials(r, b.credentials, `${at}.credentials`);
  out.api_endpoint = hostPort(r, b.api_endpoint, `${at}.api_endpoint`, false);
  out.emulator_host = hostPort(r, b.emulator_host, `${at}.emulator_host`, true);
  if (out.api_endpoint !== null && out.emulator_host !== null) {
    r.bad(`${at}.emulator_host`, 'cannot be combined with api_endpoint: an emulator is reached without TLS, an API endpoint with it');
  }
  out.use_default_credentials = r.boolean(b.use_default_credentials, `${at}.use_default_credentials`, false);
  if (out.credentials === null && out.emulator_host === null && !out.use_default_credentials && (absent(b.credentials) || b.credentials === '')) {
    r.bad(
      `${at}.credentials`,
      "is required: the source's own service-account key (in the config file, use_default_credentials: true lends it Wharf's Application Default Credentials instead)",
    );
  }
  if (out.credentials !== null && out.use_default_credentials) r.bad(`${at}.use_default_credentials`, 'cannot be given with credentials: give one of them');

  out.max_messages = r.integer(b.max_messages, `${at}.max_messages`, 1, 100_000, DEFAULTS.max_messages);
  out.workers = r.integer(b.workers, `${at}.workers`, 1, 32, DEFAULTS.workers);
  out.batch_size = r.integer(b.batch_size, `${at}.batch_size`, 1, 1000, DEFAULTS.batch_size);
  out.batch_wait_ms = r.integer(b.batch_wait_ms, `${at}.batch_wait_ms`, 0, 10_000, DEFAULTS.batch_wait_ms);
  // Pub/Sub's own bounds for an ack deadline.
  out.ack_deadline = r.integer(b.ack_deadline, `${at}.ack_deadline`, 10, 600, DEFAULTS.ack_deadline);
  return out;
}

/** A service-account key as JSON text or as a mapping; its values are never quoted back. */
function credentials(r: Reader, value: unknown, path: string): Record<string, unknown> | null {
  if (absent(value) || value === '') return null;
  let key: unknown = value;
  if (typeof value === 'string') {
    try {
      key = JSON.parse(value);
    } catch {
      r.bad(path, 'must be a service-account key: its JSON text or a mapping (the text is not valid JSON)');
      return null;
    }
  }
  if (typeof key !== 'object' || key === null || Array.isArray(key)) {
    r.bad(path, 'must be a service-account key: its JSON text or a mapping');
    return null;
  }
  const k = key as Record<string, unknown>;
  if (!absent(k.type) && k.type !== 'service_account') {
    r.bad(`${path}.type`, `must be service_account${got(k.type)}`);
    return null;
  }
  const missing = ['client_email', 'private_key'].filter((f) => typeof k[f] !== 'string' || k[f] === '');
  if (missing.length > 0) {
    r.bad(path, `must be a service-account key with client_email and private_key (missing ${missing.join(', ')})`);
    return null;
  }
  return k;
}

function hostPort(r: Reader, value: unknown, path: string, portRequired: boolean): string | null {
  const text = r.optional(value, path, 300);
  if (text === null) return null;
  const m = HOST_PORT.exec(text);
  const port = m?.[2] ? Number(m[2].slice(1)) : null;
  if (!m || (portRequired && port === null) || (port !== null && (port < 1 || port > 65535))) {
    r.bad(path, `must be ${portRequired ? 'host:port' : 'host or host:port'} (no scheme)${got(text)}`);
    return null;
  }
  return text;
}

/** The host of `host[:port]`. */
function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  return i > 0 && !hostPort.endsWith(']') ? hostPort.slice(0, i) : hostPort;
}

/** One message waiting for its batch, with when it joined the buffer. */
interface Held {
  message: Message;
  since: number;
}

type PubSubSdk = typeof PubSubModule;

async function create(config: PubSubConfig, deps: ConnectorDeps): Promise<Connector> {
  // Left without credentials, the SDK would sign with Wharf's Application Default Credentials
  // (environment, gcloud, the metadata server): only the operator's opt-in may lead there.
  if (config.credentials === null && config.emulator_host === null && config.use_default_credentials !== true) {
    throw new Error(
      'pubsub.credentials: this source has no service-account key of its own and may not use the default Google credentials (use_default_credentials is the config file\'s to give)',
    );
  }
  const sdk = await import('@google-cloud/pubsub');
  return new PubSubConnector(sdk, config, deps);
}

/** Everything of one running source: the client, the current subscription, the batcher. */
class PubSubConnector implements Connector {
  readonly #sdk: PubSubSdk;
  readonly #config: PubSubConfig;
  readonly #deps: ConnectorDeps;
  readonly #batchSize: number;

  #state: ConnectorState = 'stopped';
  #sink: Sink | null = null;
  #client: PubSub | null = null;
  #subscription: Subscription | null = null;
  /** Bumped whenever a subscription is opened; events of older ones are ignored. */
  #generation = 0;
  #reopening = false;
  #openedAt = 0;
  #failedOpens = 0;
  #probing = false;
  #connectionError: string | null = null;
  #sinkError: string | null = null;

  /** Every message received and not yet acked or nacked. */
  readonly #inFlight = new Set<Message>();
  /** Nacks waiting for NACK_SETTLE_MS. */
  readonly #nacking = new Set<Promise<void>>();
  #buffer: Held[] = [];
  #timer: NodeJS.Timeout | null = null;
  #active = new Set<Promise<void>>();
  /** Consecutive `accept` failures; no batch starts before `#pausedUntil`. */
  #failures = 0;
  #pausedUntil = 0;

  #stopping = false;
  #stopped: Promise<void> | null = null;
  readonly #abort = new AbortController();

  constructor(sdk: PubSubSdk, config: PubSubConfig, deps: ConnectorDeps) {
    this.#sdk = sdk;
    this.#config = config;
    this.#deps = deps;
    this.#batchSize = Math.min(config.batch_size, config.max_messages);
  }

  async start(sink: Sink): Promise<void> {
    if (this.#sink !== null || this.#stopping) return;
    this.#sink = sink;
    this.#state = 'connecting';
    this.#client = new this.#sdk.PubSub(this.#clientOptions());
    void this.#connect(0);
  }

  health(): ConnectorHealth {
    return {
      state: this.#state,
      inFlight: this.#inFlight.size,
      // Pub/Sub reports a subscription's backlog only through Cloud Monitoring.
      lag: null,
      lastError: this.#connectionError ?? this.#sinkError,
    };
  }

  stop(options: { timeoutMs: number }): Promise<void> {
    this.#stopped ??= this.#stop(options.timeoutMs);
    return this.#stopped;
  }

  #clientOptions(): ConstructorParameters<PubSubSdk['PubSub']>[0] {
    const c = this.#config;
    const options: NonNullable<ConstructorParameters<PubSubSdk['PubSub']>[0]> = { projectId: c.project_id };
    // The SDK guesses emulator mode (plaintext) for any host outside googleapis.com; say it instead.
    if (c.emulator_host !== null) {
      // The universe domain, given, keeps the auth library from looking for a GCE metadata server
      // (and warning) on behalf of a client that never authenticates.
      Object.assign(options, { apiEndpoint: c.emulator_host, emulatorMode: true, universeDomain: 'googleapis.com' });
    } else if (c.api_endpoint !== null) Object.assign(options, { apiEndpoint: c.api_endpoint, emulatorMode: false });
    if (c.credentials !== null) options.credentials = c.credentials as NonNullable<typeof options.credentials>;
    return options;
  }

  /** The host the client talks to: the emulator, the API endpoint given, or Google's. */
  get #host(): string {
    const c = this.#config;
    return hostOf(c.emulator_host ?? c.api_endpoint ?? 'pubsub.googleapis.com');
  }

  get #name(): string {
    const s = this.#config.subscription;
    return s.startsWith('projects/') ? s : `projects/${this.#config.project_id}/subscriptions/${s}`;
  }

  /** Probes until the subscription answers, then opens the streaming pull. */
  async #connect(attempt: number): Promise<void> {
    for (let n = attempt; !this.#stopping; n++) {
      if (n > 0) await sleep(backoffMs(n - 1), this.#abort.signal);
      if (this.#stopping) return;
      // gRPC resolves names itself, out of reach of a lookup: the host is judged before each attempt.
      const egress = await this.#deps.egress.check(this.#host).then(
        () => null,
        (err: unknown) => (err as Error).message,
      );
      const problem = egress ?? (await this.#probe());
      if (this.#stopping) return;
      let failed = problem;
      if (failed === null) {
        try {
          this.#open();
          return;
        } catch (err) {
          failed = this.#problem(err);
        }
      }
      this.#connectionError = failed;
      this.#deps.logger.warn({ subscription: this.#name, attempt: n, err: failed }, 'pubsub subscription not reachable; retrying');
    }
  }

  /**
   * One GetSubscription call, without the SDK's own retries: null when Pub/Sub answers for the
   * subscription, else why not. A key allowed to consume but not to read the subscription's
   * metadata (roles/pubsub.subscriber) gets PERMISSION_DENIED here; that still proves the service
   * answers, and the streaming pull reports what it really may do.
   */
  async #probe(): Promise<string | null> {
    const client = this.#client;
    if (client === null) return 'the Pub/Sub client is closed';
    try {
      await client.subscription(this.#name).getMetadata({ timeout: 10_000, retry: null });
      return null;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === GRPC.PERMISSION_DENIED) return null;
      return this.#problem(err);
    }
  }

  #open(): void {
    const client = this.#client!;
    const c = this.#config;
    const { Duration } = this.#sdk;
    const generation = ++this.#generation;
    const deadline = Duration.from({ seconds: c.ack_deadline });
    const subscription = client.subscription(this.#name, {
      flowControl: { maxMessages: c.max_messages, allowExcessMessages: false },
      streamingOptions: { maxStreams: c.workers, retryMaxBackoff: Duration.from({ seconds: 30 }) },
      // A fixed lease length instead of the SDK's guess from past processing times.
      minAckDeadline: deadline,
      maxAckDeadline: deadline,
      // Closing stops the stream at once, then nacks what the SDK still holds (messages never
      // handed to us, held back by flow control). Nacked at once, those received in the last
      // 100 ms would race their first lease (see NACK_SETTLE_MS); 'WAIT' first gives the SDK
      // CLOSE_SETTLE_MS for acks and nacks in progress to drain it, then nacks the rest, and has
      // the SDK's final second to flush them.
      closeOptions: { behavior: 'WAIT', timeout: Duration.from({ milliseconds: 1000 + CLOSE_SETTLE_MS }) },
    });
    this.#subscription = subscription;
    subscription.on('message', (m: Message) => this.#onMessage(m, generation));
    subscription.on('error', (err: Error) => this.#onError(err, generation));
    subscription.on('debug', (msg: DebugMessage) => this.#onDebug(msg, generation));
    subscription.on('close', () => {
      if (generation === this.#generation && !this.#stopping) this.#onError(new Error('the streaming pull closed'), generation);
    });
    this.#openedAt = Date.now();
    this.#state = 'running';
    this.#connectionError = null;
    this.#deps.logger.info({ subscription: this.#name, streams: c.workers, maxMessages: c.max_messages }, 'pubsub consuming');
  }

  #onMessage(message: Message, generation: number): void {
    if (this.#stopping) {
      // Pulled after stop began: held (leased) and nacked once the stream is closed (see #stop).
      this.#inFlight.add(message);
      return;
    }
    if (generation !== this.#generation) {
      // From a subscription being replaced: let Pub/Sub redeliver it.
      this.#inFlight.add(message);
      this.#nack([message]);
      return;
    }
    if (this.#state === 'connecting') {
      // A message is the proof that the stream is back.
      this.#state = 'running';
      this.#connectionError = null;
    }
    this.#failedOpens = 0;
    this.#inFlight.add(message);
    this.#buffer.push({ message, since: Date.now() });
    this.#pump();
  }

  /** The SDK gave up on the subscription (and closes it): reopen it after a backoff. */
  #onError(err: Error, generation: number): void {
    if (generation !== this.#generation || this.#stopping || this.#reopening) return;
    this.#reopening = true;
    this.#state = 'connecting';
    this.#connectionError = this.#problem(err);
    this.#deps.logger.warn({ subscription: this.#name, err: this.#connectionError }, 'pubsub streaming pull failed; reopening');
    void this.#reopen();
  }

  async #reopen(): Promise<void> {
    // A subscription that failed soon after opening counts as one more failed attempt, so a
    // stream refused at once (say, no permission to consume) is retried ever more slowly.
    this.#failedOpens = Date.now() - this.#openedAt < 60_000 ? this.#failedOpens + 1 : 1;
    try {
      await this.#closeSubscription();
      // Closing nacked what waited for a batch: it comes again, from the next subscription.
      for (const h of this.#buffer.splice(0)) this.#inFlight.delete(h.message);
      await this.#connect(this.#failedOpens);
    } finally {
      this.#reopening = false;
    }
  }

  /**
   * The SDK reports a stream it ended and retries as a debug message. Anything but the normal end
   * of a stream means Pub/Sub is not reachable for now: report it until a probe (or a message)
   * shows it answers again.
   */
  #onDebug(msg: DebugMessage, generation: number): void {
    const code = (msg.error as { code?: unknown } | undefined)?.code;
    if (generation !== this.#generation || this.#stopping || typeof code !== 'number') return;
    if (code === GRPC.OK || code === GRPC.CANCELLED || code === GRPC.DEADLINE_EXCEEDED) return;
    this.#deps.logger.debug({ subscription: this.#name, code, err: this.#describe(msg.error) }, 'pubsub stream ended; the SDK retries it');
    if (this.#state !== 'running') return;
    this.#state = 'connecting';
    this.#connectionError = this.#problem(msg.error);
    void this.#watchRecovery(generation);
  }

  async #watchRecovery(generation: number): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      for (let n = 0; this.#state === 'connecting' && generation === this.#generation && !this.#stopping && !this.#reopening; n++) {
        if (n > 0) await sleep(backoffMs(n - 1), this.#abort.signal);
        if (this.#state !== 'connecting' || generation !== this.#generation || this.#stopping || this.#reopening) return;
        const problem = await this.#probe();
        if (this.#state !== 'connecting' || generation !== this.#generation || this.#stopping || this.#reopening) return;
        if (problem === null) {
          this.#state = 'running';
          this.#connectionError = null;
        } else this.#connectionError = problem;
      }
    } finally {
      this.#probing = false;
    }
  }

  /** Starts every batch that is due while a worker is free and the sink is not being waited out. */
  #pump(): void {
    if (this.#stopping || this.#sink === null || this.#reopening) return;
    while (this.#buffer.length > 0 && this.#active.size < this.#config.workers) {
      const now = Date.now();
      const waitFor = Math.max(
        this.#pausedUntil - now,
        this.#buffer.length >= this.#batchSize ? 0 : this.#buffer[0].since + this.#config.batch_wait_ms - now,
      );
      if (waitFor > 0) {
        this.#arm(waitFor);
        return;
      }
      this.#run(this.#buffer.splice(0, this.#batchSize).map((h) => h.message));
    }
  }

  #arm(ms: number): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#pump();
    }, ms);
  }

  #run(batch: Message[]): void {
    const done = this.#deliver(batch).finally(() => {
      this.#active.delete(done);
      this.#pump();
    });
    this.#active.add(done);
  }

  /** Hands one batch to the sink; acks it once stored, or nacks it and pauses when the sink fails. */
  async #deliver(batch: Message[]): Promise<void> {
    try {
      const results = await this.#sink!.accept(batch.map(toBrokerMessage));
      if (results.length !== batch.length) {
        this.#deps.logger.warn({ subscription: this.#name, messages: batch.length, results: results.length }, 'pubsub sink answered for a different number of messages');
      }
    } catch (err) {
      this.#failures++;
      const wait = backoffMs(this.#failures - 1);
      this.#pausedUntil = Date.now() + wait;
      this.#sinkError = `storing a batch of ${batch.length} failed: ${this.#describe(err)}`;
      this.#deps.logger.warn({ subscription: this.#name, messages: batch.length, retryInMs: wait, err: this.#sinkError }, 'pubsub batch not stored; nacked for redelivery');
      this.#nack(batch);
      return;
    }
    this.#failures = 0;
    this.#sinkError = null;
    // Every result status is acked: rejected messages were dead-lettered by the sink.
    for (const m of batch) {
      m.ack();
      this.#inFlight.delete(m);
    }
  }

  /** Gives messages back to Pub/Sub for redelivery, once their first lease went out (NACK_SETTLE_MS). */
  #nack(messages: Message[]): void {
    const due = messages.reduce((most, m) => Math.max(most, m.received + NACK_SETTLE_MS), 0) - Date.now();
    const nack = (): void => {
      for (const m of messages) {
        m.nack();
        this.#inFlight.delete(m);
      }
    };
    if (due <= 0) return nack();
    const later: Promise<void> = sleep(due).then(() => {
      nack();
      this.#nacking.delete(later);
    });
    this.#nacking.add(later);
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    this.#state = 'stopping';
    this.#abort.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // Nothing new goes to the sink. What waits for a batch, or arrives now, is held, not nacked,
    // while the stream stays open: Pub/Sub would hand a nacked message straight back to this
    // stream (each time a delivery more, counted by a dead-letter policy), and one in transit
    // when the stream closes stays leased to nobody for the whole ack deadline.
    this.#buffer = [];
    if (this.#active.size > 0) {
      if (!(await within(Promise.allSettled([...this.#active]), timeoutMs))) {
        this.#deps.logger.warn({ subscription: this.#name, timeoutMs }, 'pubsub stop: batches still in the sink are left for redelivery');
      }
    }
    // Closing destroys the stream at once, in its synchronous start; only then is everything
    // still held nacked (batches still in the sink too: a late ack would go to a closed client),
    // while the SDK waits CLOSE_SETTLE_MS for those nacks before it nacks what is left itself.
    const closed = this.#closeSubscription();
    this.#nack([...this.#inFlight]);
    await Promise.all([...this.#nacking]);
    await closed;
    this.#inFlight.clear();
    await this.#client?.close().catch((err: unknown) => {
      this.#deps.logger.warn({ subscription: this.#name, err: this.#describe(err) }, 'pubsub client did not close cleanly');
    });
    this.#client = null;
    this.#state = 'stopped';
    this.#deps.logger.info({ subscription: this.#name }, 'pubsub stopped');
  }

  /** Closes the current subscription: the SDK flushes pending acks and nacks what is left. */
  async #closeSubscription(): Promise<void> {
    const subscription = this.#subscription;
    if (subscription === null) return;
    this.#subscription = null;
    // Listeners stay until it closed: removing the last 'message' one would make the SDK start a
    // close of its own, and the awaited one below would then return before acks are flushed.
    try {
      await subscription.close();
    } catch (err) {
      this.#deps.logger.warn({ subscription: this.#name, err: this.#describe(err) }, 'pubsub subscription did not close cleanly');
    }
    for (const event of ['message', 'debug', 'close', 'error']) subscription.removeAllListeners(event);
    // An 'error' without a listener would throw; a closed subscription may still emit one.
    subscription.on('error', () => undefined);
  }

  /** A connection or consume error for `health().lastError`, naming the subscription. */
  #problem(err: unknown): string {
    if ((err as { code?: unknown } | null)?.code === GRPC.NOT_FOUND) return `pubsub subscription ${this.#name} does not exist`;
    return `pubsub subscription ${this.#name}: ${this.#describe(err)}`;
  }

  /**
   * An error as text for logs and health, at most 500 characters. The source manager scrubs the
   * key from it (a private key cut short here still goes: any PEM private key does).
   */
  #describe(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return text.length > 500 ? `${text.slice(0, 497)}...` : text;
  }
}

function toBrokerMessage(m: Message): BrokerMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(m.attributes ?? {})) headers[name.toLowerCase()] = String(value);
  return {
    id: m.id,
    body: m.data,
    headers,
    key: m.orderingKey ? m.orderingKey : null,
    receivedAt: new Date(m.received),
  };
}

export const connector: ConnectorModule<PubSubConfig> = {
  type: 'pubsub',
  secretKeys: ['credentials'],
  addresses: (c) => {
    const full = c.subscription.startsWith('projects/') ? c.subscription : `projects/${c.project_id}/subscriptions/${c.subscription}`;
    return [`pubsub://${(c.emulator_host ?? c.api_endpoint ?? 'pubsub.googleapis.com').toLowerCase()}/${full}`];
  },
  hosts: (c) => [{ host: hostOf(c.emulator_host ?? c.api_endpoint ?? 'pubsub.googleapis.com'), key: c.emulator_host !== null ? 'emulator_host' : 'api_endpoint' }],
  parse,
  create,
};
