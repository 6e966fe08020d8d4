/**
 * What the API's route plugins share: their dependencies, the project a request authenticated
 * as, and the answer envelope. A module of its own, so route files and the server that registers
 * them do not import each other.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EgressGuard } from '../core/connector.ts';
import type { Project } from '../core/types.ts';
import type { OutboundDeps } from '../delivery/outbound.ts';
import type { IngestBatcher } from '../ingest/batcher.ts';
import type { IngestLimits } from '../ingest/limits.ts';
import type { PortalOptions } from '../portal/options.ts';
import type { HttpIngest } from '../sources/http-ingest.ts';
import type { SourceManager } from '../sources/manager.ts';
import type { SecretBox } from '../store/crypto.ts';
import type { Actor } from '../store/endpoints.ts';
import type { PolicyLookup } from '../store/retention.ts';

export interface ApiDeps {
  pool: pg.Pool;
  boss: PgBoss;
  box: SecretBox;
  ingest: IngestBatcher;
  logger: Logger;
  bodyLimit: number;
  /** Broker types a project's API key may create sources of (config `ingest.api_broker_types`). */
  apiBrokerTypes: readonly string[];
  /** The egress policy (config `egress`), for judging a broker source's hosts when it is saved. */
  brokerEgress: EgressGuard;
  /** What every event must satisfy before it is stored (config `ingest`). */
  limits: IngestLimits;
  /** Named checks for /readyz; each resolves when its part is ready and throws otherwise. */
  readiness: Record<string, () => Promise<void>>;
  /** The broker sources this process runs; null where its role runs none (other replicas pick changes up). */
  sources: Pick<SourceManager, 'sync' | 'status'> | null;
  /** Served on GET /metrics; null turns the route off. */
  metrics: Registry | null;
  /** `POST /ingest/{mask_id}` for HTTP sources; null where this process takes no ingest requests. */
  httpIngest: HttpIngest | null;
  /** Serve the REST API, HTTP ingest and the portal (roles all and api); false: /healthz, /readyz and /metrics only. */
  management: boolean;
  /** Signed, authenticated requests to endpoints (the reachability ping), through the egress guard. */
  outbound: OutboundDeps;
  /** The customer portal's settings (config `portal`). */
  portal: PortalOptions;
  /** How long a dashboard sign-in lasts (config `dashboard.session_seconds`). */
  dashboardSessionSeconds: number;
  /**
   * `server.operator_token`: a Bearer token that shows /readyz's details and opens /metrics
   * ('' = neither: /readyz answers its status only and /metrics 401).
   */
  operatorToken: string;
  /** The operator's retention policy of each project (config `retention`, `projects[].retention`), as of the last reload. */
  retentionPolicies: () => PolicyLookup;
}

/** A project by id (cached for a few seconds); null when there is none. */
export type ProjectLookup = (id: string) => Promise<Project | null>;

declare module 'fastify' {
  interface FastifyRequest {
    project: Project;
    /** The credential the request authenticated with (recorded with a secret it makes). */
    actor: Actor;
  }
}

/** Convoy's envelope: `{ status, message, data }`. */
export function reply<T>(res: FastifyReply, code: number, message: string, data: T): FastifyReply {
  return res.code(code).send(envelope(code, message, data));
}

const envelope = <T>(code: number, message: string, data: T) => ({ status: code < 400, message, data });

/**
 * A value for one place in `reply`'s data that `replyWithJson` fills with JSON text as it is.
 * JSON.stringify writes it as `"<slot>"`, which only a string value equal to it also makes (a
 * tenant's `"` is written `\"`). It is random to this process and never shown, and
 * replyWithJson takes the last occurrence: a caller puts the slot after every tenant value, so
 * even a tenant that spelled it could not move the data.
 */
export const JSON_SLOT = `wharf-json-slot-${randomUUID()}`;

/**
 * `reply`, with the value at `JSON_SLOT` written as `json`, JSON text Wharf itself serialised
 * (never a tenant's text, never read back from the database), rather than parsed and serialised
 * again. The ingest routes answer each new event with its data: a parse, a depth scan and a
 * serialisation of the tenant's payload a POST, now none. The bytes are the same as `reply`'s.
 */
export function replyWithJson<T>(res: FastifyReply, code: number, message: string, data: T, json: string): FastifyReply {
  return res.code(code).type('application/json; charset=utf-8').send(envelopeWithJson(code, message, data, json));
}

/** replyWithJson's body: Convoy's envelope as text, `json` at the data's JSON_SLOT. */
export function envelopeWithJson(code: number, message: string, data: unknown, json: string): string {
  const text = JSON.stringify(envelope(code, message, data));
  const slot = `"${JSON_SLOT}"`;
  const at = text.lastIndexOf(slot);
  if (at === -1) throw new Error('replyWithJson: the data has no JSON_SLOT');
  return text.slice(0, at) + json + text.slice(at + slot.length);
}
