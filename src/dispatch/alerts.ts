import type { PgBoss } from 'pg-boss';
import type { EndpointStatus } from '../core/types.ts';
import type { Queryable } from '../store/queryable.ts';
import type { EndpointChange } from './operations.ts';

/** Queues the alerts for endpoint state changes, in the caller's transaction. */
export async function recordStatusAlerts(_boss: PgBoss, _db: Queryable, _changes: (EndpointChange & { previous: EndpointStatus })[]): Promise<void> {}
