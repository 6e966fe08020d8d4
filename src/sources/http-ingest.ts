/**
 * HTTP ingest: `POST /ingest/{mask_id}` takes a provider's webhook, verifies it over the exact
 * bytes received, and stores it as an event of its source (routed by subscriptions) before
 * answering 200. Unauthenticated but for the verifier, so it reads as little as it can before
 * it knows the request is genuine: the size is checked while the body streams in.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { WharfError } from '../core/errors.ts';
import type { EventInput } from '../core/types.ts';
import type { IngestBatcher } from '../ingest/batcher.ts';
import { cleanHeaders } from '../ingest/headers.ts';
import { forwardedHeaders } from '../ingest/normalize.ts';
import type { SecretBox } from '../store/crypto.ts';
import type { Queryable } from '../store/queryable.ts';
import { sourceByMask, type SourceRecord } from '../store/sources.ts';
import { MASK_ID, type HttpSourceConfig, type Location } from './http-settings.ts';
import { checkDepth, checkEventType, type IngestLimits } from '../ingest/limits.ts';
import { verify } from './verifiers/index.ts';
import { standardWebhooksHeaders } from './verifiers/presets.ts';

/** The most any source may allow (its `max_body_bytes` is checked as the body arrives). */
const MAX_BODY = 64 * 1_048_576;
const CACHE_MS = 5_000;
const RECENT = 20;
/** Headers never stored with an event: they carry credentials. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

export interface IngestFailure {
  at: string;
  reason: string;
  remote_address: string;
}

export interface HttpIngestStats {
  received: number;
  stored: number;
  duplicate: number;
  unverified: number;
  refused: number;
  recent_failures: IngestFailure[];
}

export interface HttpIngestDeps {
  pool: Queryable;
  box: SecretBox;
  ingest: IngestBatcher;
  limits: IngestLimits;
  logger: Logger;
  /** Told of each request's outcome (metrics). */
  onOutcome?: (source: { project_id: string; id: string }, outcome: string) => void;
}

export interface HttpIngest {
  register(app: FastifyInstance): Promise<void>;
  /** Forgets the cached sources (after a change through this process's API; others wait out the 5 s). */
  invalidate(): void;
  /** This process's counts for a source, and its latest refused requests. */
  stats(projectId: string, sourceId: string): HttpIngestStats | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    ingestSource: SourceRecord | null;
  }
}

/** The value at a dotted path of a parsed body, as text; undefined when absent. */
function atPath(body: unknown, path: string): string | undefined {
  let node = body;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  if (node === undefined || node === null) return undefined;
  return typeof node === 'string' ? node : JSON.stringify(node);
}

function read(location: Location, body: unknown, headers: Record<string, string>, query: Record<string, unknown>): string | undefined {
  if ('header' in location) return headers[location.header];
  if ('body' in location) return atPath(body, location.body);
  const v = query[location.query];
  return typeof v === 'string' ? v : undefined;
}

function describe(location: Location): string {
  return 'header' in location ? `header ${location.header}` : 'body' in location ? `body path ${location.body}` : `query parameter ${location.query}`;
}

/** A stream that fails with 413 once more than `limit` bytes passed through it, calling `over` first. */
function limited(limit: number, over: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen <= limit) return done(null, chunk);
      over();
      done(tooLarge(limit));
    },
  });
}

const tooLarge = (limit: number): WharfError =>
  new WharfError('WHARF_ERR_TOO_LARGE', `request body is larger than this source's max_body_bytes (${limit})`, { status: 413 });

/**
 * Where a provider puts the id that stays the same across its retries, used when a source names
 * no `idempotency_keys`: a replay (within a signature's tolerance, or a provider's retry) is then
 * stored once.
 */
const PROVIDER_IDEMPOTENCY: Partial<Record<HttpSourceConfig['verifier']['type'], Location[]>> = {
  github: [{ header: 'x-github-delivery' }],
  shopify: [{ header: 'x-shopify-webhook-id' }],
  stripe: [{ body: 'id' }],
};

/** The provider's delivery id for a verified request: Standard Webhooks' is the signed `webhook-id` (or Svix's `svix-id`). */
function providerKeys(type: HttpSourceConfig['verifier']['type'], headers: Record<string, string>): Location[] {
  if (type === 'standard_webhooks') return [{ header: standardWebhooksHeaders((name) => Boolean(headers[name])).id }];
  return PROVIDER_IDEMPOTENCY[type] ?? [];
}

export function createHttpIngest(deps: HttpIngestDeps): HttpIngest {
  const cache = new Map<string, { record: SourceRecord | null; at: number }>();
  const stats = new Map<string, HttpIngestStats>();

  const lookup = async (mask: string): Promise<SourceRecord | null> => {
    const hit = cache.get(mask);
    // Unknown masks are cached briefly too, so guessing cannot load the database.
    if (hit && Date.now() - hit.at < (hit.record ? CACHE_MS : 1_000)) return hit.record;
    const record = MASK_ID.test(mask) ? await sourceByMask(deps.pool, deps.box, mask) : null;
    if (cache.size > 10_000) cache.clear();
    cache.set(mask, { record, at: Date.now() });
    return record;
  };

  const statsOf = (record: SourceRecord): HttpIngestStats => {
    const key = `${record.project_id}/${record.id}`;
    let s = stats.get(key);
    if (!s) {
      s = { received: 0, stored: 0, duplicate: 0, unverified: 0, refused: 0, recent_failures: [] };
      stats.set(key, s);
    }
    return s;
  };

  const fail = (req: FastifyRequest, record: SourceRecord, outcome: 'unverified' | 'refused', reason: string): void => {
    const s = statsOf(record);
    s[outcome] += 1;
    s.recent_failures.unshift({ at: new Date().toISOString(), reason, remote_address: req.ip });
    s.recent_failures.length = Math.min(s.recent_failures.length, RECENT);
    deps.onOutcome?.(record, outcome);
    deps.logger.warn({ source: `${record.project_id}/${record.id}`, reason, remote: req.ip }, `ingest request ${outcome}`);
  };

  const handle = async (req: FastifyRequest): Promise<{ status: number; body: string; type: string }> => {
    const record = req.ingestSource!;
    const def = record.definition;
    const http = def.broker as unknown as HttpSourceConfig;
    const body = req.body as Buffer;
    statsOf(record).received += 1;

    // Every copy of each header, as received: Node's merged `req.headers` joins a repeated header
    // ("sha256=a, sha256=b") or keeps only the first Authorization, which would hide from the
    // verifier that a signature or credential header was given twice.
    const checked = verify(http.verifier, { body, headers: req.raw.headersDistinct });
    if (!checked.ok) {
      fail(req, record, 'unverified', checked.reason);
      throw new WharfError('WHARF_ERR_UNVERIFIED', 'request could not be verified', { status: 401 });
    }

    const text = body.toString('utf8');
    // Before anything reads into the body: reading the event type or an idempotency key at a
    // location may serialise what is there (JSON.stringify recurses), and so would every reader
    // of the stored event.
    try {
      checkDepth(text, 'body', deps.limits, true);
    } catch (err) {
      fail(req, record, 'refused', (err as Error).message);
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      fail(req, record, 'refused', `body is not JSON: ${(err as Error).message}`);
      throw new WharfError('WHARF_ERR_NOT_JSON', `body is not JSON: ${(err as Error).message}`, { status: 400 });
    }
    const headers = cleanHeaders(req.headers);
    const query = (req.query ?? {}) as Record<string, unknown>;
    const eventType = (http.event_type_location ? read(http.event_type_location, parsed, headers, query) : undefined) ?? def.event_type;
    if (!eventType) {
      const where = describe(http.event_type_location!);
      fail(req, record, 'refused', `no event type at ${where}`);
      throw new WharfError('WHARF_ERR_INVALID', `event type: the request has no ${where}`, { status: 400 });
    }
    // What the provider sent must be storable and deliverable, or it is refused here, named.
    try {
      checkEventType(eventType, http.event_type_location ? describe(http.event_type_location) : 'event_type');
    } catch (err) {
      fail(req, record, 'refused', (err as Error).message);
      throw err;
    }
    // A provider's retry carries the same delivery id: the same key, so no second event.
    const keys = http.idempotency_keys.length > 0 ? http.idempotency_keys : providerKeys(http.verifier.type, headers);
    const parts = keys.map((l) => read(l, parsed, headers, query));
    const idempotency = parts.some((p) => p !== undefined)
      ? `${def.id}:${createHash('sha256').update(JSON.stringify(parts)).digest('hex')}`
      : null;
    const stored: Record<string, string> = {};
    const secretHeader = (http.verifier as { header_name?: unknown }).header_name;
    for (const [k, v] of Object.entries(headers)) {
      if (CREDENTIAL_HEADERS.has(k) || (typeof secretHeader === 'string' && k === secretHeader.toLowerCase())) continue;
      stored[k] = v;
    }
    const input: EventInput = {
      project_id: record.project_id,
      source_id: def.id,
      message_type: 'broadcast',
      event_type: eventType,
      data: text,
      custom_headers: forwardedHeaders(stored, def.forward_headers),
      idempotency_key: idempotency,
      headers: stored,
    };
    const outcome = await deps.ingest.submit(input);
    if (outcome.status === 'rejected') throw new WharfError(outcome.code, outcome.reason, { status: 400 });
    statsOf(record)[outcome.status] += 1;
    deps.onOutcome?.(record, outcome.status);
    if (http.custom_response) return { status: 200, body: http.custom_response.body, type: http.custom_response.content_type };
    return {
      status: 200,
      type: 'application/json; charset=utf-8',
      body: JSON.stringify({
        status: true,
        message: outcome.status === 'stored' ? 'Event received' : 'Event already received',
        data: { event_id: outcome.event_id, duplicate: outcome.status === 'duplicate' },
      }),
    };
  };

  return {
    async register(app) {
      await app.register(async (scope) => {
        scope.decorateRequest('ingestSource', null);
        // An ingest answer may be a tenant's `custom_response`: whatever a browser makes of it, it
        // runs nothing and reaches nothing on Wharf's origin (where portal sessions live).
        scope.addHook('onSend', async (_req, res, payload) => {
          res.header('content-security-policy', "sandbox; default-src 'none'; frame-ancestors 'none'");
          return payload;
        });
        // Any content type: the bytes are what is verified and stored.
        scope.removeAllContentTypeParsers();
        scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY }, (_req, body, done) => done(null, body));
        scope.addHook('preParsing', async (req, _res, payload) => {
          const { maskId } = req.params as { maskId: string };
          const record = await lookup(maskId);
          if (!record) throw new WharfError('WHARF_ERR_NOT_FOUND', 'no ingest source at this URL', { status: 404 });
          req.ingestSource = record;
          const limit = record.definition.max_body_bytes;
          const declared = Number(req.headers['content-length']);
          if (Number.isFinite(declared) && declared > limit) {
            fail(req, record, 'refused', `body of ${declared} bytes is over max_body_bytes (${limit})`);
            throw tooLarge(limit);
          }
          // A body sent without (or under) its declared length is cut off as it streams in, and
          // counted like one refused up front.
          return payload.pipe(limited(limit, () => fail(req, record, 'refused', `body of more than ${limit} bytes is over max_body_bytes (${limit})`)));
        });
        scope.post('/ingest/:maskId', { bodyLimit: MAX_BODY }, async (req, res) => {
          const answer = await handle(req);
          return res.code(answer.status).header('content-type', answer.type).send(answer.body);
        });
        // No preset here defines a GET handshake; a GET is answered as what it is.
        scope.route({
          method: ['GET', 'PUT', 'PATCH', 'DELETE'],
          url: '/ingest/:maskId',
          handler: async (_req, res) =>
            res.code(405).header('allow', 'POST').send({ status: false, message: 'ingest URLs take POST only', data: { code: 'WHARF_ERR_METHOD', field: null } }),
        });
      });
    },
    invalidate() {
      cache.clear();
    },
    stats(projectId, sourceId) {
      const s = stats.get(`${projectId}/${sourceId}`);
      return s ? { ...s, recent_failures: [...s.recent_failures] } : null;
    },
  };
}
