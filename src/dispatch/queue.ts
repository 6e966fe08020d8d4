import type { PgBoss } from 'pg-boss';
import type { Queryable } from '../store/queryable.ts';

/** One pg-boss queue carries every delivery attempt. */
export const DELIVERY_QUEUE = 'wharf-deliver';

/**
 * A job asks for attempt `a` of delivery `d`. The worker runs it only while the delivery has made
 * exactly a − 1 attempts, so a job that pg-boss hands out twice (worker crash, expiry) or one made
 * stale by a resend does nothing.
 */
export interface DeliveryJob {
  d: string;
  a: number;
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

export async function createDeliveryQueue(boss: PgBoss): Promise<void> {
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

/** Enqueues inside the caller's transaction, so jobs exist exactly when their deliveries do. */
export async function enqueueDeliveries(boss: PgBoss, db: Queryable, jobs: DeliveryJobInsert[]): Promise<void> {
  await insertJobs(boss, db, DELIVERY_QUEUE, jobs.map((j) => ({ data: { d: j.delivery_id, a: j.attempt } satisfies DeliveryJob, delaySeconds: j.delaySeconds, group: j.endpoint })));
}
