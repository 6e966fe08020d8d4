/** Starts Wharf for bench/e2e.ts, in a child process (default) or in the benchmark's own process. */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import type { Role } from '../../src/app.ts';
import { NODE_FLAGS } from '../../src/node-flags.ts';
import { procCpuMs, procMemory, type CpuPart } from './procfs.ts';

export interface WharfSettings {
  where: 'child' | 'inproc';
  dbUrl: string;
  apiKey: string;
  poolSize: number;
  dispatch: { batch_size: number; max_in_flight: number; endpoint_concurrency: number; polling_interval: number; linger_ms?: number; record_linger_ms?: number };
  /** ingest.linger_ms; Wharf's default unless given. */
  ingestLingerMs?: number;
  /** Directory for a V8 CPU profile of the child (child only). */
  cpuProfDir?: string;
  /** Extra Node flags for the child, after Wharf's own (src/node-flags.ts; a later flag wins). */
  nodeFlags?: string[];
  /** File the child's per-statement pg timing table is written to (child only; see pg-timing.ts). */
  pgTimingFile?: string;
  /** File the child's sampled allocations are written to (child only; see heap-sample.ts). */
  heapSampleFile?: string;
  /** Broker types the API may create sources of (ingest.api_broker_types; bench/brokers.ts). */
  apiBrokerTypes?: string[];
  /** The child's log level (config `log.level`); silent unless asked, so its lines do not mix with the figures. */
  logLevel?: string;
}

export interface RunningWharf {
  url: string;
  pid: number;
  /** RSS now and the peak the kernel saw (VmHWM), bytes. In-process: the whole benchmark process. */
  memory(): { rss: number; hwm: number };
  /** CPU time used so far (or its user part), ms. In-process: the whole benchmark process. */
  cpuMs(part?: CpuPart): number;
  /** Wharf's `wharf_dispatch_*` counters now, by name and labels as exposed (`name{label="value"}`). */
  dispatchCounters(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** Opens the child's GET /metrics (server.operator_token). */
const OPERATOR_TOKEN = 'bench-operator-token-0123456789abcdef';

async function dispatchCounters(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
  const counters = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line.startsWith('wharf_dispatch_')) continue;
    const space = line.lastIndexOf(' ');
    counters.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return counters;
}

function writeConfig(dir: string, s: WharfSettings): string {
  const file = join(dir, 'wharf.yaml');
  writeFileSync(
    file,
    stringify({
      server: { host: '127.0.0.1', port: 0, operator_token: OPERATOR_TOKEN },
      database: { url: s.dbUrl, pool_size: s.poolSize },
      data_dir: join(dir, 'data'),
      // Fixed so that a second process (role dispatch) can read secrets the first one stored.
      encryption_key: '6a'.repeat(32),
      log: { level: s.logLevel ?? 'silent' },
      // The sink is on loopback; say so, for when egress filtering is enforced.
      egress: { allow: ['127.0.0.1/32'] },
      dispatch: { ...s.dispatch, shutdown_timeout: 30 },
      ingest: {
        ...(s.apiBrokerTypes ? { api_broker_types: s.apiBrokerTypes } : {}),
        ...(s.ingestLingerMs === undefined ? {} : { linger_ms: s.ingestLingerMs }),
      },
      projects: [{ id: 'default', name: 'Default', api_keys: [s.apiKey] }],
    }),
  );
  return file;
}

export async function startWharf(s: WharfSettings, role: Role = 'all'): Promise<RunningWharf> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-bench-'));
  const file = writeConfig(dir, s);
  try {
    return s.where === 'child' ? await startChild(s, file, role, dir) : await startInProcess(file, role, dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function startInProcess(file: string, role: Role, dir: string): Promise<RunningWharf> {
  const { createApp } = await import('../../src/app.ts');
  const { loadConfig } = await import('../../src/config/load.ts');
  const { config } = loadConfig({ file, env: {} });
  const app = createApp({ config, configFile: file, logger: pino({ level: 'silent' }), role });
  try {
    await app.start();
  } catch (err) {
    await app.stop().catch(() => undefined);
    throw err;
  }
  return {
    url: app.url,
    pid: process.pid,
    memory: () => ({ rss: process.memoryUsage().rss, hwm: procMemory(process.pid)?.hwm ?? 0 }),
    cpuMs: (part = 'all') => {
      const u = process.cpuUsage();
      return (u.user + (part === 'all' ? u.system : 0)) / 1000;
    },
    dispatchCounters: () => dispatchCounters(app.url),
    async stop() {
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startChild(s: WharfSettings, file: string, role: Role, dir: string): Promise<RunningWharf> {
  // The flags Wharf is started with in production; in-process, the benchmark's own flags apply.
  const execArgv = [...NODE_FLAGS, ...(s.nodeFlags ?? [])];
  if (s.cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${s.cpuProfDir}`);
  const env = { ...process.env };
  if (s.pgTimingFile) {
    execArgv.push('--import', new URL('./pg-timing.ts', import.meta.url).href);
    env.WHARF_BENCH_PG_TIMING = `${s.pgTimingFile}.${role}.json`;
  }
  if (s.heapSampleFile) {
    execArgv.push('--import', new URL('./heap-sample.ts', import.meta.url).href);
    env.WHARF_BENCH_HEAP_SAMPLE = `${s.heapSampleFile}.${role}.heapprofile`;
  }
  const child: ChildProcess = fork(new URL('./wharf-child.ts', import.meta.url), [file, role], {
    execArgv,
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Wharf child did not report ready within 60 s')), 60_000);
    child.on('message', (m: { type?: string; url?: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve(m.url ?? '');
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`Wharf child exited with ${code} before it was ready`));
    });
  });
  const pid = child.pid!;
  let last = { rss: 0, hwm: 0 };
  const lastCpu: Record<CpuPart, number> = { all: 0, user: 0 };
  return {
    url,
    pid,
    memory: () => (last = procMemory(pid) ?? last),
    cpuMs: (part = 'all') => (lastCpu[part] = procCpuMs(pid, part) ?? lastCpu[part]),
    dispatchCounters: () => dispatchCounters(url),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.send({ type: 'stop' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
        const code = await exited;
        clearTimeout(timer);
        if (code !== 0) console.error(`Wharf child exited with ${code}`);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
