import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Job, PgBoss } from 'pg-boss';
import type { BreakerSettings, DeliveryStatus, EndpointContentType, EndpointStatus, RetrySettings, SignatureSettings } from '../core/types.ts';
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
import type { SendResult } from '../delivery/sender.ts';
import { DELIVERY_QUEUE, enqueueDeliveries, type DeliveryJob, type DeliveryJobInsert } from './queue.ts';
import { hasRetriesLeft, retryDelaySeconds } from './retry-schedule.ts';

export interface DispatcherDeps extends OutboundDeps {
  pool: pg.Pool;
  boss: PgBoss;
  box: SecretBox;
}

export interface DispatcherOptions {
  batchSize: number;
  concurrency: number;
  pollingIntervalSeconds: number;
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
  /** Stops fetching and waits for the batches in hand to be sent and recorded. */
  stop(): Promise<void>;
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
}

interface Outcome {
  row: WorkRow;
  attempt: number;
  status: DeliveryStatus;
  url: string;
  requestHeaders: Record<string, string>;
  result: SendResult | null;
  retryIn: number | null;
}

/** The longest `Retry-After` Wharf waits; a larger one is cut to this. */
export const MAX_RETRY_AFTER_SECONDS = 3_600;

const TERMINAL: ReadonlySet<DeliveryStatus> = new Set(['success', 'failure', 'discarded']);

/** Deliveries to paused or inactive endpoints are kept as discarded, never sent. */
const discarded = (row: WorkRow): boolean => row.endpoint_status === 'paused' || row.endpoint_status === 'inactive';

export function createDispatcher(deps: DispatcherDeps, options: DispatcherOptions): Dispatcher {
  const emitter = new EventEmitter<DispatcherEvents>() as Dispatcher;
  let workerId: string | null = null;

  emitter.start = async () => {
    if (workerId) return;
    workerId = await deps.boss.work<DeliveryJob>(
      DELIVERY_QUEUE,
      {
        batchSize: options.batchSize,
        localConcurrency: options.concurrency,
        pollingIntervalSeconds: options.pollingIntervalSeconds,
        // NOTIFY only announces jobs runnable now; retries scheduled for later are found by
        // polling, so the poll stays as frequent with notify on as without it.
        notifyPollingIntervalSeconds: options.pollingIntervalSeconds,
        // Without this each worker sleeps a polling interval after every batch, capping
        // throughput far below what Postgres and the network allow (DESIGN.md §8).
        burstWhenBatchFull: true,
      },
      async (jobs) => {
        try {
          await processBatch(deps, jobs, emitter);
        } catch (err) {
          emitter.emit('error', err as Error);
          throw err;
        }
      },
    );
  };

  emitter.stop = async () => {
    if (!workerId) return;
    const id = workerId;
    workerId = null;
    await deps.boss.offWork(DELIVERY_QUEUE, { id, wait: true });
  };

  return emitter;
}

async function processBatch(deps: DispatcherDeps, jobs: Job<DeliveryJob>[], emitter: Dispatcher): Promise<void> {
  const { rows } = await deps.pool.query<WorkRow>(
    `SELECT d.id, d.project_id, d.endpoint_id, d.event_id, d.status, d.attempts, e.event_type, e.data,
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
  const live: { row: WorkRow; attempt: number }[] = [];
  const seen = new Set<string>();
  for (const job of jobs) {
    const row = byId.get(job.data.d);
    if (!row || TERMINAL.has(row.status) || row.attempts !== job.data.a - 1 || seen.has(row.id)) continue;
    seen.add(row.id);
    live.push({ row, attempt: job.data.a });
  }
  if (live.length === 0) return;
  const sendable = await withinRateLimits(deps, live);
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

  const outcomes = await Promise.all(
    sendable.map(async ({ row, attempt }): Promise<Outcome> => {
      if (discarded(row)) {
        return { row, attempt, status: 'discarded', url: row.url, requestHeaders: {}, result: null, retryIn: null };
      }
      const secrets = secretsOf.get(refKey(row)) ?? [];
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
      let status: DeliveryStatus = 'success';
      let retryIn: number | null = null;
      if (!result.ok) {
        if (hasRetriesLeft(row.settings.retry, attempt)) {
          status = 'retry';
          retryIn = retryDelaySeconds(row.settings.retry, attempt);
          // A receiver that says when to come back is believed, within reason.
          if ((result.statusCode === 429 || result.statusCode === 503) && result.retryAfterSeconds !== null) {
            retryIn = Math.max(retryIn, Math.min(result.retryAfterSeconds, MAX_RETRY_AFTER_SECONDS));
          }
        } else {
          status = 'failure';
        }
      }
      return { row, attempt, status, url: row.url, requestHeaders: recorded, result, retryIn };
    }),
  );

  const changes = await recordOutcomes(deps, outcomes);
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
}

/**
 * Holds back what an endpoint's rate limit does not allow now: those deliveries wait for the next
 * free slot as the same attempt (a job for later), so waiting never spends a retry. The limit is
 * counted in Postgres, so it holds across every worker and replica. Deliveries that will not be
 * sent (paused or inactive endpoints) do not count.
 */
async function withinRateLimits(deps: DispatcherDeps, live: { row: WorkRow; attempt: number }[]): Promise<{ row: WorkRow; attempt: number }[]> {
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
  const go: { row: WorkRow; attempt: number }[] = [];
  const later: DeliveryJobInsert[] = [];
  for (const l of live) {
    const g = l.row.rate_limit > 0 ? grants.get(refKey(l.row)) : undefined;
    const n = used.get(refKey(l.row)) ?? 0;
    if (!g || n < g.granted) {
      used.set(refKey(l.row), n + 1);
      go.push(l);
    } else {
      // A little spread, so the deliveries held back do not all come back at the same instant.
      later.push({ delivery_id: l.row.id, attempt: l.attempt, delaySeconds: (g.retryAfterMs + Math.random() * 100) / 1000 });
    }
  }
  if (later.length > 0) {
    await withTransaction(deps.pool, async (client) => {
      await client.query(
        `UPDATE deliveries d SET next_attempt_at = now() + u.delay * interval '1 second', updated_at = now()
         FROM unnest($1::uuid[], $2::float8[]) AS u(id, delay) WHERE d.id = u.id`,
        [later.map((j) => j.delivery_id), later.map((j) => j.delaySeconds)],
      );
      await enqueueDeliveries(deps.boss, client, later);
    });
  }
  return go;
}

/**
 * What the attempts say about pending endpoints (ones tried again after they were disabled): a
 * success makes one active, a failure inactive again. The circuit breaker judges the others.
 */
function pendingTransitions(outcomes: Pick<Outcome, 'row' | 'result'>[]): EndpointChange[] {
  const changes = new Map<string, EndpointChange>();
  for (const o of outcomes) {
    const key = refKey(o.row);
    if (!o.result || o.row.endpoint_status !== 'pending' || changes.has(key)) continue;
    const base = { project_id: o.row.project_id, endpoint_id: o.row.endpoint_id, from: ['pending'] as EndpointStatus[] };
    changes.set(key, o.result.ok
      ? { ...base, to: 'active', reason: 'a delivery to the pending endpoint succeeded' }
      : { ...base, to: 'inactive', reason: `a delivery to the pending endpoint failed: ${o.result.error ?? 'no answer'}` });
  }
  return [...changes.values()];
}

const attemptKind = (r: SendResult): AttemptKind => (r.statusCode === 410 ? 'gone' : r.ok ? 'success' : 'failure');

/**
 * Feeds the attempts to the circuit breaker and works out every endpoint state change, in the
 * batch's transaction (the breaker relies on it: the endpoint rows it locked are set inactive
 * before another batch can count them again). Breaker trips come first; a pending endpoint's own
 * answer decides the rest.
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
  const changes = new Map<string, EndpointChange>();
  for (const t of trips) {
    changes.set(refKey(t), { project_id: t.project_id, endpoint_id: t.endpoint_id, from: ['active', 'pending'], to: 'inactive', reason: t.reason });
  }
  for (const c of pendingTransitions(sent)) {
    const key = refKey(c);
    if (!changes.has(key)) changes.set(key, c);
  }
  return { changes: [...changes.values()], failing };
}

async function recordOutcomes(deps: DispatcherDeps, outcomes: Outcome[]): Promise<EndpointChange[]> {
  const sent = outcomes.filter((o) => o.result !== null);
  return withTransaction(deps.pool, async (client) => {
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
      .map((o) => ({ delivery_id: o.row.id, attempt: o.attempt + 1, delaySeconds: o.retryIn! }));
    await enqueueDeliveries(deps.boss, client, next);
    const { changes, failing } = await endpointChanges(client, sent.filter((o) => applied.has(o.row.id)));
    // One round of alerts for the batch: its state changes and its failing streaks.
    const happened = await transition(client, changes);
    await recordAlerts(deps.boss, client, [...statusAlerts(happened), ...failing]);
    return happened;
  });
}
