/**
 * Runs one connector per broker source in the database, and keeps the running set equal to the
 * stored one: a source added, changed or removed (through the API, the YAML, or another replica)
 * is started, restarted or stopped within `reloadIntervalMs`, without a restart of Wharf.
 */
import type { EgressGuard } from '../core/connector.ts';
import type { Logger } from 'pino';
import { connectorFor, isBrokerType, type BrokerType } from '../../connectors/index.ts';
import type { AcceptResult, Connector, ConnectorHealth } from '../core/connector.ts';
import { scrubbingLogger, secretScrubber, secretValues } from '../core/redact.ts';
import { isDatabaseUnavailable } from '../core/errors.ts';
import { createBrokerSink } from '../ingest/broker-sink.ts';
import type { IngestDeps } from '../ingest/persist.ts';
import type { SecretBox } from '../store/crypto.ts';
import { getSources, sourceVersions, type SourceRecord } from '../store/sources.ts';

export interface SourceCounts {
  stored: number;
  duplicate: number;
  rejected: number;
}

/**
 * A source's state as the operator sees it: the connector's, or `paused` while it consumes but its
 * messages cannot be stored (the database is unreachable). Its connector then holds what it has
 * unacked, so the broker stops sending past the prefetch, and tries the batch again; the first
 * batch stored makes it `running` again.
 */
export type SourceState = ConnectorHealth['state'] | 'paused';

export interface SourceStatus extends Omit<ConnectorHealth, 'state'> {
  state: SourceState;
  project_id: string;
  id: string;
  name: string;
  type: string;
  messages: SourceCounts;
}

export interface SourceManagerDeps extends IngestDeps {
  box: SecretBox;
  /** The egress policy every broker connection obeys (config `egress`). */
  egress: EgressGuard;
  logger: Logger;
  /** Told of every committed batch (metrics). */
  onResults?: (source: { project_id: string; id: string; type: string }, results: AcceptResult[]) => void;
}

export interface SourceManagerOptions {
  reloadIntervalMs: number;
  /** How long a stopping connector may take to finish its batches. */
  stopTimeoutMs: number;
  /**
   * Broker types the API may create (config `ingest.api_broker_types`): a source made through the
   * API of another type (saved before the operator closed it) is not run. Left out, all are run.
   */
  apiBrokerTypes?: readonly string[];
}

export interface SourceManager {
  start(): Promise<void>;
  /** Brings the running connectors in line with the database now (the API calls it after a change). */
  sync(): Promise<void>;
  stop(): Promise<void>;
  status(): SourceStatus[];
}

interface Running {
  record: SourceRecord;
  version: string;
  connector: Connector | null;
  /** Why the connector could not be built (its state is then 'stopped'). */
  failure: string | null;
  counts: SourceCounts;
  /** Why storing its messages fails for now (the database is unreachable), or null. */
  paused: string | null;
  /** Takes the source's credentials out of a text (its connector's errors and log lines). */
  scrub: (text: string) => string;
}

export function createSourceManager(deps: SourceManagerDeps, options: SourceManagerOptions): SourceManager {
  const running = new Map<string, Running>();
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let stopped = false;

  const launch = async (record: SourceRecord, version: string): Promise<Running> => {
    const def = record.definition;
    const name = `${record.project_id}/${def.id}`;
    const module = connectorFor(def.type as BrokerType);
    // Broker and SDK texts may quote a credential: everything the connector logs or reports in
    // health() goes through this first, whichever the broker.
    const scrub = secretScrubber(secretValues(def.broker, module.secretKeys));
    const entry: Running = { record, version, connector: null, failure: null, counts: { stored: 0, duplicate: 0, rejected: 0 }, paused: null, scrub };
    const logger = scrubbingLogger(deps.logger.child({ source: name, type: def.type }), scrub);
    // Wharf's own cloud identity is the config file's to lend: a source made through the API never
    // has it, whatever its stored definition says (one saved by an older version included).
    const broker = record.from_config || !('use_default_credentials' in def.broker) ? def.broker : { ...def.broker, use_default_credentials: false };
    if (!record.from_config && options.apiBrokerTypes && !options.apiBrokerTypes.includes(def.type)) {
      entry.failure = `not started: ${def.type} sources made through the API are not allowed here (ingest.api_broker_types)`;
      logger.warn({}, 'source not started: its type is closed to the API');
      return entry;
    }
    try {
      entry.connector = await module.create(broker, { logger, name, egress: deps.egress });
      const sink = createBrokerSink(deps, { project_id: record.project_id, definition: def }, {
        onResults: (results, messages) => {
          for (const [i, r] of results.entries()) {
            entry.counts[r.status] += 1;
            if (r.status === 'rejected') {
              logger.warn({ broker_id: messages[i]!.id, code: r.code, reason: r.reason, dead_letter_id: r.dead_letter_id }, 'message dead-lettered');
            }
          }
          deps.onResults?.({ project_id: record.project_id, id: def.id, type: def.type }, results);
        },
      });
      await entry.connector.start({
        accept: async (messages) => {
          try {
            const results = await sink.accept(messages);
            if (entry.paused !== null) logger.info({}, 'source resumed: its messages are stored again');
            entry.paused = null;
            return results;
          } catch (err) {
            if (isDatabaseUnavailable(err)) entry.paused = `paused: the database is unreachable (${(err as Error).message}); consuming resumes by itself`;
            throw err;
          }
        },
      });
      logger.info({}, 'source started');
    } catch (err) {
      entry.failure = scrub((err as Error).message);
      logger.error({ err }, 'source could not start');
    }
    return entry;
  };

  const halt = async (key: string, entry: Running): Promise<void> => {
    running.delete(key);
    try {
      await entry.connector?.stop({ timeoutMs: options.stopTimeoutMs });
    } catch (err) {
      scrubbingLogger(deps.logger, entry.scrub).error({ err, source: key }, 'source did not stop cleanly');
    }
  };

  const reconcile = async (): Promise<void> => {
    if (stopped) return;
    const versions = await sourceVersions(deps.pool);
    const changed = [...versions].filter(([key, v]) => running.get(key)?.version !== v.version);
    const gone = [...running.keys()].filter((key) => !versions.has(key));
    if (changed.length === 0 && gone.length === 0) return;
    // Only the changed sources are read (and decrypted). Stopping ones are stopped together, so one
    // slow to stop does not hold up the others.
    const records = changed.length === 0 ? [] : await getSources(deps.pool, deps.box, changed.map(([, v]) => v));
    const stale = [...gone, ...changed.map(([key]) => key).filter((key) => running.has(key))];
    await Promise.all(stale.map((key) => halt(key, running.get(key)!)));
    const byKey = new Map(records.map((r) => [`${r.project_id}/${r.id}`, r]));
    for (const [key, v] of changed) {
      const record = byKey.get(key);
      if (record && isBrokerType(record.definition.type) && !stopped) running.set(key, await launch(record, v.version));
    }
  };

  // One reconcile at a time; a failed one (database away) is logged and tried again next tick.
  const sync = (): Promise<void> => {
    const next = chain.then(reconcile);
    chain = next.catch((err: unknown) => deps.logger.warn({ err }, 'sources could not be reloaded'));
    return next;
  };

  return {
    async start() {
      await sync();
      const tick = (): void => {
        timer = setTimeout(() => void sync().catch(() => undefined).finally(() => !stopped && tick()), options.reloadIntervalMs);
        timer.unref();
      };
      tick();
    },
    sync,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await chain;
      await Promise.all([...running].map(([key, entry]) => halt(key, entry)));
    },
    status() {
      return [...running.values()].map((e) => {
        const live: ConnectorHealth = e.connector?.health() ?? { state: 'stopped', inFlight: 0, lag: null, lastError: e.failure };
        const paused = live.state === 'running' && e.paused !== null;
        const lastError = paused ? e.paused : live.lastError;
        const health = { ...live, state: paused ? ('paused' as const) : live.state, lastError: lastError === null ? null : e.scrub(lastError) };
        return {
          project_id: e.record.project_id,
          id: e.record.id,
          name: e.record.definition.name,
          type: e.record.definition.type,
          ...health,
          messages: { ...e.counts },
        };
      });
    },
  };
}
