import type pg from 'pg';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { UNAVAILABLE_RETRY_AFTER_SECONDS, WharfError, isDatabaseUnavailable, unauthorized } from '../core/errors.ts';
import type { Project } from '../core/types.ts';
import type { Actor } from '../store/endpoints.ts';
import { hashApiKey } from '../store/crypto.ts';
import { apiKeyForHash, getProject } from '../store/projects.ts';
import { endpointRoutes } from './endpoints-routes.ts';
import { eventRoutes } from './events-routes.ts';
import { deliveryRoutes } from './deliveries-routes.ts';
import { deadLetterRoutes } from './deadletters-routes.ts';
import { sourceRoutes } from './sources-routes.ts';
import { subscriptionRoutes } from './subscriptions-routes.ts';
import { metaEventRoutes } from './meta-events-routes.ts';
import { portalLinkRoutes } from './portal-links-routes.ts';
import { projectRoutes } from './project-routes.ts';
import { portalRoutes } from '../portal/routes.ts';
import { dashboardRoutes } from '../dashboard/routes.ts';
import { createInternalCredential, viaOf } from '../web/internal-credential.ts';
import { secretMatcher } from '../web/session.ts';
import { reply, type ApiDeps, type ProjectLookup } from './context.ts';
import { isNulRefusal, refuseNul } from './nul-guard.ts';

/** How long an API key's project is trusted before it is looked up again. */
const KEY_CACHE_MS = 5_000;

/** A project by id, re-read at most every KEY_CACHE_MS. */
function cachedProjects(pool: pg.Pool): ProjectLookup {
  const cache = new Map<string, { project: Project; at: number }>();
  return async (id) => {
    const now = Date.now();
    const hit = cache.get(id);
    if (hit && now - hit.at <= KEY_CACHE_MS) return hit.project;
    const project = await getProject(pool, id);
    if (project) cache.set(id, { project, at: now });
    else cache.delete(id);
    return project;
  };
}

export async function buildServer(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // JSON only: a text/plain body is refused with 415 like any other non-JSON type.
  app.removeContentTypeParser('text/plain');
  // Convoy's clients send `Content-Type: application/json` with no body on pause, activate,
  // resend and batch retry: an empty JSON body is no body. Anything else goes to fastify's own
  // parser (with its prototype-poisoning checks).
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') done(null, undefined);
    else json(req, body as string, done);
  });

  // No answer on Wharf's origin is ever sniffed into something else (a tenant's bytes into HTML).
  // The raw header, set before fastify sees the request, covers every route, error and 404 alike
  // (fastify's own headers are added to it when it writes the head), and the answers fastify gives
  // before any hook, to requests that arrive while it closes (return503OnClosing). No onSend hook
  // on the API's routes: without one fastify skips the hook chain, a promise an answer (issue 15).
  app.server.prependListener('request', (_req, res) => res.setHeader('x-content-type-options', 'nosniff'));
  // NUL anywhere but an event's data is refused by name before any handler (nul-guard.ts).
  refuseNul(app);

  app.setErrorHandler((err: unknown, req, res) => {
    if (isDatabaseUnavailable(err)) {
      req.log.warn({ err }, 'database unavailable');
      res.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
      return reply(res, 503, 'the database is unavailable; try again shortly', { code: 'WHARF_ERR_UNAVAILABLE', field: null });
    }
    if (isNulRefusal(err)) {
      return reply(res, 400, 'a value holds NUL (\\u0000), which cannot be stored', { code: 'WHARF_ERR_INVALID', field: null });
    }
    if (err instanceof WharfError) {
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      return reply(res, err.status, err.message, { code: err.code, field: err.field ?? null });
    }
    const e = err as { statusCode?: number; code?: string; message?: string };
    const status = e.statusCode ?? 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return reply(res, 500, 'internal error', { code: 'WHARF_ERR_INTERNAL', field: null });
    }
    const message =
      e.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is larger than ${deps.bodyLimit} bytes`
        : e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'Content-Type must be application/json'
          : (e.message ?? 'bad request');
    return reply(res, status, message, { code: e.code ?? 'WHARF_ERR_BAD_REQUEST', field: null });
  });
  app.setNotFoundHandler((req, res) =>
    reply(res, 404, `no route for ${req.method} ${req.url.split('?')[0]}`, { code: 'WHARF_ERR_NO_ROUTE', field: null }),
  );

  // The operator's token opens the details of /readyz and /metrics: broker hosts and error texts
  // are not for whoever can reach the port.
  // Compared as digests, so neither the token's bytes nor its length show in the timing; the
  // dashboard's sign-in uses the same check (src/web/session.ts).
  const isOperatorToken = secretMatcher(deps.operatorToken);
  const isOperator = (req: FastifyRequest): boolean => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    return match !== null && isOperatorToken(match[1]!);
  };

  app.get('/healthz', async () => ({ status: true, message: 'alive', data: null }));
  app.get('/readyz', async (req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    await Promise.all(
      Object.entries(deps.readiness).map(async ([name, check]) => {
        try {
          await check();
          checks[name] = 'ok';
        } catch (err) {
          ready = false;
          checks[name] = (err as Error).message;
        }
      }),
    );
    // A broker that is down does not make the API unready (it keeps taking events); it shows here.
    const sources = deps.sources?.status().map((s) => ({
      project_id: s.project_id,
      id: s.id,
      type: s.type,
      state: s.state,
      in_flight: s.inFlight,
      lag: s.lag,
      last_error: s.lastError,
      messages: s.messages,
    }));
    const details = isOperator(req) ? { ...checks, ...(sources ? { sources } : {}) } : null;
    return reply(res, ready ? 200 : 503, ready ? 'ready' : 'not ready', details);
  });
  if (deps.metrics) {
    const registry = deps.metrics;
    app.get('/metrics', async (req, res) => {
      if (!isOperator(req)) {
        throw unauthorized(
          deps.operatorToken === ''
            ? '/metrics needs the operator token: set server.operator_token (WHARF_OPERATOR_TOKEN) and scrape with Authorization: Bearer <token>'
            : 'missing or invalid operator token (Authorization: Bearer <server.operator_token>)',
        );
      }
      return res.header('content-type', registry.contentType).send(await registry.metrics());
    });
  }

  // Keys are looked up by hash; a short cache keeps the database off the hot path of ingest.
  const keyCache = new Map<string, { projectId: string | null; keyId: string | null; at: number }>();
  // Shared by the API and the portal, whose pages (a delivery's refreshes every 2 s) need it too.
  const projects = cachedProjects(deps.pool);
  // The dashboard's operator sessions call the API in-process with this (never from the network).
  const internal = createInternalCredential();
  const authenticate = async (req: FastifyRequest): Promise<void> => {
    const projectId = (req.params as { projectID: string }).projectID;
    if (internal.accepts(req)) {
      const project = await projects(projectId);
      if (!project) throw unauthorized(`API key is not valid for project ${JSON.stringify(projectId)}`);
      req.project = project;
      req.actor = { type: 'operator', id: null, via: 'dashboard' };
      return;
    }
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw unauthorized('missing Authorization: Bearer <API key>');
    const hash = hashApiKey(match[1]!);
    const now = Date.now();
    let cached = keyCache.get(hash);
    if (!cached || now - cached.at > KEY_CACHE_MS) {
      const key = await apiKeyForHash(deps.pool, hash);
      cached = { projectId: key?.project_id ?? null, keyId: key?.id ?? null, at: now };
      if (keyCache.size > 10_000) keyCache.clear();
      keyCache.set(hash, cached);
    }
    if (cached.projectId === null || cached.projectId !== projectId) {
      throw unauthorized(`API key is not valid for project ${JSON.stringify(projectId)}`);
    }
    const project = await projects(projectId);
    if (!project) throw unauthorized(`API key is not valid for project ${JSON.stringify(projectId)}`);
    req.project = project;
    req.actor = { type: 'api_key', id: cached.keyId, via: viaOf(req) };
  };

  // The ingest role serves only what probes and scrapers need (above); the rest is the API's.
  if (!deps.management) return app;

  await deps.httpIngest?.register(app);

  await app.register(
    async (api) => {
      api.decorateRequest('project', null as unknown as Project);
      api.decorateRequest('actor', null as unknown as Actor);
      api.addHook('onRequest', authenticate);
      await api.register(endpointRoutes, deps);
      await api.register(eventRoutes, deps);
      await api.register(deliveryRoutes, deps);
      await api.register(sourceRoutes, deps);
      await api.register(deadLetterRoutes, deps);
      await api.register(subscriptionRoutes, deps);
      await api.register(metaEventRoutes, deps);
      await api.register(portalLinkRoutes, deps);
      await api.register(projectRoutes, deps);
    },
    { prefix: '/api/v1/projects/:projectID' },
  );

  // Customer-facing HTML pages, with their own sessions, errors and security headers.
  await app.register(portalRoutes, { prefix: '/portal', ...deps, projects });
  // The operator dashboard: HTML pages whose actions are REST calls made in-process.
  await app.register(dashboardRoutes, { prefix: '/dashboard', ...deps, projects, api: app, internal, isOperatorToken });
  app.get('/', async (_req, res) => res.redirect('/dashboard', 302));

  return app;
}
