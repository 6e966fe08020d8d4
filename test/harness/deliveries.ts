/** Endpoints, events and delivery jobs made and read directly, for the dispatcher's tests. */
import { expect } from 'vitest';
import type { TestApp } from './app.ts';
import { DELIVERY_QUEUE } from '../../src/dispatch/queue.ts';
import type { EventInput } from '../../src/core/types.ts';

/** An endpoint of the default project, made through the API (`fields`: more of its body, e.g. its secret). */
export async function endpoint(t: TestApp, name: string, url: string, fields: Record<string, unknown> = {}): Promise<string> {
  const res = await t.api('POST', '/endpoints', { name, url, skip_ping_validation: true, ...fields });
  expect(res.status, res.text).toBe(201);
  return res.body.data.uid as string;
}

/** n events of the default project for one endpoint, tagged. */
export const inputs = (endpointId: string, n: number, tag: string): EventInput[] =>
  Array.from({ length: n }, (_, i) => ({
    project_id: 'default',
    source_id: null,
    message_type: 'single' as const,
    endpoint_id: endpointId,
    event_type: 'packed.test',
    data: JSON.stringify({ tag, i }),
    custom_headers: {},
    idempotency_key: null,
  }));

/** The delivery jobs waiting or active: their group and how many deliveries each carries. */
export async function jobs(t: TestApp): Promise<{ group_id: string; n: number; state: string }[]> {
  const { rows } = await t.app.pool.query<{ group_id: string; n: number; state: string }>(
    `SELECT group_id, jsonb_array_length(data->'ds') AS n, state FROM pgboss.job WHERE name = $1 ORDER BY group_id, n DESC`,
    [DELIVERY_QUEUE],
  );
  return rows;
}

/** Wharf's count of deliveries put back as the same attempt for `reason` (wharf_dispatch_held_back_total). */
export async function heldBack(t: TestApp, reason: 'endpoint_share' | 'project_share' | 'rate_limit'): Promise<number> {
  const text = (await t.operator('GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`wharf_dispatch_held_back_total{reason="${reason}"} `));
  if (!line) throw new Error(`/metrics has no wharf_dispatch_held_back_total for ${reason}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}
