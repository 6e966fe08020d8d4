import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { stringify } from 'yaml';
import { createApp, type App, type Role } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface RawResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON, or null when the answer is not JSON. */
  body: any;
  text: string;
}

export interface RequestOptions {
  /** Sent as JSON with `content-type: application/json` unless `raw` is given. */
  body?: unknown;
  /** Sent as is; set the content-type yourself in `headers`. */
  raw?: string;
  /** `null` removes the Authorization header; a string replaces it. */
  authorization?: string | null;
  headers?: Record<string, string>;
}

export interface TestApp {
  app: App;
  url: string;
  /** The YAML file the app was started from (another process can start from it too). */
  configFile: string;
  db: TestDatabase;
  /** Each project's own API key, by project id. */
  keys: Record<string, string>;
  /** The first project's key. */
  apiKey: string;
  /** Stops Wharf (like a SIGTERM) and starts a new one on the same database and config; `app` and `url` change. */
  restart(): Promise<void>;
  /** Any request to the server (path from the root, e.g. `/healthz`); no auth unless given. */
  request(method: string, path: string, options?: RequestOptions): Promise<RawResponse>;
  /** `server.operator_token` of this app (opens /metrics and /readyz's details). */
  operatorToken: string;
  /** Any request with the operator's token (e.g. `/metrics`, `/readyz`). */
  operator(method: string, path: string): Promise<RawResponse>;
  /** Calls `/api/v1/projects/{project}{path}` with that project's key. */
  api(method: string, path: string, body?: unknown, project?: string): Promise<RawResponse>;
  stop(): Promise<void>;
}

export interface TestAppOptions {
  kind?: 'postgres' | 'embedded';
  /** Projects as they would appear in YAML (default: one project `default`); each gets an API key of its own. */
  projects?: Record<string, unknown>[];
  /** Merged into `server:` (e.g. `{ body_limit: 4096 }`). */
  server?: Record<string, unknown>;
  dispatch?: Record<string, unknown>;
  /** Replaces `egress:` (tests allow loopback unless given). */
  egress?: Record<string, unknown>;
  /** Merged into `ingest:` (sources are reloaded every 0.25 s in tests unless given). */
  ingest?: Record<string, unknown>;
  /** `portal:` settings (e.g. `{ session_minutes: 1 }`). */
  portal?: Record<string, unknown>;
  /** `dashboard:` settings (e.g. `{ session_seconds: 2 }`). */
  dashboard?: Record<string, unknown>;
  /** `--role` (default all). */
  role?: Role;
  /** The database URL Wharf is given, from the test database's (e.g. through a TcpRelay). */
  databaseUrl?: (url: string) => string;
  /** Collects Wharf's log lines (JSON, level info and up) here, rather than logging at `WHARF_TEST_LOG`. */
  logLines?: string[];
}

/**
 * Starts Wharf in-process on a fresh database, from a YAML file written for the test. Every
 * project gets a distinct API key (a key opens one project only).
 */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const db = await createTestDatabase(options.kind ?? 'postgres', { migrated: true });
  const dir = mkdtempSync(join(tmpdir(), 'wharf-app-'));
  const keys: Record<string, string> = {};
  const projects = (options.projects ?? [{ id: 'default', name: 'Default' }]).map((p) => {
    const key = `test_${randomBytes(18).toString('hex')}`;
    keys[String(p.id)] = key;
    return { ...p, api_keys: [key] };
  });
  const operatorToken = `op_${randomBytes(24).toString('hex')}`;
  const file = join(dir, 'wharf.yaml');
  writeFileSync(
    file,
    stringify({
      server: { host: '127.0.0.1', port: 0, operator_token: operatorToken, ...options.server },
      // The embedded kind is PGlite's wire server given as a URL: one shared backend, so no names.
      database: { url: options.databaseUrl ? options.databaseUrl(db.url) : db.url, prepared_statements: db.kind === 'postgres' },
      data_dir: join(dir, 'data'),
      log: { level: process.env.WHARF_TEST_LOG ?? 'silent' },
      // Receivers run on loopback, which the egress guard blocks unless allowed.
      egress: options.egress ?? { allow: ['127.0.0.0/8', '::1/128'] },
      dispatch: { polling_interval: 0.5, ...options.dispatch },
      ingest: { reload_interval: 0.25, shutdown_timeout: 10, ...options.ingest },
      ...(options.portal ? { portal: options.portal } : {}),
      ...(options.dashboard ? { dashboard: options.dashboard } : {}),
      projects,
    }),
  );
  const { config } = loadConfig({ file, env: {} });
  const logger = (): pino.Logger => {
    const lines = options.logLines;
    if (!lines) return pino({ level: config.log.level });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return pino({ level: 'info' }, sink);
  };
  let app = createApp({ config, configFile: file, logger: logger(), role: options.role });
  try {
    await app.start();
  } catch (err) {
    await app.stop().catch(() => undefined);
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const request = async (method: string, path: string, o: RequestOptions = {}): Promise<RawResponse> => {
    const headers: Record<string, string> = {};
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    if (o.authorization !== undefined && o.authorization !== null) headers.authorization = o.authorization;
    Object.assign(headers, o.headers);
    const res = await fetch(`${app.url}${path}`, {
      method,
      headers,
      body: o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    return { status: res.status, headers: res.headers, body, text };
  };

  const t: TestApp = {
    app,
    configFile: file,
    url: app.url,
    db,
    keys,
    apiKey: Object.values(keys)[0]!,
    request,
    operatorToken,
    operator: (method, path) => request(method, path, { authorization: `Bearer ${operatorToken}` }),
    api(method, path, body, project = 'default') {
      const key = keys[project];
      if (key === undefined) throw new Error(`no project ${project} in this test app`);
      return request(method, `/api/v1/projects/${project}${path}`, { body, authorization: `Bearer ${key}` });
    },
    async restart() {
      await app.stop();
      app = createApp({ config, configFile: file, logger: logger(), role: options.role });
      await app.start();
      t.app = app;
      t.url = app.url;
    },
    async stop() {
      await app.stop();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}
