import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface TestApp {
  app: App;
  url: string;
  apiKey: string;
  db: TestDatabase;
  /** Calls the REST API of `project` with the test key; returns status and parsed JSON. */
  api<T = any>(method: string, path: string, body?: unknown, project?: string): Promise<{ status: number; body: { status: boolean; message: string; data: T } }>;
  stop(): Promise<void>;
}

export interface TestAppOptions {
  kind?: 'postgres' | 'embedded';
  /** Projects as they would appear in YAML; each gets the test API key. */
  projects?: Record<string, unknown>[];
  dispatch?: Record<string, unknown>;
}

/** Starts Wharf in-process on a fresh database, from a YAML file written for the test. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = await createTestDatabase(options.kind ?? 'postgres');
  const dir = mkdtempSync(join(tmpdir(), 'wharf-app-'));
  const apiKey = `test_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const projects = (options.projects ?? [{ id: 'default', name: 'Default' }]).map((p) => ({ ...p, api_keys: [apiKey] }));
  const file = join(dir, 'wharf.yaml');
  writeFileSync(
    file,
    stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { url: db.url },
      data_dir: join(dir, 'data'),
      log: { level: process.env.WHARF_TEST_LOG ?? 'silent' },
      dispatch: { polling_interval: 0.5, ...options.dispatch },
      projects,
    }),
  );
  const { config } = loadConfig({ file, env: {} });
  const app = createApp({ config, configFile: file, logger: pino({ level: config.log.level }) });
  try {
    await app.start();
  } catch (err) {
    await app.stop().catch(() => undefined);
    await db.drop();
    throw err;
  }
  return {
    app,
    url: app.url,
    apiKey,
    db,
    async api(method, path, body, project = 'default') {
      const res = await fetch(`${app.url}/api/v1/projects/${project}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as never };
    },
    async stop() {
      await app.stop();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
