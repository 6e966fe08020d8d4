/**
 * Prometheus metrics for GET /metrics. One registry per app (no global default registry), so two
 * apps in one process (tests) never mix their figures. Source gauges are read from the source
 * manager at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AcceptResult } from './core/connector.ts';
import type { DeliveryStatus } from './core/types.ts';
import type { SourceStatus } from './sources/manager.ts';
import { PURGED_KINDS, type PurgeReport, type PurgedKind } from './store/retention.ts';
import { HOLD_REASONS, type HoldReason } from './dispatch/worker.ts';

export interface Metrics {
  registry: Registry;
  sourceResults(source: { project_id: string; id: string; type: string }, results: AcceptResult[]): void;
  attempt(a: { status: DeliveryStatus; latencyMs: number }): void;
  /** First attempts of one ingest transaction: taken by this process's dispatcher, or queued. */
  claimed(c: { handedOver: number; queued: number }): void;
  /** First attempts of handoffs a sweep (or their own process, giving up) queued as jobs. */
  rescued(n: number): void;
  /** Deliveries put back as the same attempt to wait for a share or a rate limit. */
  held(h: { reason: HoldReason; deliveries: number }): void;
  ingestRequest(source: { project_id: string; id: string }, outcome: string): void;
  /** Where the source gauges come from. */
  watchSources(status: () => SourceStatus[]): void;
  /** Rows a retention batch deleted (counted as each batch commits, so a long pass shows progress). */
  retentionPurged(kind: PurgedKind, rows: number): void;
  retentionRun(report: PurgeReport): void;
}

const STATES = ['connecting', 'running', 'paused', 'stopping', 'stopped'] as const;

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wharf_process_' });
  let sources: () => SourceStatus[] = () => [];
  const labels = ['project', 'source', 'type'] as const;

  const messages = new Counter({
    name: 'wharf_source_messages_total',
    help: 'Broker messages committed, by outcome: stored (new event), duplicate (already stored), rejected (dead-lettered).',
    labelNames: [...labels, 'outcome'],
    registers: [registry],
  });
  new Gauge({
    name: 'wharf_source_in_flight',
    help: 'Messages received from the broker and not yet acked.',
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources()) this.set({ project: s.project_id, source: s.id, type: s.type }, s.inFlight);
    },
  });
  new Gauge({
    name: 'wharf_source_lag',
    help: 'Messages waiting in the broker, where the broker tells (Kafka consumer lag, SQS visible messages, AMQP queue depth).',
    labelNames: labels,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources()) if (s.lag !== null) this.set({ project: s.project_id, source: s.id, type: s.type }, s.lag);
    },
  });
  new Gauge({
    name: 'wharf_source_state',
    help: 'The connector state of each source: 1 for the state it is in, 0 for the others.',
    labelNames: [...labels, 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources()) {
        for (const state of STATES) this.set({ project: s.project_id, source: s.id, type: s.type, state }, s.state === state ? 1 : 0);
      }
    },
  });
  const ingestRequests = new Counter({
    name: 'wharf_ingest_requests_total',
    help: 'Requests to HTTP ingest URLs, by outcome: stored, duplicate, unverified (401), refused (400/413).',
    labelNames: ['project', 'source', 'outcome'],
    registers: [registry],
  });
  const attempts = new Counter({
    name: 'wharf_delivery_attempts_total',
    help: 'Delivery attempts, by the status the delivery was left in.',
    labelNames: ['status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'wharf_delivery_attempt_seconds',
    help: 'Time from sending a delivery to its answer (or error).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  const firstAttempts = new Counter({
    name: 'wharf_dispatch_first_attempts_total',
    help: 'First attempts of events ingested by this process, by way: handoff (sent by its own dispatcher) or queued (a pg-boss job: no room here).',
    labelNames: ['way'],
    registers: [registry],
  });
  for (const way of ['handoff', 'queued']) firstAttempts.inc({ way }, 0);
  const rescued = new Counter({
    name: 'wharf_dispatch_rescued_deliveries_total',
    help: 'First attempts of handoffs queued as jobs by this process: their own process stopped renewing them (it died or stalled), or gave them up.',
    registers: [registry],
  });

  const held = new Counter({
    name: 'wharf_dispatch_held_back_total',
    help:
      'Deliveries put back as the same attempt to be tried a moment later, by reason: endpoint_share (the endpoint had ' +
      'endpoint_concurrency in flight for over a second), project_share (project_concurrency full for over a second, or a quarter of it ' +
      'waiting already), rate_limit (the endpoint\'s rate limit).',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of HOLD_REASONS) held.inc({ reason }, 0);

  const purged = new Counter({
    name: 'wharf_retention_purged_rows_total',
    help: 'Rows deleted by retention, by kind: events, deliveries, attempts, dead_letters, meta_events.',
    labelNames: ['kind'],
    registers: [registry],
  });
  // Every kind shows from the first scrape, at 0 until something is purged.
  for (const kind of PURGED_KINDS) purged.inc({ kind }, 0);
  const purgeSeconds = new Gauge({
    name: 'wharf_retention_last_run_seconds',
    help: 'How long the last retention pass of this process took, sleeps between batches included.',
    registers: [registry],
  });
  const purgeFinished = new Gauge({
    name: 'wharf_retention_last_run_timestamp_seconds',
    help: 'When the last retention pass of this process ended (Unix time).',
    registers: [registry],
  });

  return {
    registry,
    retentionPurged(kind, rows) {
      purged.inc({ kind }, rows);
    },
    retentionRun(report) {
      purgeSeconds.set(report.ms / 1000);
      purgeFinished.set(Date.now() / 1000);
    },
    sourceResults(source, results) {
      const base = { project: source.project_id, source: source.id, type: source.type };
      const counts = { stored: 0, duplicate: 0, rejected: 0 };
      for (const r of results) counts[r.status] += 1;
      for (const [outcome, n] of Object.entries(counts)) if (n > 0) messages.inc({ ...base, outcome }, n);
    },
    ingestRequest(source, outcome) {
      ingestRequests.inc({ project: source.project_id, source: source.id, outcome });
    },
    attempt(a) {
      attempts.inc({ status: a.status });
      latency.observe(a.latencyMs / 1000);
    },
    claimed(c) {
      if (c.handedOver > 0) firstAttempts.inc({ way: 'handoff' }, c.handedOver);
      if (c.queued > 0) firstAttempts.inc({ way: 'queued' }, c.queued);
    },
    rescued(n) {
      rescued.inc(n);
    },
    held(h) {
      held.inc({ reason: h.reason }, h.deliveries);
    },
    watchSources(status) {
      sources = status;
    },
  };
}
