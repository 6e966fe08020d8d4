import type { PgBoss } from 'pg-boss';
import type { Queryable } from '../store/queryable.ts';

/** One pg-boss queue carries every delivery attempt. */
export const DELIVERY_QUEUE = 'wharf-deliver';

/**
 * A job asks for attempt `a` of each delivery `d` it lists (`ds`: `[d, a]` pairs, all of one
 * endpoint). The worker sends a delivery only while it has made exactly a − 1 attempts, so a job
 * that pg-boss hands out twice (worker crash, expiry) or one made stale by a resend does nothing
 * for the deliveries already recorded. One job carries up to `MAX_DELIVERIES_PER_JOB`: pg-boss's
 * job row (inserted, claimed and deleted in a table of 17 indexes) was most of the database's
 * work per webhook when every delivery had its own.
 */
export interface DeliveryJob {
  ds: [string, number][];
}

/** The job of one delivery, as Wharf before packed jobs queued it: still run, for an upgrade's backlog. */
export interface LegacyDeliveryJob {
  d: string;
  a: number;
}

export type DeliveryJobData = DeliveryJob | LegacyDeliveryJob;

/**
 * Deliveries one job carries at most. With `MIN_ENDPOINT_JOBS` it sets how much of one endpoint
 * can be in hand: jobs × this = endpoint_concurrency at the default of 128, so an endpoint that
 * hangs holds no more of the process's max_in_flight than when every delivery had its own job.
 * Measured (docs/cost-per-webhook.md, "Packed jobs"): 16 writes fewer job rows but, with half as many jobs of an
 * endpoint at once, a busy endpoint's deliveries waited for their jobs' slowest.
 */
export const MAX_DELIVERIES_PER_JOB = 8;

/** The `[delivery, attempt]` pairs a job asks for, whichever shape it was queued in. */
export const deliveriesOfJob = (data: DeliveryJobData): [string, number][] => ('ds' in data ? data.ds : [[data.d, data.a]]);

/**
 * Jobs of one endpoint pg-boss lets run at once stay at least this many (or `endpoint_concurrency`
 * if lower): sparse traffic makes jobs of one delivery, and few large slots would cap a slow
 * endpoint's sparse traffic at one or two requests at a time; and a job ends only with its slowest
 * delivery's record, so a busy endpoint needs enough jobs under way to keep its deliveries moving.
 */
const MIN_ENDPOINT_JOBS = 16;

/**
 * How `endpoint_concurrency` (deliveries of one endpoint in flight across every replica) is kept
 * now that a job carries many: pg-boss lets `jobs` of one endpoint be active at once (it counts
 * jobs, not deliveries), and a job sends at most `perJob` of its deliveries at a time, so at most
 * jobs × perJob ≤ endpoint_concurrency requests are open. Wharf's jobs carry perJob deliveries
 * (createDeliveryQueue), so their deliveries in hand are at most endpoint_concurrency too; a job
 * queued before that (or by a replica with a larger share) may carry up to MAX_DELIVERIES_PER_JOB
 * and then sends a share at a time.
 */
export function endpointShares(endpointConcurrency: number): { jobs: number; perJob: number } {
  const perJob = Math.max(1, Math.min(MAX_DELIVERIES_PER_JOB, Math.floor(endpointConcurrency / MIN_ENDPOINT_JOBS)));
  return { jobs: Math.max(1, Math.floor(endpointConcurrency / perJob)), perJob };
}

export interface DeliveryJobInsert {
  delivery_id: string;
  attempt: number;
  /**
   * The endpoint's `refKey` (project/endpoint): the job's pg-boss group, which caps how many of one
   * endpoint's deliveries are in flight at once across every replica (a hung endpoint holds only its
   * own share of the dispatcher).
   */
  endpoint: string;
  /** Seconds from now; 0 or absent means as soon as possible. */
  delaySeconds?: number;
}

/**
 * A dispatcher touches the jobs it holds every half of this; pg-boss's supervisor (every
 * `SUPERVISE_SECONDS`) fails a job whose heartbeat is older, and retries it after 2 s. So a
 * delivery held by a process that died is attempted again within about 10 + 10 + 2 s.
 */
export const DELIVERY_HEARTBEAT_SECONDS = 10;
/** How often pg-boss's supervisor looks for stale heartbeats and expired jobs (its `superviseIntervalSeconds`). */
export const SUPERVISE_SECONDS = 10;

const DELIVERY_QUEUE_OPTIONS = {
  // These retries cover a worker that died or a database that failed mid-batch, never an
  // endpoint's failure: those are scheduled by the dispatcher as new jobs.
  retryLimit: 20,
  retryDelay: 2,
  retryBackoff: true,
  retryDelayMax: 300,
  expireInSeconds: 900,
  heartbeatSeconds: DELIVERY_HEARTBEAT_SECONDS,
  notify: true,
};

/**
 * Deliveries one job of each `PgBoss` carries, set where its queue is made (createDeliveryQueue):
 * the endpoint's share of a job (`endpointShares(endpoint_concurrency).perJob`), so that a job's
 * deliveries all go at once. A job of more would send them a share at a time, one after the
 * other, and an endpoint with a small share would go as slowly as its jobs were few.
 */
const jobSizes = new WeakMap<PgBoss, number>();

/** Makes (or updates) the delivery queue; the jobs this `boss` queues fit `endpointConcurrency`'s share of a job. */
export async function createDeliveryQueue(boss: PgBoss, endpointConcurrency: number): Promise<void> {
  jobSizes.set(boss, endpointShares(endpointConcurrency).perJob);
  await boss.createQueue(DELIVERY_QUEUE, DELIVERY_QUEUE_OPTIONS);
  // A queue made by an older Wharf takes today's options (the heartbeat above all).
  await boss.updateQueue(DELIVERY_QUEUE, DELIVERY_QUEUE_OPTIONS);
}

/** pg-boss's executor over the caller's connection, so its jobs join the caller's transaction. */
export const executorOf = (db: Queryable) => ({ executeSql: (text: string, values?: unknown[]) => db.query(text, values) });

/** Inserts jobs in the caller's transaction, each runnable `delaySeconds` from now (0 or absent: at once). */
export async function insertJobs<T extends object>(boss: PgBoss, db: Queryable, queue: string, jobs: { data: T; delaySeconds?: number; group?: string }[]): Promise<void> {
  if (jobs.length === 0) return;
  await boss.insert(
    queue,
    jobs.map((j) => ({
      data: j.data,
      ...(j.delaySeconds ? { startAfter: new Date(Date.now() + j.delaySeconds * 1000) } : {}),
      ...(j.group ? { group: { id: j.group } } : {}),
    })),
    { db: executorOf(db) },
  );
}

/**
 * Enqueues inside the caller's transaction, so jobs exist exactly when their deliveries do.
 * Deliveries of one endpoint due at the same moment share jobs of up to the queue's job size
 * (`jobSizes`; `MAX_DELIVERIES_PER_JOB` at the default endpoint_concurrency).
 */
export async function enqueueDeliveries(boss: PgBoss, db: Queryable, jobs: DeliveryJobInsert[]): Promise<void> {
  const size = jobSizes.get(boss) ?? MAX_DELIVERIES_PER_JOB;
  const groups = new Map<string, { endpoint: string; delaySeconds?: number; ds: [string, number][] }>();
  for (const j of jobs) {
    const key = `${j.endpoint}\u0000${j.delaySeconds ?? 0}`;
    let g = groups.get(key);
    if (!g) {
      g = { endpoint: j.endpoint, delaySeconds: j.delaySeconds, ds: [] };
      groups.set(key, g);
    }
    g.ds.push([j.delivery_id, j.attempt]);
  }
  const packed: { data: DeliveryJob; delaySeconds?: number; group: string }[] = [];
  for (const g of groups.values()) {
    for (let i = 0; i < g.ds.length; i += size) {
      packed.push({ data: { ds: g.ds.slice(i, i + size) }, delaySeconds: g.delaySeconds, group: g.endpoint });
    }
  }
  await insertJobs(boss, db, DELIVERY_QUEUE, packed);
}
