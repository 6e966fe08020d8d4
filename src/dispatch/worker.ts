import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Job, PgBoss } from 'pg-boss';
import type { BreakerSettings, DeliveryStatus, EndpointSecret, EndpointContentType, EndpointStatus, RetrySettings, SignatureSettings, SubscriptionRetry } from '../core/types.ts';
import { acquireMany } from './rate-limit.ts';
import { DEFAULT_BREAKER, recordAttempts, type AttemptKind } from './breaker.ts';
import { transition, type EndpointChange } from './operations.ts';
import { recordAlerts, statusAlerts, type AlertInput } from './alerts.ts';
import { uuidv7 } from '../core/ids.ts';
import type { SecretBox } from '../store/crypto.ts';
import { liveSecretsOf, openCredentials, refKey } from '../store/endpoints.ts';
import { NO_CREDENTIALS, type EndpointCredentials } from '../delivery/credentials.ts';
import { sendWithCredentials, type OutboundDeps } from '../delivery/outbound.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { buildRequest } from '../delivery/request.ts';
import { failedBeforeSending, type SendResult } from '../delivery/sender.ts';
import { DELIVERY_HEARTBEAT_SECONDS, DELIVERY_QUEUE, enqueueDeliveries, executorOf, type DeliveryJob, type DeliveryJobInsert } from './queue.ts';
import { hasRetriesLeft, retryDelaySeconds } from './retry-schedule.ts';

export interface DispatcherDeps extends OutboundDeps {
  pool: pg.Pool;
  boss: PgBoss;
  box: SecretBox;
}

export interface DispatcherOptions {
  /** Jobs one fetch asks for, at most. */
  batchSize: number;
  /** Deliveries this process has in hand at once (fetched and not yet recorded). */
  maxInFlight: number;
  /**
   * Deliveries of one endpoint in flight at once, counted by pg-boss across every replica (job
   * groups): an endpoint that hangs holds at most this many of the dispatcher's slots.
   */
  endpointConcurrency: number;
  /** Deliveries of one project in flight at once in this process; the rest wait a moment as the same attempt. */
  projectConcurrency: number;
  pollingIntervalSeconds: number;
  /** LISTEN for pg-boss's NOTIFY of new jobs (off on the embedded database, which cannot deliver it). */
  listen: boolean;
}

/** What the dispatcher reports; main.ts turns these into logs and metrics. */
export type { EndpointChange };

export interface DispatcherEvents {
  endpoint: [EndpointChange];
  attempt: [{ deliveryId: string; endpointId: string; attempt: number; status: DeliveryStatus; statusCode: number | null; latencyMs: number; errorCode: string | null }];
  error: [Error];
}

export interface Dispatcher extends EventEmitter<DispatcherEvents> {
  start(): Promise<void>;
  /** Stops fetching and waits for the deliveries in hand to be sent and recorded. */
  stop(): Promise<void>;
  /** Deliveries in hand now (fetched, not yet recorded). */
  readonly inFlight: number;
}

interface WorkRow {
  id: string;
  project_id: string;
  endpoint_id: string;
  event_id: string;
  status: DeliveryStatus;
  attempts: number;
  event_type: string;
  data: string;
  custom_headers: Record<string, string>;
  url: string;
  http_timeout: number;
  advanced_signatures: boolean;
  content_type: EndpointContentType;
  rate_limit: number;
  rate_limit_duration: number;
  /** The endpoint's sealed credentials, or null when it has none. */
  credentials_enc: string | null;
  endpoint_status: EndpointStatus;
  settings: { signature: SignatureSettings; retry: RetrySettings; breaker?: BreakerSettings };
  /** The retry_config of the subscription that routed this delivery (null: the project's `retry`). */
  retry: SubscriptionRetry | null;
}

/** The subscription's retry settings over the project's, part by part. */
const retryOf = (row: WorkRow): RetrySettings => (row.retry === null ? row.settings.retry : { ...row.settings.retry, ...row.retry });

interface Outcome {
  row: WorkRow;
  attempt: number;
  status: DeliveryStatus;
  url: string;
  requestHeaders: Record<string, string>;
  result: SendResult | null;
  retryIn: number | null;
}

/** A fetched job that will be sent (or discarded) now. */
interface Live {
  row: WorkRow;
  attempt: number;
  jobId: string;
}

/** The longest `Retry-After` Wharf waits; a larger one is cut to this. */
export const MAX_RETRY_AFTER_SECONDS = 3_600;

/** How long a delivery held back by its project's share waits before it is fetched again. */
const PROJECT_SHARE_WAIT_SECONDS = 1;

/** Outcomes written in one transaction, at most. */
const MAX_RECORD_BATCH = 500;

const TERMINAL: ReadonlySet<DeliveryStatus> = new Set(['success', 'failure', 'discarded']);

/** Deliveries to paused or inactive endpoints are kept as discarded, never sent. */
const discarded = (row: WorkRow): boolean => row.endpoint_status === 'paused' || row.endpoint_status === 'inactive';

/** pg-boss's NOTIFY channel for its default schema (pg-boss derives it from the schema name the same way). */
const NOTIFY_CHANNEL = `pgboss_${createHash('sha224').update('pgboss').digest('hex').slice(0, 24)}`;

/**
 * The dispatcher fetches jobs itself rather than through `boss.work()`: a work handler holds its
 * worker until every job of its batch is done, so one endpoint that never answers would hold a
 * whole batch, and with it a share of the dispatcher, for its full timeout. Here every delivery is
 * sent and recorded on its own; the fetch loop only asks for as many jobs as there are free slots.
 * A job stays `active` in pg-boss until its outcome is committed, and its end (finishJobs) is written in
 * that same transaction, so a crash at any point leaves the job for pg-boss to hand out again
 * (and the attempts guard makes a replay of a recorded attempt do nothing).
 */
export function createDispatcher(deps: DispatcherDeps, options: DispatcherOptions): Dispatcher {
  const emitter = new EventEmitter<DispatcherEvents>() as Dispatcher;
  let running = false;
  let loop: Promise<void> | null = null;
  let listener: { close(): Promise<void> } | null = null;
  // The jobs in hand (fetched, not yet settled): they count against max_in_flight, and their
  // heartbeat is kept up so pg-boss hands them out again soon after this process dies.
  const inHandJobs = new Set<string>();
  const perProject = new Map<string, number>();
  const tasks = new Set<Promise<void>>();
  let sleeping: (() => void) | null = null;
  // A wake-up that came while a fetch was under way: the loop fetches again instead of sleeping.
  let woken = false;
  const wake = (): void => {
    const w = sleeping;
    sleeping = null;
    if (w) w();
    else woken = true;
  };

  const recorder = createRecorder(deps, emitter, (ids) => {
    for (const id of ids) inHandJobs.delete(id);
    // Slots came free: a fetch cut short by the cap (or by group limits) may find more now.
    wake();
  });

  const track = (p: Promise<void>): void => {
    tasks.add(p);
    void p.finally(() => tasks.delete(p));
  };

  const fetchLoop = async (): Promise<void> => {
    while (running) {
      const free = options.maxInFlight - inHandJobs.size;
      woken = false;
      let full = false;
      if (free > 0) {
        const wanted = Math.min(options.batchSize, free);
        try {
          const jobs = await deps.boss.fetch<DeliveryJob>(DELIVERY_QUEUE, { batchSize: wanted, groupConcurrency: options.endpointConcurrency });
          if (jobs.length > 0) {
            for (const j of jobs) inHandJobs.add(j.id);
            track(startBatch(jobs));
          }
          full = jobs.length === wanted;
        } catch (err) {
          if (running) emitter.emit('error', err as Error);
        }
      }
      if (!running) break;
      // A full batch means more is waiting: fetch again at once unless every slot is taken.
      if (full && inHandJobs.size < options.maxInFlight) continue;
      if (woken && inHandJobs.size < options.maxInFlight) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          sleeping = null;
          resolve();
        }, options.pollingIntervalSeconds * 1000);
        sleeping = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };

  /** Loads a fetched batch and starts its sends; resolves when the batch is handed on, not when it is sent. */
  const startBatch = async (jobs: Job<DeliveryJob>[]): Promise<void> => {
    let live: Live[];
    try {
      live = await loadLive(deps, jobs, recorder);
    } catch (err) {
      emitter.emit('error', err as Error);
      await failJobs(deps, jobs.map((j) => j.id));
      recorder.settled(jobs.map((j) => j.id));
      return;
    }
    // A project past its share waits a moment, as the same attempt, so one tenant's slow
    // endpoints cannot take every slot of the process.
    const go: Live[] = [];
    const held: Live[] = [];
    const taken = new Map<string, number>();
    for (const l of live) {
      const n = (perProject.get(l.row.project_id) ?? 0) + (taken.get(l.row.project_id) ?? 0);
      if (n >= options.projectConcurrency && !discarded(l.row)) held.push(l);
      else {
        go.push(l);
        taken.set(l.row.project_id, (taken.get(l.row.project_id) ?? 0) + 1);
      }
    }
    // The jobs still in this batch's hands: whatever fails hands exactly these back to pg-boss.
    let inHand: Live[] = [...held, ...go];
    try {
      if (held.length > 0) await defer(deps, held.map((l) => ({ live: l, delaySeconds: PROJECT_SHARE_WAIT_SECONDS + Math.random() / 2 })));
      recorder.settled(held.map((l) => l.jobId));
      inHand = go;
      const sendable = await withinRateLimits(deps, go);
      const sending = new Set(sendable.map((l) => l.jobId));
      recorder.settled(go.filter((l) => !sending.has(l.jobId)).map((l) => l.jobId));
      inHand = sendable;
      // Throws only before any send starts (its one query); from then on each delivery settles itself.
      await sendAll(sendable);
    } catch (err) {
      emitter.emit('error', err as Error);
      await failJobs(deps, inHand.map((l) => l.jobId));
      recorder.settled(inHand.map((l) => l.jobId));
    }
  };

  const sendAll = async (sendable: Live[]): Promise<void> => {
    if (sendable.length === 0) return;
    // Credentials come with the batch's own query; each endpoint's are unsealed once per batch.
    const credentialsOf = new Map<string, EndpointCredentials>();
    const credentials = (row: WorkRow): EndpointCredentials => {
      if (row.credentials_enc === null) return NO_CREDENTIALS;
      const key = refKey(row);
      let c = credentialsOf.get(key);
      if (!c) {
        c = openCredentials(deps.box, row.credentials_enc);
        credentialsOf.set(key, c);
      }
      return c;
    };
    // One query for the secrets of every endpoint the batch will actually send to.
    const secretsOf = await liveSecretsOf(deps.pool, deps.box, sendable.filter((l) => !discarded(l.row)).map((l) => l.row));
    for (const l of sendable) {
      const project = l.row.project_id;
      perProject.set(project, (perProject.get(project) ?? 0) + 1);
      // Each delivery is recorded as soon as it is done; nothing waits for the batch's slowest.
      track(
        sendOne(deps, l, secretsOf.get(refKey(l.row)) ?? [], credentials)
          .catch((err: unknown): Outcome => {
            // A send never throws by contract; if it did, the attempt counts as a failure.
            emitter.emit('error', err as Error);
            return failedOutcome(l, err as Error);
          })
          .then((o) => {
            const left = (perProject.get(project) ?? 1) - 1;
            if (left === 0) perProject.delete(project);
            else perProject.set(project, left);
            return recorder.record(o, l.jobId);
          }),
      );
    }
  };

  let heartbeat: NodeJS.Timeout | null = null;
  const beat = async (): Promise<void> => {
    if (inHandJobs.size === 0) return;
    await deps.boss.touch(DELIVERY_QUEUE, [...inHandJobs]).catch((err: unknown) => emitter.emit('error', err as Error));
  };

  emitter.start = async () => {
    if (running) return;
    running = true;
    // Half the queue's heartbeat: a live process's jobs never look stale, a dead one's soon do.
    heartbeat = setInterval(() => void beat(), (DELIVERY_HEARTBEAT_SECONDS * 1000) / 2);
    heartbeat.unref();
    if (options.listen) {
      const db = deps.boss.getDb();
      // A missed NOTIFY only costs a polling interval, so a listener that cannot start is not fatal.
      listener = (await db.listen?.(NOTIFY_CHANNEL, (queue) => queue === DELIVERY_QUEUE && wake(), wake).catch((err: unknown) => {
        emitter.emit('error', err as Error);
        return null;
      })) ?? null;
    }
    loop = fetchLoop();
  };

  emitter.stop = async () => {
    if (!running) return;
    running = false;
    wake();
    await loop;
    // Beats go on while the sends in hand finish; then there is nothing left to keep alive.
    await listener?.close().catch(() => undefined);
    listener = null;
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
    await recorder.drain();
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  };

  Object.defineProperty(emitter, 'inFlight', { get: () => inHandJobs.size });
  return emitter;
}

/** Loads the batch's deliveries in one query; jobs with nothing to do are completed by the recorder. */
async function loadLive(deps: DispatcherDeps, jobs: Job<DeliveryJob>[], recorder: Recorder): Promise<Live[]> {
  const { rows } = await deps.pool.query<WorkRow>(
    `SELECT d.id, d.project_id, d.endpoint_id, d.event_id, d.status, d.attempts, d.retry, e.event_type, e.data,
            e.custom_headers, ep.url, ep.http_timeout, ep.advanced_signatures, ep.content_type, ep.rate_limit, ep.rate_limit_duration,
            ep.credentials_enc, ep.status AS endpoint_status,
            p.settings
     FROM deliveries d
     JOIN events e ON e.id = d.event_id
     JOIN endpoints ep ON ep.project_id = d.project_id AND ep.id = d.endpoint_id
     JOIN projects p ON p.id = d.project_id
     WHERE d.id = ANY($1::uuid[])`,
    [jobs.map((j) => j.data.d)],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));

  // A job is live only while its delivery waits for exactly this attempt.
  const live: Live[] = [];
  const seen = new Set<string>();
  const stale: string[] = [];
  for (const job of jobs) {
    const row = byId.get(job.data.d);
    if (!row || TERMINAL.has(row.status) || row.attempts !== job.data.a - 1 || seen.has(row.id)) {
      stale.push(job.id);
      continue;
    }
    seen.add(row.id);
    live.push({ row, attempt: job.data.a, jobId: job.id });
  }
  for (const id of stale) void recorder.complete(id);
  return live;
}

async function sendOne(deps: DispatcherDeps, { row, attempt }: Live, secrets: EndpointSecret[], credentials: (row: WorkRow) => EndpointCredentials): Promise<Outcome> {
  if (discarded(row)) {
    return { row, attempt, status: 'discarded', url: row.url, requestHeaders: {}, result: null, retryIn: null };
  }
  const { headers, body } = buildRequest({
    eventId: row.event_id,
    deliveryId: row.id,
    eventType: row.event_type,
    data: row.data,
    customHeaders: row.custom_headers,
    signature: row.settings.signature,
    advanced: row.advanced_signatures,
    secrets,
    contentType: row.content_type,
  });
  const { result, recorded } = await sendWithCredentials(
    deps,
    { url: row.url, timeoutMs: row.http_timeout * 1000, cacheKey: refKey(row) },
    credentials(row),
    headers,
    body,
  );
  return outcomeOf({ row, attempt }, result, recorded);
}

function outcomeOf({ row, attempt }: Pick<Live, 'row' | 'attempt'>, result: SendResult, recorded: Record<string, string>): Outcome {
  let status: DeliveryStatus = 'success';
  let retryIn: number | null = null;
  if (!result.ok) {
    const retry = retryOf(row);
    if (hasRetriesLeft(retry, attempt)) {
      status = 'retry';
      retryIn = retryDelaySeconds(retry, attempt);
      // A receiver that says when to come back is believed, within reason.
      if ((result.statusCode === 429 || result.statusCode === 503) && result.retryAfterSeconds !== null) {
        retryIn = Math.max(retryIn, Math.min(result.retryAfterSeconds, MAX_RETRY_AFTER_SECONDS));
      }
    } else {
      status = 'failure';
    }
  }
  return { row, attempt, status, url: row.url, requestHeaders: recorded, result, retryIn };
}

function failedOutcome(l: Live, err: Error): Outcome {
  return outcomeOf(l, failedBeforeSending(`internal error before the request was sent: ${err.message}`, 'WHARF_ERR_INTERNAL'), {});
}

/**
 * Ends jobs whose work is recorded, in the caller's transaction. They are deleted rather than
 * completed: a completion rewrites the job row with a new entry in each of the job table's indexes,
 * and the row then stays for pg-boss's retention (a week) until its maintenance deletes it anyway.
 * Nothing reads a finished job; the delivery and its attempts are the record.
 */
async function finishJobs(deps: DispatcherDeps, db: Queryable, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await deps.boss.deleteJob(DELIVERY_QUEUE, jobIds, { db: executorOf(db) });
}

/** Hands jobs back to pg-boss's retry policy; if the database is down too, their expiry does it. */
async function failJobs(deps: DispatcherDeps, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await deps.boss.fail(DELIVERY_QUEUE, ids).catch(() => undefined);
}

interface Recorder {
  /** Queues an outcome; resolves once it is committed with its job's completion (or failed back to pg-boss). */
  record(outcome: Outcome, jobId: string): Promise<void>;
  /** Queues the completion of a job that had nothing to do. */
  complete(jobId: string): Promise<void>;
  /** Jobs that left the dispatcher's hands without the recorder (held back, rate limited, failed back). */
  settled(jobIds: string[]): void;
  /** Resolves when nothing is queued or being written. */
  drain(): Promise<void>;
}

/**
 * Group commit for outcomes: whatever finished while the previous transaction was being written
 * goes into the next one, so an idle dispatcher records each delivery at once and a busy one
 * writes many per transaction. One transaction at a time: the breaker locks endpoint rows, and two
 * writers taking them in different orders could deadlock.
 */
function createRecorder(deps: DispatcherDeps, emitter: Dispatcher, onSettled: (jobIds: string[]) => void): Recorder {
  let queue: { outcome: Outcome | null; jobId: string; done: () => void }[] = [];
  let writing: Promise<void> | null = null;

  const write = async (): Promise<void> => {
    while (queue.length > 0) {
      const group = queue.slice(0, MAX_RECORD_BATCH);
      queue = queue.slice(group.length);
      const outcomes = group.flatMap((g) => (g.outcome ? [g.outcome] : []));
      const jobIds = group.map((g) => g.jobId);
      try {
        const changes = await recordOutcomes(deps, outcomes, jobIds);
        for (const c of changes) emitter.emit('endpoint', c);
        for (const o of outcomes) {
          emitter.emit('attempt', {
            deliveryId: o.row.id,
            endpointId: o.row.endpoint_id,
            attempt: o.attempt,
            status: o.status,
            statusCode: o.result?.statusCode ?? null,
            latencyMs: o.result?.latencyMs ?? 0,
            errorCode: o.result?.errorCode ?? null,
          });
        }
      } catch (err) {
        emitter.emit('error', err as Error);
        await failJobs(deps, jobIds);
      }
      for (const g of group) g.done();
      onSettled(jobIds);
    }
    writing = null;
  };

  const push = (outcome: Outcome | null, jobId: string): Promise<void> =>
    new Promise<void>((done) => {
      queue.push({ outcome, jobId, done });
      writing ??= write();
    });

  return {
    record: (outcome, jobId) => push(outcome, jobId),
    complete: (jobId) => push(null, jobId),
    settled: (jobIds) => {
      if (jobIds.length > 0) onSettled(jobIds);
    },
    drain: async () => {
      while (writing) await writing;
    },
  };
}

/**
 * Puts live jobs back as the same attempt, runnable after their delay: the delivery shows when it
 * will go, a new job waits for it, and the fetched job is completed, all in one transaction.
 */
async function defer(deps: DispatcherDeps, items: { live: Live; delaySeconds: number }[]): Promise<void> {
  if (items.length === 0) return;
  await withTransaction(deps.pool, async (client) => {
    await client.query(
      `UPDATE deliveries d SET next_attempt_at = now() + u.delay * interval '1 second', updated_at = now()
       FROM unnest($1::uuid[], $2::float8[]) AS u(id, delay) WHERE d.id = u.id`,
      [items.map((i) => i.live.row.id), items.map((i) => i.delaySeconds)],
    );
    await enqueueDeliveries(
      deps.boss,
      client,
      items.map(({ live, delaySeconds }) => ({ delivery_id: live.row.id, attempt: live.attempt, delaySeconds, endpoint: refKey(live.row) })),
    );
    await finishJobs(deps, client, items.map((i) => i.live.jobId));
  });
}

/**
 * Holds back what an endpoint's rate limit does not allow now: those deliveries wait for the next
 * free slot as the same attempt (a job for later), so waiting never spends a retry. The limit is
 * counted in Postgres, so it holds across every worker and replica. Deliveries that will not be
 * sent (paused or inactive endpoints) do not count.
 */
async function withinRateLimits(deps: DispatcherDeps, live: Live[]): Promise<Live[]> {
  const limited = live.filter((l) => l.row.rate_limit > 0 && !discarded(l.row));
  if (limited.length === 0) return live;
  const wanted = new Map<string, { row: WorkRow; n: number }>();
  for (const l of limited) {
    const w = wanted.get(refKey(l.row)) ?? { row: l.row, n: 0 };
    w.n += 1;
    wanted.set(refKey(l.row), w);
  }
  const grants = await acquireMany(
    deps.pool,
    [...wanted.values()].map(({ row, n }) => ({
      project_id: row.project_id,
      endpoint_id: row.endpoint_id,
      limit: { limit: row.rate_limit, duration_seconds: row.rate_limit_duration },
      wanted: n,
    })),
  );
  const used = new Map<string, number>();
  const go: Live[] = [];
  const later: { live: Live; delaySeconds: number }[] = [];
  for (const l of live) {
    const g = l.row.rate_limit > 0 ? grants.get(refKey(l.row)) : undefined;
    const n = used.get(refKey(l.row)) ?? 0;
    if (!g || n < g.granted) {
      used.set(refKey(l.row), n + 1);
      go.push(l);
    } else {
      // A little spread, so the deliveries held back do not all come back at the same instant.
      later.push({ live: l, delaySeconds: (g.retryAfterMs + Math.random() * 100) / 1000 });
    }
  }
  await defer(deps, later);
  return go;
}

/**
 * What the attempts say about pending endpoints (ones tried again after they were disabled): a
 * success makes one active, a failure inactive again. The circuit breaker judges the others.
 */
function pendingTransitions(outcomes: Pick<Outcome, 'row' | 'result'>[]): EndpointChange[] {
  // Any success decides: the endpoint answers again. Only a pending endpoint all of whose
  // attempts here failed goes back to inactive.
  const seen = new Map<string, { row: WorkRow; ok: boolean; error: string | null }>();
  for (const o of outcomes) {
    if (!o.result || o.row.endpoint_status !== 'pending') continue;
    const key = refKey(o.row);
    const prev = seen.get(key);
    if (prev?.ok) continue;
    seen.set(key, { row: o.row, ok: o.result.ok, error: o.result.error });
  }
  return [...seen.values()].map(({ row, ok, error }) => {
    const base = { project_id: row.project_id, endpoint_id: row.endpoint_id, from: ['pending'] as EndpointStatus[] };
    return ok
      ? { ...base, to: 'active' as const, reason: 'a delivery to the pending endpoint succeeded' }
      : { ...base, to: 'inactive' as const, reason: `a delivery to the pending endpoint failed: ${error ?? 'no answer'}` };
  });
}

const attemptKind = (r: SendResult): AttemptKind => (r.statusCode === 410 ? 'gone' : r.ok ? 'success' : 'failure');

/**
 * Feeds the attempts to the circuit breaker and works out every endpoint state change, in the
 * batch's transaction (the breaker relies on it: the endpoint rows it locked are set inactive
 * before another batch can count them again). A pending endpoint's success comes first; breaker
 * trips decide the rest.
 */
async function endpointChanges(db: Queryable, sent: Outcome[]): Promise<{ changes: EndpointChange[]; failing: AlertInput[] }> {
  const settings = new Map(sent.map((o) => [o.row.project_id, { ...DEFAULT_BREAKER, ...o.row.settings.breaker }]));
  const failing: AlertInput[] = [];
  const trips = await recordAttempts(
    db,
    sent.map((o) => ({ project_id: o.row.project_id, endpoint_id: o.row.endpoint_id, kind: attemptKind(o.result!) })),
    (projectId) => settings.get(projectId)!,
    (streak) => {
      const last = sent.findLast((o) => o.row.project_id === streak.project_id && o.row.endpoint_id === streak.endpoint_id && !o.result!.ok);
      const r = last?.result;
      failing.push({
        project_id: streak.project_id,
        endpoint_id: streak.endpoint_id,
        event_type: 'endpoint.failing',
        details: { consecutive_failures: streak.consecutive_failures, last_status_code: r?.statusCode ?? null, last_error: r?.error ?? null },
      });
    },
  );
  // A pending endpoint's own answer decides first: a success makes it active (and resets the
  // breaker's counters), even when the failures it had before it was disabled are still in the
  // failure-rate window and the breaker would trip it again on them.
  const changes = new Map<string, EndpointChange>();
  for (const c of pendingTransitions(sent)) changes.set(refKey(c), c);
  for (const t of trips) {
    if (changes.get(refKey(t))?.to === 'active') continue;
    changes.set(refKey(t), { project_id: t.project_id, endpoint_id: t.endpoint_id, from: ['active', 'pending'], to: 'inactive', reason: t.reason });
  }
  return { changes: [...changes.values()], failing };
}

async function recordOutcomes(deps: DispatcherDeps, outcomes: Outcome[], jobIds: string[]): Promise<EndpointChange[]> {
  const sent = outcomes.filter((o) => o.result !== null);
  return withTransaction(deps.pool, async (client) => {
    // The jobs end with the outcomes they produced: a crash before this commit leaves them active
    // for pg-boss to hand out again, and one after it finds them done.
    await finishJobs(deps, client, jobIds);
    if (outcomes.length === 0) return [];
    if (sent.length > 0) {
      await client.query(
        `INSERT INTO delivery_attempts (id, delivery_id, project_id, endpoint_id, attempt, url, request_headers,
           status_code, latency_ms, response_headers, response_body, error, error_code)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::jsonb[],
           $8::int[], $9::int[], $10::jsonb[], $11::text[], $12::text[], $13::text[])`,
        [
          sent.map(() => uuidv7()),
          sent.map((o) => o.row.id),
          sent.map((o) => o.row.project_id),
          sent.map((o) => o.row.endpoint_id),
          sent.map((o) => o.attempt),
          sent.map((o) => o.url),
          sent.map((o) => JSON.stringify(o.requestHeaders)),
          sent.map((o) => o.result!.statusCode),
          sent.map((o) => o.result!.latencyMs),
          sent.map((o) => JSON.stringify(o.result!.responseHeaders)),
          // Postgres text cannot hold NUL; a binary answer is kept readable rather than rejected.
          sent.map((o) => o.result!.responseBody.replaceAll('\u0000', '\uFFFD')),
          sent.map((o) => o.result!.error),
          sent.map((o) => o.result!.errorCode),
        ],
      );
    }
    // The attempts guard makes a concurrent duplicate of this batch a no-op rather than a double count.
    const { rows: updated } = await client.query<{ id: string }>(
      `UPDATE deliveries d SET
         status = u.status,
         attempts = d.attempts + u.sent,
         last_status_code = COALESCE(u.status_code, CASE WHEN u.sent = 1 THEN NULL ELSE d.last_status_code END),
         last_error = CASE WHEN u.sent = 1 THEN u.error ELSE d.last_error END,
         next_attempt_at = CASE WHEN u.retry_in IS NULL THEN NULL
                                ELSE now() + u.retry_in * interval '1 second' END,
         updated_at = now()
       FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::float8[], $7::int[])
         AS u(id, status, sent, status_code, error, retry_in, attempts_before)
       WHERE d.id = u.id AND d.attempts = u.attempts_before
       RETURNING d.id`,
      [
        outcomes.map((o) => o.row.id),
        outcomes.map((o) => o.status),
        outcomes.map((o) => (o.result ? 1 : 0)),
        outcomes.map((o) => o.result?.statusCode ?? null),
        outcomes.map((o) => o.result?.error ?? null),
        outcomes.map((o) => o.retryIn),
        outcomes.map((o) => o.attempt - 1),
      ],
    );
    const applied = new Set(updated.map((r) => r.id));
    const next: DeliveryJobInsert[] = outcomes
      .filter((o) => o.retryIn !== null && applied.has(o.row.id))
      .map((o) => ({ delivery_id: o.row.id, attempt: o.attempt + 1, delaySeconds: o.retryIn!, endpoint: refKey(o.row) }));
    await enqueueDeliveries(deps.boss, client, next);
    const { changes, failing } = await endpointChanges(client, sent.filter((o) => applied.has(o.row.id)));
    // One round of alerts for the batch: its state changes and its failing streaks.
    const happened = await transition(client, changes);
    await recordAlerts(deps, client, [...statusAlerts(happened), ...failing]);
    return happened;
  });
}
