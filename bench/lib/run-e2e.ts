/**
 * Runs bench/e2e.ts as a child process with the given arguments and returns the result it prints
 * as one JSON line last. One piece of code runs e2e.ts for the other benchmarks: the REST baseline
 * of bench/brokers.ts and the runs of bench/report.ts. With `echo` the child's output is passed
 * through as it comes (its JSON line left out), so a long run shows its progress.
 */
import { spawn } from 'node:child_process';

/** The fields of e2e.ts's JSON line that its callers read. */
export interface E2eResult {
  delivered_per_s: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  counts: { delivered: number };
  peak_rss_mib: { vmhwm: number };
  cpu_s: { wall: number; machine_busy: number; machine_capacity: number; wharf: number; bench: number; postgres: number };
  cpu_calibration_ms: { before: number; after: number };
  probe: { commits_per_s: number; delivered_ratio: number } | null;
  per_webhook: { postgres_cpu_us: number; wal_bytes: number; wharf_cpu_us: number };
  purge: { rows: number; finished: boolean; seconds: number; p99_during_ms: number; events_during: number } | null;
  [field: string]: unknown;
}

export async function runE2e(args: string[], o: { echo?: boolean } = {}): Promise<E2eResult> {
  const child = spawn(process.execPath, [new URL('../e2e.ts', import.meta.url).pathname, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    if (!o.echo) return;
    pending += c;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (!line.startsWith('{')) process.stdout.write(`${line}\n`);
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  // e2e.ts exits 1 when a delivery is missing after its drain timeout.
  const last = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`bench/e2e.ts ${args.join(' ')} exited with ${code}:\n${out.slice(-2000)}`);
  return JSON.parse(last) as E2eResult;
}
