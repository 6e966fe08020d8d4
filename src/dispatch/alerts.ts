/**
 * Alerts (Convoy's meta events): Wharf tells people when an endpoint changes state and when its
 * deliveries keep failing. An alert goes to the endpoint's `notification_url` (signed with the
 * endpoint's own secrets, exactly like its webhooks) and to the project's meta-event URL (signed
 * with the project's meta-event secret), in the project's signature scheme either way. A state
 * change is also posted, as a line of text, to the endpoint's Slack and Teams incoming webhooks
 * (Convoy's `slack_webhook_url`, `teams_webhook_url`), which take no signature: their URL is the
 * credential, so it stays sealed with the endpoint's credentials and the row names only its origin.
 *
 * Alerts are rows in `meta_events`, written with a pg-boss job in the same transaction as the
 * change they report, so an alert exists exactly when its change happened. They are sent through
 * the egress guard and retried with backoff; each keeps its outcome for the API.
 */
import type pg from 'pg';
import type { Job, PgBoss } from 'pg-boss';
import type { Dispatcher as HttpDispatcher } from 'undici';
import { uuidv7 } from '../core/ids.ts';
import type { AlertType, EndpointSecret, EndpointStatus, MetaEventSettings, RetrySettings, SignatureSettings } from '../core/types.ts';
import { buildRequest } from '../delivery/request.ts';
import type { SendResult, Sender } from '../delivery/sender.ts';
import type { SecretBox } from '../store/crypto.ts';
import { liveSecrets, openCredentials, refKey } from '../store/endpoints.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import type { AppliedChange } from './operations.ts';
import { insertJobs } from './queue.ts';
import { hasRetriesLeft, retryDelaySeconds } from './retry-schedule.ts';

export const ALERT_QUEUE = 'wharf-alerts';
/** Alerts retry on the deliveries' schedule: 8 attempts, exponential from 10 s with jitter (about 11–21 min in all). */
const ALERT_RETRY: RetrySettings = Object.freeze({ strategy: 'exponential', duration: 10, retry_count: 7 });
const ALERT_TIMEOUT_MS = 10_000;

export interface AlertInput {
  project_id: string;
  endpoint_id: string;
  event_type: AlertType;
  /** What the alert says besides the endpoint itself, which every alert carries. */
  details: Record<string, unknown>;
}

/** A job asks for attempt `a` of alert `id`; a stale or repeated job does nothing. */
interface AlertJob {
  id: string;
  a: number;
}

const enqueue = (boss: PgBoss, db: Queryable, jobs: (AlertJob & { delaySeconds?: number })[]): Promise<void> =>
  insertJobs(boss, db, ALERT_QUEUE, jobs.map(({ id, a, delaySeconds }) => ({ data: { id, a } satisfies AlertJob, delaySeconds })));

export async function createAlertQueue(boss: PgBoss): Promise<void> {
  // pg-boss retries cover a worker that died mid-job; an endpoint that fails is retried by us.
  await boss.createQueue(ALERT_QUEUE, { retryLimit: 5, retryDelay: 5, retryBackoff: true, expireInSeconds: 300 });
}

/** Where an alert goes: a signed webhook (the endpoint's, the project's) or a chat channel. */
type AlertDestination = 'endpoint' | 'project' | 'slack' | 'teams';
const CHAT_URL_KEYS = { slack: 'slack_webhook_url', teams: 'teams_webhook_url' } as const;
type ChatTarget = keyof typeof CHAT_URL_KEYS;
const isChat = (t: AlertDestination): t is ChatTarget => t === 'slack' || t === 'teams';

/** What recording alerts needs: the queue, and the box that opens an endpoint's chat URLs. */
export interface AlertDeps {
  boss: PgBoss;
  box: SecretBox;
}

interface AlertTarget {
  project_id: string;
  id: string;
  name: string;
  url: string;
  owner_id: string | null;
  support_email: string | null;
  notification_url: string | null;
  status: EndpointStatus;
  meta_events: MetaEventSettings | null;
  credentials_enc: string | null;
}

/** A state change as one line for a chat channel (the channel renders it; nothing else is sent). */
function chatText(ep: AlertTarget, details: Record<string, unknown>): string {
  const reason = typeof details.reason === 'string' && details.reason ? `: ${details.reason}` : '';
  return `Wharf: endpoint "${ep.name}" (${ep.url}) is now ${String(details.status)}, was ${String(details.previous_status)}${reason}`;
}

/**
 * Records alerts and queues them, in the caller's transaction: one per destination (the endpoint's
 * notification_url; the project's meta-event URL when it takes this type). An endpoint with
 * neither gets none. Returns how many were queued.
 */
export async function recordAlerts(deps: AlertDeps, db: Queryable, inputs: AlertInput[]): Promise<number> {
  if (inputs.length === 0) return 0;
  const { rows } = await db.query<AlertTarget>(
    `SELECT ep.project_id, ep.id, ep.name, ep.url, ep.owner_id, ep.support_email, ep.notification_url, ep.status,
            p.settings->'meta_events' AS meta_events, ep.credentials_enc
     FROM endpoints ep JOIN projects p ON p.id = ep.project_id
     WHERE (ep.project_id, ep.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [inputs.map((i) => i.project_id), inputs.map((i) => i.endpoint_id)],
  );
  const targets = new Map(rows.map((r) => [refKey({ project_id: r.project_id, endpoint_id: r.id }), r]));
  const alerts: { id: string; project_id: string; endpoint_id: string; target: AlertDestination; url: string; event_type: AlertType; body: string }[] = [];
  for (const input of inputs) {
    const ep = targets.get(refKey(input));
    if (!ep) continue;
    const destinations: [AlertDestination, string][] = [];
    if (ep.notification_url) destinations.push(['endpoint', ep.notification_url]);
    if (ep.meta_events?.event_types.includes(input.event_type)) destinations.push(['project', ep.meta_events.url]);
    if (input.event_type === 'endpoint.status_changed' && ep.credentials_enc !== null) {
      const credentials = openCredentials(deps.box, ep.credentials_enc);
      for (const target of ['slack', 'teams'] as const) {
        const url = credentials[CHAT_URL_KEYS[target]];
        if (url) destinations.push([target, new URL(url).origin]);
      }
    }
    for (const [target, url] of destinations) {
      const id = uuidv7();
      if (isChat(target)) {
        alerts.push({ id, project_id: ep.project_id, endpoint_id: ep.id, target, url, event_type: input.event_type, body: JSON.stringify({ text: chatText(ep, input.details) }) });
        continue;
      }
      const body = JSON.stringify({
        id,
        event_type: input.event_type,
        project_id: ep.project_id,
        created_at: new Date().toISOString(),
        data: {
          endpoint: { id: ep.id, name: ep.name, url: ep.url, owner_id: ep.owner_id, status: ep.status, support_email: ep.support_email },
          ...input.details,
        },
      });
      alerts.push({ id, project_id: ep.project_id, endpoint_id: ep.id, target, url, event_type: input.event_type, body });
    }
  }
  if (alerts.length === 0) return 0;
  await db.query(
    `INSERT INTO meta_events (id, project_id, endpoint_id, target, url, event_type, body)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
    [
      alerts.map((a) => a.id),
      alerts.map((a) => a.project_id),
      alerts.map((a) => a.endpoint_id),
      alerts.map((a) => a.target),
      alerts.map((a) => a.url),
      alerts.map((a) => a.event_type),
      alerts.map((a) => a.body),
    ],
  );
  await enqueue(deps.boss, db, alerts.map((a) => ({ id: a.id, a: 1 })));
  return alerts.length;
}

/** `endpoint.status_changed` for each change that happened. */
export const statusAlerts = (changes: AppliedChange[]): AlertInput[] =>
  changes.map((c) => ({
    project_id: c.project_id,
    endpoint_id: c.endpoint_id,
    event_type: 'endpoint.status_changed',
    details: { previous_status: c.previous, status: c.to, reason: c.reason },
  }));

/** Sends an alert at rest again (PUT /meta-events/{id}/resend), as its next attempt. */
export async function resendAlert(boss: PgBoss, db: Queryable, projectId: string, id: string): Promise<boolean> {
  const { rows } = await db.query<{ attempts: number }>(
    `UPDATE meta_events SET status = 'scheduled', updated_at = now()
     WHERE project_id = $1 AND id = $2 AND status <> 'scheduled' RETURNING attempts`,
    [projectId, id],
  );
  if (!rows[0]) return false;
  await enqueue(boss, db, [{ id, a: rows[0].attempts + 1 }]);
  return true;
}

export interface AlertSenderDeps {
  pool: pg.Pool;
  boss: PgBoss;
  box: SecretBox;
  sender: Sender;
  /** The egress-guarded connection pool deliveries use. */
  dispatcher: HttpDispatcher;
}

interface AlertRow {
  id: string;
  project_id: string;
  endpoint_id: string | null;
  target: AlertDestination;
  url: string;
  event_type: AlertType;
  body: string;
  status: string;
  attempts: number;
  settings: { signature: SignatureSettings; meta_events?: MetaEventSettings | null };
  advanced_signatures: boolean | null;
  credentials_enc: string | null;
}

export interface AlertOutcome {
  id: string;
  project_id: string;
  event_type: AlertType;
  target: AlertDestination;
  attempt: number;
  status: 'success' | 'failure' | 'retry';
  error: string | null;
}

/** Works the alert queue; `onOutcome` hears of every attempt (for logs). Returns the worker id. */
export async function workAlerts(deps: AlertSenderDeps, onOutcome?: (o: AlertOutcome) => void): Promise<string> {
  return deps.boss.work<AlertJob>(ALERT_QUEUE, { batchSize: 5, pollingIntervalSeconds: 1 }, async (jobs: Job<AlertJob>[]) => {
    await Promise.all(jobs.map(async (job) => {
      const outcome = await sendAlert(deps, job.data);
      if (outcome) onOutcome?.(outcome);
    }));
  });
}

/** The secrets that sign an alert: the endpoint's live ones, or the project's meta-event secret. */
async function signingSecrets(deps: AlertSenderDeps, row: AlertRow): Promise<EndpointSecret[] | string> {
  if (row.target === 'endpoint') {
    const secrets = (await liveSecrets(deps.pool, deps.box, row.project_id, [row.endpoint_id!])).get(row.endpoint_id!) ?? [];
    return secrets.length > 0 ? secrets : 'the endpoint no longer exists';
  }
  const meta = row.settings.meta_events;
  if (!meta) return "the project's meta_events are no longer configured";
  return [{ id: 'meta', value: deps.box.decrypt(meta.secret_enc), created_at: new Date(0), expires_at: null }];
}

/** The request an alert is sent as, or why it cannot be sent (then it is not tried again). */
async function alertRequest(deps: AlertSenderDeps, row: AlertRow): Promise<{ url: string; headers: Record<string, string>; body: Buffer } | string> {
  if (isChat(row.target)) {
    // The URL is read when the alert is sent, so one changed or removed since is honoured.
    const url = row.credentials_enc === null ? null : openCredentials(deps.box, row.credentials_enc)[CHAT_URL_KEYS[row.target]];
    if (!url) return `the endpoint no longer has a ${CHAT_URL_KEYS[row.target]}`;
    return { url, headers: { 'content-type': 'application/json' }, body: Buffer.from(row.body) };
  }
  const secrets = await signingSecrets(deps, row);
  if (typeof secrets === 'string') return secrets;
  const { headers, body } = buildRequest({
    eventId: row.id,
    deliveryId: row.id,
    eventType: row.event_type,
    data: row.body,
    customHeaders: {},
    signature: row.settings.signature,
    advanced: row.advanced_signatures ?? true,
    secrets,
  });
  return { url: row.url, headers, body };
}

async function sendAlert(deps: AlertSenderDeps, job: AlertJob): Promise<AlertOutcome | null> {
  const { rows } = await deps.pool.query<AlertRow>(
    `SELECT m.id, m.project_id, m.endpoint_id, m.target, m.url, m.event_type, m.body, m.status, m.attempts, p.settings,
            ep.advanced_signatures, ep.credentials_enc
     FROM meta_events m
     JOIN projects p ON p.id = m.project_id
     LEFT JOIN endpoints ep ON ep.project_id = m.project_id AND ep.id = m.endpoint_id
     WHERE m.id = $1`,
    [job.id],
  );
  const row = rows[0];
  if (!row || row.status !== 'scheduled' || row.attempts !== job.a - 1) return null;

  const request = await alertRequest(deps, row);
  const result: Pick<SendResult, 'ok' | 'statusCode' | 'error'> = typeof request === 'string'
    ? { ok: false, statusCode: null, error: `not sent: ${request}` }
    : await deps.sender.send({ ...request, timeoutMs: ALERT_TIMEOUT_MS, dispatcher: deps.dispatcher });
  const final = result.ok || typeof request === 'string' || !hasRetriesLeft(ALERT_RETRY, job.a);
  const status = result.ok ? 'success' : final ? 'failure' : 'retry';
  await withTransaction(deps.pool, async (client) => {
    const { rowCount } = await client.query(
      `UPDATE meta_events SET attempts = $2, status = $3, last_status_code = $4, last_error = $5, updated_at = now()
       WHERE id = $1 AND attempts = $6`,
      [row.id, job.a, status === 'retry' ? 'scheduled' : status, result.statusCode, result.error, job.a - 1],
    );
    if (rowCount && status === 'retry') await enqueue(deps.boss, client, [{ id: row.id, a: job.a + 1, delaySeconds: retryDelaySeconds(ALERT_RETRY, job.a) }]);
  });
  return { id: row.id, project_id: row.project_id, event_type: row.event_type, target: row.target, attempt: job.a, status, error: result.error };
}
