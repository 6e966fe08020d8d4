import { mkdir } from 'node:fs/promises';
import { egressGuard } from './delivery/egress.ts';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { WharfConfig } from './config/schema.ts';
import { reconcileConfig, type ReconcileResult } from './config/reconcile.ts';
import { buildServer } from './api/server.ts';
import { createSender } from './delivery/sender.ts';
import { createAgentPool, type AgentPool } from './delivery/agents.ts';
import { createAuthHeaders } from './delivery/auth.ts';
import { createOAuth2TokenSource } from './delivery/oauth2.ts';
import { SUPERVISE_SECONDS, createDeliveryQueue } from './dispatch/queue.ts';
import { createBatchRetryQueue, workBatchRetries } from './dispatch/batch-retry.ts';
import { createAlertQueue, workAlerts } from './dispatch/alerts.ts';
import { createDispatcher, type Dispatcher } from './dispatch/worker.ts';
import { createIngestBatcher } from './ingest/batcher.ts';
import type { IngestLimits } from './ingest/limits.ts';
import { loadSecretBox, type SecretBox } from './store/crypto.ts';
import type { EmbeddedPostgres } from './store/embedded.ts';
import { migrate } from './store/migrate.ts';
import { createMetrics } from './metrics.ts';
import { createSourceManager, type SourceManager } from './sources/manager.ts';
import { createHttpIngest } from './sources/http-ingest.ts';
import { createPool, PreparingClient } from './store/pool.ts';
import { createRetentionTask, policiesOf, type RetentionTask } from './store/retention.ts';

export type Role = 'all' | 'api' | 'ingest' | 'dispatch';

export interface AppOptions {
  config: WharfConfig;
  configFile: string;
  logger: Logger;
  role?: Role;
}

export interface App {
  /** Builds and starts every part; resolves when the API listens. Idempotent. */
  start(): Promise<void>;
  /** Stops taking requests, finishes in-flight deliveries, closes everything in reverse order. Idempotent. */
  stop(): Promise<void>;
  /**
   * Applies a re-read config file's projects (keys, endpoints, sources) to the database and the
   * running sources. Other settings (server, database, dispatch) take effect at the next start.
   */
  reload(next: WharfConfig): Promise<ReconcileResult>;
  /** The API's base URL once started. */
  readonly url: string;
  readonly generatedKeys: ReconcileResult['generatedKeys'];
  readonly pool: pg.Pool;
  readonly boss: PgBoss;
  /** This process's dispatcher (roles all and dispatch), once started. */
  readonly dispatcher: Dispatcher | null;
}

export function createApp(options: AppOptions): App {
  const { config, logger } = options;
  const role = options.role ?? 'all';
  let embedded: EmbeddedPostgres | null = null;
  let pool: pg.Pool | null = null;
  let boss: PgBoss | null = null;
  let agents: AgentPool | null = null;
  let dispatcher: Dispatcher | null = null;
  let retention: RetentionTask | null = null;
  // The operator's retention policy of each project; a reload replaces it from the next pass.
  let retentionPolicies = policiesOf(config);
  let sources: SourceManager | null = null;
  let box: SecretBox | null = null;
  let server: FastifyInstance | null = null;
  let url = '';
  let generatedKeys: ReconcileResult['generatedKeys'] = [];
  let starting: Promise<void> | null = null;
  let stopping: Promise<void> | null = null;

  const start = async (): Promise<void> => {
    await mkdir(config.data_dir, { recursive: true });
    let dbUrl = config.database.url;
    if (!dbUrl) {
      // Loaded only here: PGlite's module and its WebAssembly cost memory a server with a database URL never needs.
      const { startEmbeddedPostgres } = await import('./store/embedded.ts');
      embedded = await startEmbeddedPostgres({ dataDir: config.data_dir });
      dbUrl = embedded.url;
      logger.info({ dataDir: config.data_dir }, 'embedded postgres started');
    }
    // PGlite's wire server shares one backend between its connections: names would collide there.
    const prepare = embedded === null && config.database.prepared_statements;
    const db = createPool(dbUrl, {
      max: config.database.pool_size,
      applicationName: 'wharf',
      prepareStatements: prepare,
      onError: (err: Error) => logger.warn({ err }, 'idle database connection failed'),
    });
    pool = db;
    const { applied } = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    box = await loadSecretBox({ key: config.encryption_key, dataDir: config.data_dir });
    ({ generatedKeys } = await reconcileConfig(db, box, config, options.configFile));

    const metrics = createMetrics();
    boss = new PgBoss({
      connectionString: dbUrl,
      max: 6,
      application_name: 'wharf-boss',
      // pg-boss's pool is a pg.Pool made from these options: planning its fetch and insert at
      // every call took at least as long as running them (bench/README.md, 2026-12-04).
      ...(prepare ? { Client: PreparingClient } : {}),
      // Through the PGlite socket a NOTIFY reaches the committing connection, not the listener;
      // pg-boss would then trust a silent channel. Embedded mode polls instead.
      useListenNotify: embedded === null,
      // Stale heartbeats (a dispatcher that died holding deliveries) are found within this.
      superviseIntervalSeconds: SUPERVISE_SECONDS,
      monitorIntervalSeconds: SUPERVISE_SECONDS,
    });
    boss.on('error', (err) => logger.error({ err }, 'job queue error'));
    await boss.start();
    await createDeliveryQueue(boss, config.dispatch.endpoint_concurrency);
    await createBatchRetryQueue(boss);
    await createAlertQueue(boss);

    // Every request to an endpoint (deliveries, alerts, pings, OAuth2 tokens) goes through the
    // egress guard: resolved addresses are judged at connect time.
    const guarded = createAgentPool(config.egress);
    agents = guarded;
    const sender = createSender({ dispatcher: guarded.shared, maxResponseBytes: config.dispatch.max_response_bytes });
    const outbound = { sender, auth: createAuthHeaders({ oauth2: createOAuth2TokenSource({ dispatcher: guarded.shared }) }), agents: guarded };

    if (role === 'all' || role === 'dispatch') {
      dispatcher = createDispatcher(
        { pool: db, boss, box, ...outbound },
        {
          batchSize: config.dispatch.batch_size,
          maxInFlight: config.dispatch.max_in_flight,
          endpointConcurrency: config.dispatch.endpoint_concurrency,
          projectConcurrency: config.dispatch.project_concurrency,
          pollingIntervalSeconds: config.dispatch.polling_interval,
          listen: embedded === null,
          lingerMs: config.dispatch.linger_ms,
          recordLingerMs: config.dispatch.record_linger_ms,
        },
      );
      dispatcher.on('error', (err) => logger.error({ err }, 'delivery dispatch failed; its jobs go back to pg-boss'));
      dispatcher.on('endpoint', (c) => logger.warn(c, `endpoint ${c.to}`));
      dispatcher.on('claimed', metrics.claimed);
      dispatcher.on('held', metrics.held);
      dispatcher.on('rescued', (n) => {
        metrics.rescued(n);
        logger.warn({ deliveries: n }, 'queued first attempts of handoffs as jobs: their process died, stalled or gave them up');
      });
      dispatcher.on('attempt', (a) => {
        metrics.attempt(a);
        logger.debug(a, 'delivery attempt');
      });
      await dispatcher.start();
      await workBatchRetries({ boss, box }, db, (n, f) => logger.info({ project: f.project_id, retried: n }, 'batch retry done'));
      await workAlerts({ pool: db, boss, box, sender, dispatcher: guarded.shared }, (o) => {
        if (o.status === 'success') logger.debug(o, 'alert sent');
        else logger.warn(o, o.status === 'failure' ? 'alert could not be sent; giving up' : 'alert not sent; will retry');
      });
      // Dispatch replicas purge old history; an advisory lock lets one of them at a time.
      retention = createRetentionTask(db, {
        policies: () => retentionPolicies,
        intervalMs: config.retention.interval * 1000,
        batchSize: config.retention.batch_size,
        pauseMs: config.retention.batch_pause * 1000,
        firstDelayMs: Math.min(5000, config.retention.interval * 1000),
        onPurged: metrics.retentionPurged,
      });
      retention.on('purged', (r) => {
        metrics.retentionRun(r);
        logger[r.batches > 0 ? 'info' : 'debug']({ rows: r.rows, batches: r.batches, ms: Math.round(r.ms) }, 'retention purge done');
      });
      retention.on('error', (err) => logger.error({ err }, 'retention purge failed; the next pass tries again'));
      retention.start();
    }

    const limits: IngestLimits = { maxJsonDepth: config.ingest.max_json_depth };
    // Broker connections obey the same egress policy as webhooks, whoever declared the source.
    const brokerEgress = egressGuard(config.egress);
    if (role === 'all' || role === 'ingest') {
      sources = createSourceManager(
        { pool: db, boss, box, logger, limits, direct: dispatcher ?? undefined, egress: brokerEgress, onResults: metrics.sourceResults },
        {
          reloadIntervalMs: config.ingest.reload_interval * 1000,
          stopTimeoutMs: config.ingest.shutdown_timeout * 1000,
          apiBrokerTypes: config.ingest.api_broker_types,
        },
      );
      metrics.watchSources(() => sources?.status() ?? []);
      await sources.start();
    }

    // The ingest role serves /healthz, /readyz and /metrics too, so it can be probed and scraped;
    // the dispatch role serves nothing.
    if (role !== 'dispatch') {
      // Two transactions: one commits while the next group forms. More would split the same
      // events into smaller groups and pay more round trips per event (bench/README.md).
      const ingest = createIngestBatcher({ pool: db, boss, limits, direct: dispatcher ?? undefined }, { maxBatch: 200, maxInFlight: 2, lingerMs: config.ingest.linger_ms });
      server = await buildServer({
        pool: db,
        boss,
        box,
        ingest,
        limits,
        apiBrokerTypes: config.ingest.api_broker_types,
        brokerEgress,
        logger,
        bodyLimit: config.server.body_limit,
        readiness: {
          database: async () => {
            await db.query('SELECT 1');
          },
        },
        sources,
        metrics: metrics.registry,
        httpIngest: createHttpIngest({ pool: db, box, ingest, limits, logger, onOutcome: metrics.ingestRequest }),
        management: role !== 'ingest',
        operatorToken: config.server.operator_token,
        outbound,
        portal: {
          publicUrl: config.portal.public_url,
          sessionMinutes: config.portal.session_minutes,
          frameAncestors: config.portal.frame_ancestors,
          listenHost: config.server.host,
        },
        dashboardSessionSeconds: config.dashboard.session_seconds,
        retentionPolicies: () => retentionPolicies,
      });
      await server.listen({ host: config.server.host, port: config.server.port });
      const addr = server.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
      const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
      url = `http://${host}:${port}`;
      logger.info({ url, role }, 'wharf listening');
    } else {
      logger.info({ role }, 'wharf started');
    }
  };

  const stop = async (): Promise<void> => {
    if (starting) await starting.catch(() => undefined);
    // Reverse order of start: no new requests, then no new batches, then close the stores.
    await server?.close();
    // Sources stop before the dispatcher and the pool: their last batches still need the database.
    await sources?.stop();
    await retention?.stop();
    await dispatcher?.stop();
    await boss?.stop({ graceful: true, timeout: config.dispatch.shutdown_timeout * 1000, close: true });
    await agents?.close();
    await pool?.end();
    await embedded?.stop();
    logger.info('wharf stopped');
  };

  const reload = async (next: WharfConfig): Promise<ReconcileResult> => {
    if (!pool || !box) throw new Error('app not started');
    const result = await reconcileConfig(pool, box, next, options.configFile);
    retentionPolicies = policiesOf(next);
    await sources?.sync();
    return result;
  };

  return {
    reload,
    start: () => (starting ??= start()),
    stop: () => (stopping ??= stop()),
    get url() {
      return url;
    },
    get generatedKeys() {
      return generatedKeys;
    },
    get pool() {
      if (!pool) throw new Error('app not started');
      return pool;
    },
    get boss() {
      if (!boss) throw new Error('app not started');
      return boss;
    },
    get dispatcher() {
      return dispatcher;
    },
  };
}
