/**
 * The REST path as a baseline for bench/brokers.ts: runs bench/e2e.ts itself (`--mode max`, a
 * closed loop of 64 POSTs in flight, its own Wharf child, database and sink) with the same message
 * count, warm-up and payload, and returns what it measured. One piece of code measures REST.
 */
import { spawn } from 'node:child_process';

export interface RestResult {
  delivered_per_s: number;
  wharf_cpu_us: number;
  peak_rss_mib: number;
}

export async function measureRest(o: { events: number; warmup: number; payloadBytes: number }): Promise<RestResult> {
  const args = ['--mode', 'max', '--events', String(o.events), '--warmup', String(o.warmup), '--payload-bytes', String(o.payloadBytes), '--probe-seconds', '0'];
  const child = spawn(process.execPath, [new URL('../e2e.ts', import.meta.url).pathname, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  // e2e.ts prints its result as one JSON line last, and exits 1 when a delivery is missing.
  const last = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`bench/e2e.ts ${args.join(' ')} exited with ${code}:\n${out.slice(-2000)}`);
  const r = JSON.parse(last) as { delivered_per_s: number; per_webhook: { wharf_cpu_us: number }; peak_rss_mib: { vmhwm: number } };
  return { delivered_per_s: r.delivered_per_s, wharf_cpu_us: r.per_webhook.wharf_cpu_us, peak_rss_mib: r.peak_rss_mib.vmhwm };
}
