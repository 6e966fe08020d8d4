import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { DeliveryStatus, EndpointSecret, EndpointStatus, RetrySettings } from '../core/types.ts';
import { acquireMany } from './rate-limit.ts';
import { DEFAULT_BREAKER, recordAttempts, type AttemptKind } from './breaker.ts';
import { transition, type EndpointChange } from './operations.ts';
import { recordAlerts, statusAlerts, type AlertInput } from './alerts.ts';
import { uuidv7, uuidv7Time } from '../core/ids.ts';
import type { SecretBox } from '../store/crypto.ts';
import { liveSecretsOf, openCredentials, projectOfKey, refKey, unsealSecrets } from '../store/endpoints.ts';
import { NO_CREDENTIALS, type EndpointCredentials } from '../delivery/credentials.ts';
import { sendWithCredentials, type OutboundDeps } from '../delivery/outbound.ts';
import { withTransaction } from '../store/pool.ts';
import { floatArray, intArray, packTexts, textArray, uuidArray } from '../store/params.ts';
import { FOLD_WITHIN_MS } from '../store/retention.ts';
import type { Queryable } from '../store/queryable.ts';
import { buildRequest, storedRequestHeaders } from '../delivery/request.ts';
import { unanswered, type SendResult } from '../delivery/sender.ts';
import {
  DELIVERY_HEARTBEAT_SECONDS,
  DELIVERY_QUEUE,
  MAX_DELIVERIES_PER_JOB,
  deliveriesOfJob,
  endpointShares,
  enqueueDeliveries,
  executorOf,
  type DeliveryJobData,
  type DeliveryJobInsert,
} from './queue.ts';
import { hasRetriesLeft, retryDelaySeconds } from './retry-schedule.ts';
import { sleep } from '../core/backoff.ts';
import { gapMeter } from '../core/gap-meter.ts';
import { HANDOFF_SWEEP_SECONDS, finishHandoffs, renewHandoffs, rescueHandoffs, type Claim, type DirectDispatch, type HandoffJob } from './handoff.ts';
import { endpointWorkColumns, type WorkRow } from './work.ts';
import { waitLines } from './wait-lines.ts';

export interface DispatcherDeps extends OutboundDeps {
  pool: pg.Pool;
  boss: PgBoss;
  box: SecretBox;
}

export interface DispatcherOptions {
  /** Deliveries one fetch asks for, at most (in whole jobs, so up to MAX_DELIVERIES_PER_JOB − 1 more). */
  batchSize: number;
  /** Deliveries this process has in hand at once (fetched and not yet recorded). */
  maxInFlight: number;
  /**
   * Deliveries of one endpoint in flight at once, across every replica (pg-boss's job groups cap
   * its active jobs, each job sends a share at a time: queue.ts `endpointShares`): an endpoint that
   * hangs holds at most this many of the dispatcher's slots.
   */
  endpointConcurrency: number;
  /** Deliveries of one project in flight at once in this process; the rest wait a moment as the same attempt. */
  projectConcurrency: number;
  pollingIntervalSeconds: number;
  /** LISTEN for pg-boss's NOTIFY of new jobs (off on the embedded database, which cannot deliver it). */
  listen: boolean;
  /**
   * Milliseconds a NOTIFY waits for others before the fetch, while they come densely (`gapMeter`):
   * one fetch and work query for several jobs. 0: never wait.
   */
  lingerMs?: number;
  /**
   * Milliseconds an answer waits for others before the recorder writes it, while they come
   * densely: one transaction for several outcomes. Nothing is sent later for it (the answer is in);
   * only the attempt's row comes later. 0: never wait.
   */
  recordLingerMs?: number;
}

/** Why a delivery was put back as the same attempt (`held`). */
export const HOLD_REASONS = ['endpoint_share', 'project_share', 'rate_limit'] as const;
export type HoldReason = (typeof HOLD_REASONS)[number];

/** What the dispatcher reports; main.ts turns these into logs and metrics. */
export type { EndpointChange };

export interface DispatcherEvents {
  endpoint: [EndpointChange];
  attempt: [{ deliveryId: string; endpointId: string; attempt: number; status: DeliveryStatus; statusCode: number | null; latencyMs: number; errorCode: string | null }];
  /** An ingest transaction's first attempts: how many this process took (`handedOver`), how many it left to the queue. */
  claimed: [{ handedOver: number; queued: number }];
  /** First attempts of handoffs queued as jobs: their process stopped renewing them, or gave them up. */
  rescued: [number];
  /** Deliveries put back as the same attempt, to wait for their endpoint's or project's share or a rate limit. */
  held: [{ reason: HoldReason; deliveries: number }];
  error: [Error];
}

export interface Dispatcher extends EventEmitter<DispatcherEvents>, DirectDispatch {
  start(): Promise<void>;
  /** Stops fetching and waits for the deliveries in hand to be sent and recorded. */
  stop(): Promise<void>;
  /** Deliveries in hand now (fetched or handed over, not yet recorded). */
  readonly inFlight: number;
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

/** A fetched job, or a handoff from ingest (handoff.ts), while it is in this process's hands. */
interface HeldJob {
  id: string;
  /**
   * A handoff's deliveries not yet settled, each with its endpoint (refKey): counted against
   * endpoint_concurrency until settled. Null for a pg-boss job.
   */
  handoff: Map<string, string> | null;
  /** Its deliveries not yet settled here (recorded, deferred, found to have nothing to do, or given up on). */
  open: number;
  /**
   * Something of it could not be recorded: once nothing of it is open it goes back to pg-boss's
   * retry policy (a handoff: its deliveries get jobs), and it is never deleted here.
   */
  failed: boolean;
}

/** A fetched delivery that will be sent (or discarded) now. */
interface Live {
  row: WorkRow;
  attempt: number;
  job: HeldJob;
}

/** A live delivery put back as the same attempt, runnable after its delay. */
interface Deferral {
  live: Live;
  delaySeconds: number;
}

/** The longest `Retry-After` Wharf waits; a larger one is cut to this. */
export const MAX_RETRY_AFTER_SECONDS = 3_600;

/** How long a delivery put back for its endpoint's or project's share waits before it is fetched again. */
const PROJECT_SHARE_WAIT_SECONDS = 1;

/**
 * How long a fetched delivery waits in line in this process for a share of its endpoint
 * (`shareOf`) or of its project (`startLive`) before it is put back as the same attempt: a busy
 * endpoint or project frees one within its answers' time, hung ones hold theirs for their timeout.
 */
export const SHARE_WAIT_MS = 1_000;

/** Deliveries settled in one transaction, at most. */
const MAX_RECORD_BATCH = 500;

const TERMINAL: ReadonlySet<DeliveryStatus> = new Set(['success', 'failure', 'discarded']);

/** Deliveries to paused or inactive endpoints are kept as discarded, never sent. */
const discarded = (row: WorkRow): boolean => row.endpoint_status === 'paused' || row.endpoint_status === 'inactive';

/** pg-boss's NOTIFY channel for its default schema (pg-boss derives it from the schema name the same way). */
const NOTIFY_CHANNEL = `pgboss_${createHash('sha224').update('pgboss').digest('hex').slice(0, 24)}`;

/** A delivery of a job that left the dispatcher's hands (null: not known which, as for a job that lists none). */
interface Settled {
  job: HeldJob;
  delivery: string | null;
}

/** Every delivery of `job` still open. */
const allOf = (job: HeldJob): Settled[] => Array.from({ length: job.open }, () => ({ job, delivery: null }));

/** Adds `delta` to a count by key; a count that reaches 0 is removed. */
function adjust(counts: Map<string, number>, key: string, delta: number): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/** How many of each job's deliveries settle together, so a job is counted once per call. */
const perJob = (lives: { job: HeldJob }[]): Map<HeldJob, number> => {
  const n = new Map<HeldJob, number>();
  for (const l of lives) n.set(l.job, (n.get(l.job) ?? 0) + 1);
  return n;
};

/**
 * The dispatcher fetches jobs itself rather than through `boss.work()`: a work handler holds its
 * worker until every job of its batch is done, so one endpoint that never answers would hold a
 * whole batch, and with it a share of the dispatcher, for its full timeout. Here every delivery is
 * sent and recorded on its own; the fetch loop only asks for as many jobs as there are free slots.
 *
 * A job carries several deliveries of one endpoint (queue.ts). It stays `active` in pg-boss until
 * its last delivery is settled, and its end (finishJobs) is written in the transaction that
 * settles that last one, so a crash at any point leaves the job for pg-boss to hand out again;
 * the attempts guard then skips the deliveries of it that were already recorded. A delivery of a
 * job is never left uncovered: the job is deleted only once every one of its deliveries is
 * recorded, found to have nothing to do, or covered by a new job (deferred); otherwise it goes
 * back to pg-boss whole.
 */
export function createDispatcher(deps: DispatcherDeps, options: DispatcherOptions): Dispatcher {
  const emitter = new EventEmitter<DispatcherEvents>() as Dispatcher;
  let running = false;
  let loop: Promise<void> | null = null;
  let listener: { close(): Promise<void> } | null = null;
  const shares = endpointShares(options.endpointConcurrency);
  // The jobs in hand (fetched, not yet settled): their heartbeat is kept up so pg-boss hands them
  // out again soon after this process dies. Their open deliveries count against max_in_flight.
  const held = new Map<string, HeldJob>();
  let openDeliveries = 0;
  // Of each endpoint (refKey): deliveries handed over from ingest and not yet answered, and
  // deliveries of pg-boss jobs being sent. Together they are the endpoint's share in use here.
  const handedOver = new Map<string, number>();
  const sendingJobs = new Map<string, number>();
  const busy = (endpoint: string): number => (handedOver.get(endpoint) ?? 0) + (sendingJobs.get(endpoint) ?? 0);
  // Of each endpoint: fetched deliveries waiting, in the order they came, for a share that
  // handoffs hold. A share that comes free goes to them first (`admit`), so new handoffs cannot
  // overtake them: while they wait, ingest queues that endpoint's new first attempts behind them.
  const lines = waitLines<string>(SHARE_WAIT_MS);
  const endpointRoom = (endpoint: string): boolean => busy(endpoint) < options.endpointConcurrency;
  const takeShare = (endpoint: string): void => adjust(sendingJobs, endpoint, 1);
  /** Takes a share of `endpoint` for a fetched delivery: now, or once one comes free within SHARE_WAIT_MS. */
  const shareOf = (endpoint: string): boolean | Promise<boolean> => {
    if (endpointRoom(endpoint) && !lines.has(endpoint)) {
      takeShare(endpoint);
      return true;
    }
    if (!running) return false;
    return new Promise<boolean>((resolve) => {
      const admitted = (e: string): void => {
        takeShare(e);
        resolve(true);
      };
      lines.wait(endpoint, endpoint, admitted, () => resolve(false));
    });
  };
  /** A share of `endpoint` came free: the first waiting deliveries take it. */
  const admit = (endpoint: string): void => lines.admit(endpoint, () => endpointRoom(endpoint));
  // Of each project: deliveries that hold one of its project_concurrency here, from their claim
  // (handoffs) or from the check in startLive (fetched), until answered or put back.
  const perProject = new Map<string, number>();
  // Of each project: fetched deliveries waiting, in order, for its share. A share that comes free
  // goes to them first (`admitProject`), and claims leave the project's first attempts to the
  // queue while they wait, as for an endpoint's line; after SHARE_WAIT_MS they are put back.
  const projectLines = waitLines<Live>(SHARE_WAIT_MS);
  const projectRoom = (project: string, more = 0): boolean =>
    (perProject.get(project) ?? 0) + more < options.projectConcurrency && !projectLines.has(project);
  /** A delivery of `project` gave its share back (answered, or put back). */
  const releaseProject = (project: string): void => {
    adjust(perProject, project, -1);
    admitProject(project);
  };
  const giveBack = (lives: Live[]): void => {
    for (const l of lives) releaseProject(l.row.project_id);
  };
  /** A share of `project` came free: the first waiting deliveries take it and start with the handoffs. */
  const admitProject = (project: string): void => {
    projectLines.admit(project, () => (perProject.get(project) ?? 0) < options.projectConcurrency);
    if (!starting && arrived.length > 0) track((starting = startArrived()));
  };
  const enterProject = (live: Live): void => {
    adjust(perProject, live.row.project_id, 1);
    arrived.push(live);
  };
  /**
   * Fetched deliveries past their project's share wait in its line, each at most SHARE_WAIT_MS;
   * past a quarter of the share waiting (or once stopping), they are put back at once. Waiting
   * deliveries hold slots of max_in_flight, and a project whose endpoints all hang must leave the
   * others room.
   */
  const lineLimit = Math.max(1, Math.floor(options.projectConcurrency / 4));
  const waitForProject = (lives: Live[]): void => {
    // One delay for the batch, so the deliveries put back together can share jobs again.
    const wait = PROJECT_SHARE_WAIT_SECONDS + Math.random() / 2;
    const putBack = (live: Live): Deferral => ({ live, delaySeconds: wait });
    const back: Deferral[] = [];
    for (const live of lives) {
      const p = live.row.project_id;
      if (!running || projectLines.size(p) >= lineLimit) back.push(putBack(live));
      else projectLines.wait(p, live, enterProject, (l) => hold('project_share', [putBack(l)]));
    }
    hold('project_share', back);
  };
  const tasks = new Set<Promise<void>>();
  let sleeping: (() => void) | null = null;
  // The last fetch asked for less than batch_size, or for nothing, because slots were taken.
  let capped = false;
  // A wake-up that came while a fetch was under way: the loop fetches again instead of sleeping.
  let woken = false;
  const wake = (): void => {
    const w = sleeping;
    sleeping = null;
    if (w) w();
    else woken = true;
  };

  // A NOTIFY while they come densely: wake once, lingerMs after the first of a run of them.
  const notifyGaps = gapMeter(options.lingerMs ?? 0);
  let lingering: NodeJS.Timeout | null = null;
  const notified = (): void => {
    const now = performance.now();
    notifyGaps.arrive(now);
    const left = notifyGaps.waitMs(now);
    if (left === 0) return wake();
    lingering ??= setTimeout(() => {
      lingering = null;
      wake();
    }, left);
  };

  const track = (p: Promise<void>): void => {
    tasks.add(p);
    void p.finally(() => tasks.delete(p));
  };

  /**
   * Deliveries that left the dispatcher's hands: committed (`ok`), or given up on (their job
   * then goes back to pg-boss once nothing of it is open, for another try of what was not recorded).
   */
  const settle = (items: Settled[], ok: boolean): void => {
    const failed: string[] = [];
    const toRescue: string[] = [];
    for (const { job, delivery } of items) if (job.handoff && delivery !== null) unclaim(job.handoff, delivery);
    const counts = perJob(items);
    let jobEnded = false;
    for (const [job, n] of counts) {
      if (!ok) job.failed = true;
      job.open -= n;
      openDeliveries -= n;
      if (job.open > 0) continue;
      if (!job.handoff) jobEnded = true;
      // Only this copy: pg-boss may have handed the same job out again (a heartbeat missed for
      // over 10 s), and the new copy is held on its own.
      if (held.get(job.id) === job) held.delete(job.id);
      if (job.handoff) for (const d of [...job.handoff.keys()]) unclaim(job.handoff, d);
      if (job.failed) (job.handoff ? toRescue : failed).push(job.id);
    }
    if (failed.length > 0) track(failJobs(deps, failed));
    // A handoff given up on is queued at once; if the database is down too, its lease runs out.
    if (toRescue.length > 0) track(rescue(toRescue));
    // A fetch cut short by max_in_flight may find more now that slots came free, and one cut short
    // by an endpoint's job group once one of its jobs ended. Otherwise the queue had nothing more
    // (handoffs settle all the time, and a fetch per settle would mostly find nothing).
    if (jobEnded || (capped && counts.size > 0)) wake();
  };

  /** Puts deliveries back as the same attempt, each in a new job after its delay. */
  const hold = (reason: HoldReason, items: Deferral[]): void => {
    if (items.length === 0) return;
    emitter.emit('held', { reason, deliveries: items.length });
    void recorder.defer(items);
  };

  const recorder = createRecorder(deps, emitter, settle, { lingerMs: options.recordLingerMs ?? 0, jobLingerMs: options.lingerMs ?? 0, maxInFlight: options.maxInFlight });

  /** Queues the deliveries of run-out handoffs (and of `ids` at once) as jobs. */
  const rescue = async (ids: string[] = []): Promise<void> => {
    try {
      const n = await rescueHandoffs(deps, ids);
      if (n > 0) emitter.emit('rescued', n);
    } catch (err) {
      if (running || ids.length > 0) emitter.emit('error', err as Error);
    }
  };

  /** A handed-over delivery no longer counts against its endpoint's share. */
  const unclaim = (handoff: Map<string, string>, delivery: string): void => {
    const e = handoff.get(delivery);
    if (e === undefined) return;
    handoff.delete(delivery);
    adjust(handedOver, e, -1);
    admit(e);
  };

  // Handed-over deliveries committed and not yet started, and fetched ones admitted from their
  // project's line: both hold their project's share already. Ingest put together what each
  // handoff needs (its WorkRow), so starting them reads nothing, but rate limits may: one start
  // at a time takes all that arrived meanwhile, so handoffs hold at most one of the pool's
  // connections however fast ingest commits (under a moment's slowness of the database, a query
  // per commit would queue ahead of ingest's own transactions for the pool), and several share
  // one query.
  let arrived: Live[] = [];
  let starting: Promise<void> | null = null;
  const startArrived = async (): Promise<void> => {
    while (arrived.length > 0) {
      const batch = arrived;
      arrived = [];
      await startLive(batch, true);
    }
    starting = null;
  };

  /**
   * Takes first attempts straight from an ingest transaction while this process has room: a free
   * slot of max_in_flight, the endpoint under endpoint_concurrency in this process (`busy`:
   * pg-boss's job groups do not see handoffs, so each process keeps its own count; the rest of
   * the endpoint's deliveries are queued and capped by their job group as before), and the
   * project under project_concurrency with none of its deliveries waiting in line.
   */
  emitter.claim = (jobs): Claim | null => {
    if (!running) return null;
    const taken: HandoffJob[] = [];
    const byEndpoint = new Map<string, number>();
    const byProject = new Map<string, number>();
    for (const j of jobs) {
      const n = byEndpoint.get(j.endpoint) ?? 0;
      const p = j.work.project_id;
      const room =
        openDeliveries + taken.length < options.maxInFlight &&
        busy(j.endpoint) + n < options.endpointConcurrency &&
        projectRoom(p, byProject.get(p) ?? 0);
      if (room && j.attempt === 1 && !j.delaySeconds) {
        taken.push(j);
        byEndpoint.set(j.endpoint, n + 1);
        byProject.set(p, (byProject.get(p) ?? 0) + 1);
      }
    }
    emitter.emit('claimed', { handedOver: taken.length, queued: jobs.length - taken.length });
    if (taken.length === 0) return null;
    const job: HeldJob = { id: uuidv7(), handoff: new Map(taken.map((j) => [j.delivery_id, j.endpoint])), open: taken.length, failed: false };
    openDeliveries += taken.length;
    for (const [e, n] of byEndpoint) adjust(handedOver, e, n);
    for (const [p, n] of byProject) adjust(perProject, p, n);
    const lives = (ids: Set<string> | null): Live[] =>
      taken.filter((j) => ids === null || ids.has(j.delivery_id)).map((j) => ({ row: j.work, attempt: 1, job }));
    let state: 'claimed' | 'started' | 'released' = 'claimed';
    const dropped = new Set<string>();
    return {
      id: job.id,
      taken,
      drop: (ids) => {
        for (const d of ids) dropped.add(d);
      },
      start: () => {
        if (state !== 'claimed') return;
        state = 'started';
        held.set(job.id, job);
        if (!running) {
          // Stopped while the ingest committed: its deliveries are queued for whoever runs next.
          giveBack(lives(null));
          settle(allOf(job), false);
          return;
        }
        giveBack(lives(dropped));
        for (const j of taken) {
          if (dropped.has(j.delivery_id)) void recorder.skip({ job, delivery: j.delivery_id });
          else arrived.push({ row: j.work, attempt: 1, job });
        }
        if (!starting && arrived.length > 0) track((starting = startArrived()));
      },
      release: () => {
        if (state !== 'claimed') return;
        state = 'released';
        openDeliveries -= job.open;
        for (const d of taken) unclaim(job.handoff!, d.delivery_id);
        giveBack(lives(null));
        wake();
      },
    };
  };

  const fetchLoop = async (): Promise<void> => {
    while (running) {
      const free = options.maxInFlight - openDeliveries;
      woken = false;
      capped = free < options.batchSize;
      let full = false;
      if (free > 0) {
        // Jobs, rounded up: a fetch can take up to MAX_DELIVERIES_PER_JOB − 1 deliveries past
        // max_in_flight (and batch_size) when its jobs are full.
        const wanted = Math.ceil(Math.min(options.batchSize, free) / MAX_DELIVERIES_PER_JOB);
        try {
          const jobs = await deps.boss.fetch<DeliveryJobData>(DELIVERY_QUEUE, { batchSize: wanted, groupConcurrency: shares.jobs });
          if (jobs.length > 0) {
            const fetched = jobs.map((j) => {
              const ds = deliveriesOfJob(j.data);
              // An empty job (never queued by Wharf) is held as one delivery that has nothing to do.
              const job: HeldJob = { id: j.id, handoff: null, open: Math.max(1, ds.length), failed: false };
              held.set(j.id, job);
              openDeliveries += job.open;
              return { job, project: j.groupId ? projectOfKey(j.groupId) : null, ds };
            });
            track(startBatch(fetched));
          }
          full = jobs.length === wanted;
        } catch (err) {
          if (running) emitter.emit('error', err as Error);
        }
      }
      if (!running) break;
      // A full batch means more is waiting: fetch again at once unless every slot is taken.
      if (full && openDeliveries < options.maxInFlight) continue;
      if (woken && openDeliveries < options.maxInFlight) continue;
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
  const startBatch = async (fetched: Fetched[]): Promise<void> => {
    let live: Live[];
    try {
      live = await loadLive(deps, fetched, recorder);
    } catch (err) {
      emitter.emit('error', err as Error);
      settle(fetched.flatMap((f) => allOf(f.job)), false);
      return;
    }
    await startLive(live);
  };

  /**
   * Starts the sends of loaded deliveries; resolves when they are handed on, not when they are
   * sent. `counted`: they hold their project's share already (handoffs, and deliveries admitted
   * from a project's line).
   */
  const startLive = async (live: Live[], counted = false): Promise<void> => {
    // A project past its share waits in line, so one tenant's slow endpoints cannot take every
    // slot of the process. The share is taken here, when it is checked: the batch's queries below
    // let other batches check meanwhile, and each must see what this one took.
    let go = live;
    if (!counted) {
      go = [];
      const waiting: Live[] = [];
      for (const l of live) {
        if (projectRoom(l.row.project_id) || discarded(l.row)) {
          go.push(l);
          adjust(perProject, l.row.project_id, 1);
        } else waiting.push(l);
      }
      waitForProject(waiting);
    }
    // The deliveries still in this batch's hands: whatever fails gives up exactly these.
    let inHand: Live[] = go;
    try {
      const { now, later } = await withinRateLimits(deps, go);
      giveBack(later.map((d) => d.live));
      hold('rate_limit', later);
      inHand = now;
      // Throws only before any send starts (its one query); from then on each delivery settles itself.
      await sendAll(now);
    } catch (err) {
      emitter.emit('error', err as Error);
      // Nothing of the batch was sent: each gives its project's share back.
      giveBack(inHand);
      settle(inHand.map((l) => ({ job: l.job, delivery: l.row.id })), false);
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
    // The secrets of every endpoint the batch will actually send to: handed-over deliveries
    // brought theirs from ingest, sealed; one query reads the rest.
    const sending = sendable.filter((l) => !discarded(l.row));
    const secretsOf = await liveSecretsOf(deps.pool, deps.box, sending.filter((l) => !l.row.secrets).map((l) => l.row));
    for (const { row } of sending) {
      if (row.secrets && !secretsOf.has(refKey(row))) secretsOf.set(refKey(row), unsealSecrets(deps.box, row.secrets));
    }
    // Lanes per job and endpoint: a handoff carries many endpoints' deliveries, and one that
    // hangs must not hold back the others behind it.
    const byJob = new Map<string, Live[]>();
    for (const l of sendable) {
      const key = `${l.job.id}\u0000${refKey(l.row)}`;
      const lives = byJob.get(key);
      if (lives) lives.push(l);
      else byJob.set(key, [l]);
    }
    /** Sends and records `l`; false if its endpoint's share stayed full (it is not sent). */
    const sendAndRecord = async (l: Live): Promise<boolean> => {
      const endpoint = refKey(l.row);
      // A handed-over delivery holds its share from its claim; a job's takes one now, or waits
      // for one (pg-boss's job groups keep jobs to the share, but do not see handoffs).
      const fromJob = !l.job.handoff && !discarded(l.row);
      if (fromJob) {
        const share = shareOf(endpoint);
        if (!(share === true || (share !== false && (await share)))) return false;
      }
      const o = await sendOne(deps, l, secretsOf.get(endpoint) ?? [], credentials).catch((err: unknown): Outcome => {
        // A send never throws by contract; if it did, the attempt counts as a failure.
        emitter.emit('error', err as Error);
        return failedOutcome(l, err as Error);
      });
      // The endpoint has answered: a delivery waiting only to be recorded holds none of its share.
      if (fromJob) {
        adjust(sendingJobs, endpoint, -1);
        admit(endpoint);
      } else if (l.job.handoff) unclaim(l.job.handoff, l.row.id);
      releaseProject(l.row.project_id);
      // Each delivery is recorded as soon as it is done; nothing waits for the job's slowest.
      void recorder.record(o, l.job);
      return true;
    };
    // A job sends at most `shares.perJob` of its deliveries at once: with pg-boss's cap on the
    // endpoint's active jobs, that keeps endpoint_concurrency a cap on deliveries in flight (and
    // Wharf's jobs carry no more than that: queue.ts `jobSizes`). A handoff sends each of its
    // endpoints' deliveries at once.
    for (const lives of byJob.values()) {
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < lives.length) {
          const l = lives[next++]!;
          if (await sendAndRecord(l)) continue;
          // Its endpoint's share stayed full: it and the rest of its job wait as the same attempt.
          const back = [l, ...lives.slice(next)];
          next = lives.length;
          giveBack(back);
          // One delay for them, so they can share jobs again.
          const wait = PROJECT_SHARE_WAIT_SECONDS + Math.random() / 2;
          hold('endpoint_share', back.map((b) => ({ live: b, delaySeconds: wait })));
        }
      };
      // A handoff's deliveries of one endpoint all fit its share: claim counted them against it.
      const width = lives[0]!.job.handoff ? lives.length : Math.min(shares.perJob, lives.length);
      for (let i = 0; i < width; i++) track(lane());
    }
  };

  let heartbeat: NodeJS.Timeout | null = null;
  const beat = async (): Promise<void> => {
    if (held.size === 0) return;
    const jobs: string[] = [];
    const handoffs: string[] = [];
    for (const j of held.values()) (j.handoff ? handoffs : jobs).push(j.id);
    const fail = (err: unknown): void => void emitter.emit('error', err as Error);
    await Promise.all([
      jobs.length > 0 ? deps.boss.touch(DELIVERY_QUEUE, jobs).catch(fail) : undefined,
      renewHandoffs(deps.pool, handoffs).catch(fail),
    ]);
  };

  // Handoffs of processes that died: any dispatcher queues their deliveries.
  let sweeper: NodeJS.Timeout | null = null;
  const sweep = (): void => track(rescue());

  emitter.start = async () => {
    if (running) return;
    running = true;
    // Half the queue's heartbeat: a live process's jobs never look stale, a dead one's soon do.
    heartbeat = setInterval(() => void beat(), (DELIVERY_HEARTBEAT_SECONDS * 1000) / 2);
    heartbeat.unref();
    sweeper = setInterval(sweep, HANDOFF_SWEEP_SECONDS * 1000);
    sweeper.unref();
    if (options.listen) {
      const db = deps.boss.getDb();
      // A missed NOTIFY only costs a polling interval, so a listener that cannot start is not fatal.
      listener = (await db.listen?.(NOTIFY_CHANNEL, (queue) => queue === DELIVERY_QUEUE && notified(), wake).catch((err: unknown) => {
        emitter.emit('error', err as Error);
        return null;
      })) ?? null;
    }
    loop = fetchLoop();
  };

  emitter.stop = async () => {
    if (!running) return;
    running = false;
    // Deliveries waiting for a share go back as the same attempt, for whoever runs next.
    lines.flush();
    projectLines.flush();
    if (sweeper) clearInterval(sweeper);
    sweeper = null;
    if (lingering) clearTimeout(lingering);
    lingering = null;
    wake();
    await loop;
    // Beats go on while the sends in hand finish; then there is nothing left to keep alive.
    await listener?.close().catch(() => undefined);
    listener = null;
    while (tasks.size > 0) {
      await Promise.allSettled([...tasks]);
      // Settling the last deliveries can hand a failed job back to pg-boss (a task of its own).
      await recorder.drain();
    }
    await recorder.drain();
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  };

  Object.defineProperty(emitter, 'inFlight', { get: () => openDeliveries });
  return emitter;
}

/**
 * A fetched job, its deliveries' project (from its pg-boss group, the endpoint's `refKey`; null for
 * a job queued without a group, by a Wharf before job groups) and the `[delivery, attempt]` pairs
 * it asks for.
 */
interface Fetched {
  job: HeldJob;
  project: string | null;
  ds: [string, number][];
}

/** What the work query reads of each delivery `d` of `deliveries`: its event, endpoint and project joined. */
const workOf = (deliveries: string): string => `SELECT d.id, d.project_id, d.endpoint_id, d.event_id, d.status, d.attempts, d.retry, e.event_type, e.data,
            e.custom_headers, ${endpointWorkColumns('ep')}, p.settings
     FROM ${deliveries}
     JOIN events e ON e.project_id = d.project_id AND e.id = d.event_id
     JOIN endpoints ep ON ep.project_id = d.project_id AND ep.id = d.endpoint_id
     JOIN projects p ON p.id = d.project_id`;

/**
 * The work of the deliveries listed ($1 projects, $2 ids, pairwise), each looked up by the key
 * (migration 023). The subquery kept apart by OFFSET 0 is what keeps that lookup first: joined
 * plainly, a custom plan made on a table not yet analyzed started from the endpoint and read every
 * delivery of it (25 deliveries in 175–225 ms on a bench database of 21,000).
 */
export const LOAD_WORK_SQL = workOf(`unnest($1::text[], $2::uuid[]) AS k(project_id, id)
     CROSS JOIN LATERAL (SELECT * FROM deliveries d WHERE d.project_id = k.project_id AND d.id = k.id OFFSET 0) d`);

/** The same for deliveries whose project is not known: by id alone, which scans the key's index. */
const LOAD_WORK_BY_ID_SQL = `${workOf('deliveries d')}
     WHERE d.id = ANY($1::uuid[])`;

/** Loads the batch's deliveries in one transaction; deliveries with nothing to do are settled by the recorder. */
async function loadLive(deps: DispatcherDeps, fetched: Fetched[], recorder: Recorder): Promise<Live[]> {
  const known = fetched.filter((f) => f.project !== null);
  const unknown = fetched.filter((f) => f.project === null).flatMap((f) => f.ds.map(([d]) => d));
  const rows = await withTransaction(deps.pool, async (db) => {
    const { rows } = await db.query<WorkRow>(LOAD_WORK_SQL, [
      known.flatMap((f) => f.ds.map(() => f.project)),
      known.flatMap((f) => f.ds.map(([d]) => d)),
    ]);
    if (unknown.length > 0) rows.push(...(await db.query<WorkRow>(LOAD_WORK_BY_ID_SQL, [unknown])).rows);
    return rows;
  }, 'lookups');
  const byId = new Map(rows.map((r) => [r.id, r]));

  // A delivery is live only while it waits for exactly the attempt its job asks for.
  const live: Live[] = [];
  const seen = new Set<string>();
  const idle: Settled[] = [];
  for (const { job, ds } of fetched) {
    if (ds.length === 0) idle.push({ job, delivery: null });
    for (const [d, a] of ds) {
      const row = byId.get(d);
      if (seen.has(d)) idle.push({ job, delivery: null });
      else if (!row || TERMINAL.has(row.status) || row.attempts !== a - 1) idle.push({ job, delivery: d });
      else {
        seen.add(d);
        live.push({ row, attempt: a, job });
      }
    }
  }
  for (const i of idle) void recorder.skip(i);
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
  return outcomeOf(l, unanswered(`internal error before the request was sent: ${err.message}`, 'WHARF_ERR_INTERNAL'), {});
}

/**
 * Ends jobs whose every delivery is settled, in the caller's transaction. They are deleted rather
 * than completed: a completion rewrites the job row with a new entry in each of the job table's
 * indexes, and the row then stays for pg-boss's retention (a week) until its maintenance deletes it
 * anyway. Nothing reads a finished job; the delivery and its attempts are the record.
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
  /** Queues an outcome; resolves once it is committed (or given up on). */
  record(outcome: Outcome, job: HeldJob): Promise<void>;
  /** Queues a delivery of a job that had nothing to do (recorded already, finished, listed twice). */
  skip(item: Settled): Promise<void>;
  /** Queues deliveries to put back as the same attempt, each in a new job after its delay. */
  defer(items: Deferral[]): Promise<void>;
  /** Resolves when nothing is queued or being written. */
  drain(): Promise<void>;
}

/**
 * Group commit for everything that settles a delivery: whatever finished while the previous
 * transaction was being written goes into the next one, so an idle dispatcher records each
 * delivery at once and a busy one writes many per transaction. One transaction at a time: the
 * breaker locks endpoint rows, and two writers taking them in different orders could deadlock;
 * and whether a transaction settles a job's last open delivery (and so ends the job) is known
 * exactly only while nothing else settles that job's deliveries at the same time.
 */
function createRecorder(
  deps: DispatcherDeps,
  emitter: Dispatcher,
  settle: (items: Settled[], ok: boolean) => void,
  limits: {
    /** How long answers may wait for company while they come densely (dispatch.record_linger_ms). */
    lingerMs: number;
    /** The same while a pg-boss job's outcome waits (dispatch.linger_ms, the fetch's). */
    jobLingerMs: number;
    maxInFlight: number;
  },
): Recorder {
  let queue: (Settled & { outcome: Outcome | null; deferral: Deferral | null; at: number; done: () => void })[] = [];
  let writing: Promise<void> | null = null;
  // Answers that come densely wait up to lingerMs for others, so one transaction records several.
  const gaps = gapMeter(limits.lingerMs);
  // A pg-boss job's outcome waits only the fetch's linger: the job ends with its record, and until
  // then it holds one of its endpoint's places in pg-boss's job group, so a longer wait would slow
  // every backlog and retry down (a backlog of 20,000 drained at half the speed with 25 ms). A
  // handoff's place is free from the answer on.
  const jobGaps = gapMeter(limits.jobLingerMs);
  // A delivery counts against max_in_flight until it is recorded, so answers waiting here must
  // never fill it: with half of it waiting (or a full transaction's worth) the wait ends at once,
  // and new deliveries keep finding room however fast they are answered.
  const enough = Math.max(1, Math.min(MAX_RECORD_BATCH, Math.floor(limits.maxInFlight / 2)));
  // Aborted by `enqueue` to end a wait early.
  let waking: AbortController | null = null;
  const waitMs = (): number => {
    if (queue.length >= enough) return 0;
    const at = queue[0]!.at;
    const left = gaps.waitMs(at);
    return left > 0 && queue.some((e) => e.job.handoff === null) ? Math.min(left, jobGaps.waitMs(at)) : left;
  };

  const write = async (): Promise<void> => {
    while (queue.length > 0) {
      // Woken early (enough waiting, or a job's outcome), it looks again at what is left to wait.
      for (let left = waitMs(); left > 0; left = waitMs()) {
        waking = new AbortController();
        await sleep(left, waking.signal);
        waking = null;
      }
      const group = queue.slice(0, MAX_RECORD_BATCH);
      queue = queue.slice(group.length);
      const outcomes = group.flatMap((g) => (g.outcome ? [g.outcome] : []));
      const deferrals = group.flatMap((g) => (g.deferral ? [g.deferral] : []));
      const counts = perJob(group);
      // A job ends with the transaction that settles its last open delivery, unless a part of it
      // failed (it goes back to pg-boss for that part instead).
      const finished = [...counts].filter(([job, n]) => job.open === n && !job.failed).map(([job]) => job);
      let ok = true;
      try {
        // Always a transaction, even for skips that end no job (rare: stale deliveries): `write`
        // must reach an await before it returns, or `writing ??= write()` would keep its settled
        // promise and nothing queued later would be written.
        const changes = await recordOutcomes(deps, outcomes, deferrals, finished);
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
        ok = false;
      }
      for (const g of group) g.done();
      settle(group, ok);
    }
    writing = null;
  };

  const enqueue = (entries: Omit<(typeof queue)[number], 'done' | 'at'>[]): Promise<void> => {
    if (entries.length === 0) return Promise.resolve();
    const at = performance.now();
    gaps.arrive(at);
    jobGaps.arrive(at);
    const settled = Promise.all(entries.map((e) => new Promise<void>((done) => queue.push({ ...e, at, done }))));
    if (queue.length >= enough || entries.some((e) => e.job.handoff === null)) waking?.abort();
    writing ??= write();
    return settled.then(() => undefined);
  };

  return {
    record: (outcome, job) => enqueue([{ job, delivery: outcome.row.id, outcome, deferral: null }]),
    skip: (item) => enqueue([{ ...item, outcome: null, deferral: null }]),
    defer: (items) => enqueue(items.map((d) => ({ job: d.live.job, delivery: d.live.row.id, outcome: null, deferral: d }))),
    drain: async () => {
      while (writing) await writing;
    },
  };
}

/**
 * Holds back what an endpoint's rate limit does not allow now: those deliveries wait for the next
 * free slot as the same attempt (a job for later), so waiting never spends a retry. The limit is
 * counted in Postgres, so it holds across every worker and replica. Deliveries that will not be
 * sent (paused or inactive endpoints) do not count.
 */
async function withinRateLimits(deps: DispatcherDeps, live: Live[]): Promise<{ now: Live[]; later: Deferral[] }> {
  const limited = live.filter((l) => l.row.rate_limit > 0 && !discarded(l.row));
  if (limited.length === 0) return { now: live, later: [] };
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
  // A little spread per endpoint, so the deliveries held back do not all come back at the same
  // instant as other batches' (one wait per endpoint, so its held-back deliveries share jobs).
  const spread = new Map([...grants.keys()].map((k) => [k, Math.random() * 100]));
  const used = new Map<string, number>();
  const now: Live[] = [];
  const later: Deferral[] = [];
  for (const l of live) {
    const key = refKey(l.row);
    const g = l.row.rate_limit > 0 ? grants.get(key) : undefined;
    const n = used.get(key) ?? 0;
    if (!g || n < g.granted) {
      used.set(key, n + 1);
      now.push(l);
    } else {
      later.push({ live: l, delaySeconds: (g.retryAfterMs + spread.get(key)!) / 1000 });
    }
  }
  return { now, later };
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

// The recorder's statements look rows of `deliveries` up by the projects and ids they list, the
// key (migration 023): a lookup of the key for each, in a transaction that plans index lookups
// (pool.ts, `Begin`). A prepared statement's generic plan is costed with the table as it was when
// the plan was made and kept until the next ANALYZE, and a plan made while `deliveries` was tiny
// (a new database, the first minutes after a deploy) scanned the whole table at every batch as it
// grew. `prepared-statements.test.ts` checks every such statement's generic plan.

/** Deferrals: the same attempt, due again after its delay. $1 ids, $2 delays (s), $3 projects. */
export const DEFER_DELIVERIES_SQL = `UPDATE deliveries d SET next_attempt_at = now() + u.delay * interval '1 second', updated_at = now()
   FROM unnest($1::uuid[], $2::float8[], $3::text[]) AS u(id, delay, project_id) WHERE d.project_id = u.project_id AND d.id = u.id`;

/** One text of a packed bytea (store/params.ts, packTexts): `${col}_at` and `${col}_len` say where. */
const packed = (bytes: string, col: string): string => `convert_from(substring(${bytes}::bytea FROM ${col}_at FOR ${col}_len), 'UTF8')`;

/**
 * Outcomes: each delivery's state after its attempt. The attempts guard (`attempts_before`) makes
 * a concurrent duplicate of a batch a no-op rather than a double count. A first attempt the
 * recorder folds (`first_id` not NULL: `foldsFirstAttempt`) is kept in the delivery's own row
 * (migration 022), written by the same update; the others are left as they are. The row stores no
 * id for it (its id is derived from the delivery's: migration 023); `first_id` names the attempt
 * in this process only, and the update returns the one it wrote into each row; its URL, headers
 * and body come packed in one bytea ($10, attemptTexts). The same statement
 * ends the handoffs ($21) whose last deliveries it records (finishHandoffs' DELETE, without a
 * round trip of its own: a fifth of the recorder's at a steady 700/s). A data-modifying WITH runs
 * to completion whether or not the update reads it; the handoffs' sweep takes their rows with SKIP
 * LOCKED and locks no delivery, so the order of the two within the statement cannot deadlock.
 */
export const RECORD_OUTCOMES_SQL = `WITH ended AS (DELETE FROM handoffs WHERE id = ANY($21::uuid[]))
   UPDATE deliveries d SET
     status = u.status,
     attempts = d.attempts + u.sent,
     last_status_code = COALESCE(u.status_code, CASE WHEN u.sent = 1 THEN NULL ELSE d.last_status_code END),
     last_error = CASE WHEN u.sent = 1 THEN u.error ELSE d.last_error END,
     next_attempt_at = CASE WHEN u.retry_in IS NULL THEN NULL
                            ELSE now() + u.retry_in * interval '1 second' END,
     updated_at = now(),
     first_attempted_at = CASE WHEN u.first_id IS NULL THEN d.first_attempted_at ELSE now() END,
     first_status_code = CASE WHEN u.first_id IS NULL THEN d.first_status_code ELSE u.status_code END,
     first_latency_ms = CASE WHEN u.first_id IS NULL THEN d.first_latency_ms ELSE u.latency_ms END,
     first_url = CASE WHEN u.first_id IS NULL THEN d.first_url ELSE ${packed('$10', 'u.url')} END,
     first_request_headers = CASE WHEN u.first_id IS NULL THEN d.first_request_headers ELSE ${packed('$10', 'u.rq')}::jsonb END,
     first_response_headers = CASE WHEN u.first_id IS NULL THEN d.first_response_headers ELSE ${packed('$10', 'u.rs')}::jsonb END,
     first_response_body = CASE WHEN u.first_id IS NULL THEN d.first_response_body ELSE ${packed('$10', 'u.body')} END,
     first_error = CASE WHEN u.first_id IS NULL THEN d.first_error ELSE u.error END,
     first_error_code = CASE WHEN u.first_id IS NULL THEN d.first_error_code ELSE u.error_code END
   FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::float8[], $7::int[],
     $8::uuid[], $9::int[], $11::int[], $12::int[], $13::int[], $14::int[], $15::int[], $16::int[], $17::int[], $18::int[],
     $19::text[], $20::text[])
     AS u(id, status, sent, status_code, error, retry_in, attempts_before,
          first_id, latency_ms, url_at, url_len, rq_at, rq_len, rs_at, rs_len, body_at, body_len, error_code, project_id)
   WHERE d.project_id = u.project_id AND d.id = u.id AND d.attempts = u.attempts_before
   RETURNING d.id, u.first_id AS folded`;

/**
 * Attempts kept as rows of their own, for the deliveries that still exist ($17: their projects, to
 * find them by the key), their URL, headers and body packed in one bytea ($4, attemptTexts). Their
 * project and endpoint are the delivery's, not written again (migration 020).
 */
export const RECORD_ATTEMPTS_SQL = `INSERT INTO delivery_attempts (id, delivery_id, attempt, url, request_headers,
     status_code, latency_ms, response_headers, response_body, error, error_code)
   SELECT u.id, u.delivery_id, u.attempt, ${packed('$4', 'u.url')}, ${packed('$4', 'u.rq')}::jsonb, u.status_code, u.latency_ms,
     ${packed('$4', 'u.rs')}::jsonb, ${packed('$4', 'u.body')}, u.error, u.error_code
   FROM unnest($1::uuid[], $2::uuid[], $3::int[], $5::int[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[], $11::int[], $12::int[],
     $13::int[], $14::int[], $15::text[], $16::text[], $17::text[])
     AS u(id, delivery_id, attempt, url_at, url_len, rq_at, rq_len, rs_at, rs_len, body_at, body_len,
          status_code, latency_ms, error, error_code, project_id)
   WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.project_id = u.project_id AND d.id = u.delivery_id)`;

/**
 * A first attempt is folded into its delivery's row only when made within FOLD_WITHIN_MS
 * (retention.ts) of its delivery, and only when its stored text is this short: a page of
 * `deliveries` takes rows up to a fifth of its size at insert (fillfactor 20, migration 022), about
 * nine (8.7 measured), and must hold each one's longer version as well for the update to stay HOT. A longer one
 * (a large response body) is a row of delivery_attempts.
 */
export const FOLD_MAX_CHARS = 400;

/** An attempt's fields as stored. */
interface StoredAttempt {
  o: Outcome;
  id: string;
  requestHeaders: string;
  responseHeaders: string;
  responseBody: string;
}

/**
 * The texts of attempts (null: none, a NULL in each) as the recorder's statements take them: one
 * bytea, then where its URL, request headers, response headers and response body are in it
 * (packTexts, store/params.ts: JSON headers are full of quotes, which an array literal escapes).
 */
function attemptTexts(attempts: readonly (StoredAttempt | null)[]): [Buffer, string, string, string, string, string, string, string, string] {
  const texts: (string | null)[] = [];
  for (const a of attempts) texts.push(a?.o.url ?? null, a?.requestHeaders ?? null, a?.responseHeaders ?? null, a?.responseBody ?? null);
  const p = packTexts(texts);
  // Each attempt's four texts are consecutive: the k-th of attempt i is the (4i+k)-th.
  const nth = (k: number) => {
    const pick = (all: readonly (number | null)[]) => intArray(attempts.map((_, i) => all[4 * i + k] ?? null));
    return [pick(p.starts), pick(p.lengths)] as const;
  };
  return [p.bytes, ...nth(0), ...nth(1), ...nth(2), ...nth(3)];
}

/**
 * Whether `a` is kept in its delivery's row (migration 022): a first attempt, made within
 * FOLD_WITHIN_MS of its delivery (retention finds it by the delivery's id: retention.ts), whose
 * stored text is at most FOLD_MAX_CHARS.
 */
export function foldsFirstAttempt(a: StoredAttempt, now: number): boolean {
  if (a.o.attempt !== 1) return false;
  const made = uuidv7Time(a.o.row.id);
  if (made === null || now - made > FOLD_WITHIN_MS) return false;
  const r = a.o.result!;
  const chars = a.o.url.length + a.requestHeaders.length + a.responseHeaders.length + a.responseBody.length + (r.error?.length ?? 0) + (r.errorCode?.length ?? 0);
  return chars <= FOLD_MAX_CHARS;
}

/**
 * Settles a group of deliveries in one transaction: outcomes (attempt rows, the delivery's state,
 * its next attempt's job, the breaker and alerts), deferrals (the same attempt in a new job after
 * its delay) and the end of the jobs whose last open delivery is among them.
 */
async function recordOutcomes(deps: DispatcherDeps, outcomes: Outcome[], deferrals: Deferral[], finished: HeldJob[]): Promise<EndpointChange[]> {
  const sent = outcomes.filter((o) => o.result !== null);
  return withTransaction(deps.pool, async (client) => {
    // The jobs end with the last of what they asked for: a crash before this commit leaves them
    // active for pg-boss to hand out again (a handoff: its lease runs out), and one after it
    // finds them done.
    await finishJobs(deps, client, finished.filter((j) => !j.handoff).map((j) => j.id));
    const handoffs = finished.filter((j) => j.handoff).map((j) => j.id);
    // With outcomes to record, their statement ends the handoffs too (RECORD_OUTCOMES_SQL).
    if (outcomes.length === 0) await finishHandoffs(client, handoffs);
    const deferred: DeliveryJobInsert[] = [];
    if (deferrals.length > 0) {
      // The delivery shows when it will go, and a new job waits for it. If this process dies (or a
      // later record of the same job fails) before the job that listed it ends, pg-boss hands that
      // job out again while the delivery still waits for this attempt, so it can be sent by both
      // jobs: a duplicate, never a loss (at least once; one job per delivery could not do this).
      await client.query(DEFER_DELIVERIES_SQL, [deferrals.map((i) => i.live.row.id), deferrals.map((i) => i.delaySeconds), deferrals.map((i) => i.live.row.project_id)]);
      for (const { live, delaySeconds } of deferrals) deferred.push({ delivery_id: live.row.id, attempt: live.attempt, delaySeconds, endpoint: refKey(live.row) });
    }
    if (outcomes.length === 0) {
      await enqueueDeliveries(deps.boss, client, deferred);
      return [];
    }
    const stored: StoredAttempt[] = sent.map((o) => ({
      o,
      id: uuidv7(),
      requestHeaders: JSON.stringify(storedRequestHeaders(o.requestHeaders, { eventId: o.row.event_id, deliveryId: o.row.id, eventType: o.row.event_type })),
      responseHeaders: JSON.stringify(o.result!.responseHeaders),
      // Postgres text cannot hold NUL; a binary answer is kept readable rather than rejected.
      responseBody: o.result!.responseBody.replaceAll('\u0000', '\uFFFD'),
    }));
    const now = Date.now();
    const folds = new Map(stored.filter((a) => foldsFirstAttempt(a, now)).map((a) => [a.o, a]));
    const fold = (o: Outcome) => folds.get(o);
    const folded = attemptTexts(outcomes.map((o) => fold(o) ?? null));
    const { rows: updated } = await client.query<{ id: string; folded: string | null }>(
      RECORD_OUTCOMES_SQL,
      [
        uuidArray(outcomes.map((o) => o.row.id)),
        textArray(outcomes.map((o) => o.status)),
        intArray(outcomes.map((o) => (o.result ? 1 : 0))),
        intArray(outcomes.map((o) => o.result?.statusCode ?? null)),
        textArray(outcomes.map((o) => o.result?.error ?? null)),
        floatArray(outcomes.map((o) => o.retryIn)),
        intArray(outcomes.map((o) => o.attempt - 1)),
        uuidArray(outcomes.map((o) => fold(o)?.id ?? null)),
        intArray(outcomes.map((o) => (fold(o) ? o.result!.latencyMs : null))),
        ...folded,
        textArray(outcomes.map((o) => (fold(o) ? o.result!.errorCode : null))),
        textArray(outcomes.map((o) => o.row.project_id)),
        uuidArray(handoffs),
      ],
    );
    const applied = new Set(updated.map((r) => r.id));
    // Every send is kept, a duplicate's too, but only for a delivery that still exists (no foreign
    // key checks it: migration 017). The update above holds the row of each delivery it applied
    // to until commit, so a delivery deleted meanwhile takes these attempts with it. Every attempt
    // but those the update wrote into their delivery is a row of its own: a folded one whose update
    // did not apply (a duplicate's), or lost to another outcome of the same delivery in the batch.
    const inRow = new Set(updated.map((r) => r.folded));
    const rows = stored.filter((a) => !inRow.has(a.id));
    if (rows.length > 0) {
      await client.query(
        RECORD_ATTEMPTS_SQL,
        [
          uuidArray(rows.map((a) => a.id)),
          uuidArray(rows.map((a) => a.o.row.id)),
          intArray(rows.map((a) => a.o.attempt)),
          ...attemptTexts(rows),
          intArray(rows.map((a) => a.o.result!.statusCode)),
          intArray(rows.map((a) => a.o.result!.latencyMs)),
          textArray(rows.map((a) => a.o.result!.error)),
          textArray(rows.map((a) => a.o.result!.errorCode)),
          textArray(rows.map((a) => a.o.row.project_id)),
        ],
      );
    }
    const next: DeliveryJobInsert[] = outcomes
      .filter((o) => o.retryIn !== null && applied.has(o.row.id))
      .map((o) => ({ delivery_id: o.row.id, attempt: o.attempt + 1, delaySeconds: o.retryIn!, endpoint: refKey(o.row) }));
    await enqueueDeliveries(deps.boss, client, [...deferred, ...next]);
    const { changes, failing } = await endpointChanges(client, sent.filter((o) => applied.has(o.row.id)));
    // One round of alerts for the batch: its state changes and its failing streaks.
    const happened = await transition(client, changes);
    await recordAlerts(deps, client, [...statusAlerts(happened), ...failing]);
    return happened;
  }, 'lookups');
}
