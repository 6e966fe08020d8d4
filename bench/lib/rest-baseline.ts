/**
 * The REST path as a baseline for bench/brokers.ts: runs bench/e2e.ts itself (`--mode max`, a
 * closed loop of 64 POSTs in flight, its own Wharf child, database and sink) with the same message
 * count, warm-up and payload, and returns what it measured. One piece of code measures REST.
 */
import { runE2e } from './run-e2e.ts';

export interface RestResult {
  delivered_per_s: number;
  wharf_cpu_us: number;
  peak_rss_mib: number;
}

export async function measureRest(o: { events: number; warmup: number; payloadBytes: number }): Promise<RestResult> {
  const args = ['--mode', 'max', '--events', String(o.events), '--warmup', String(o.warmup), '--payload-bytes', String(o.payloadBytes), '--probe-seconds', '0'];
  const r = await runE2e(args);
  return { delivered_per_s: r.delivered_per_s, wharf_cpu_us: r.per_webhook.wharf_cpu_us, peak_rss_mib: r.peak_rss_mib.vmhwm };
}
