/**
 * The customer portal under /portal: a link opens a session (GET /portal/l/<token>), and the
 * session shows its link's endpoints and their deliveries. Every page request re-checks the
 * session and its link; every form is checked against cross-site requests; every query is scoped
 * (scope.ts); every response carries a strict CSP and no-store.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { UNAVAILABLE_RETRY_AFTER_SECONDS, WharfError, isDatabaseUnavailable } from '../core/errors.ts';
import type { Project } from '../core/types.ts';
import { deliveryAttempts } from '../api/deliveries-routes.ts';
import { editEndpoint, pingerFor } from '../api/endpoints-routes.ts';
import { findEvent } from '../api/events-routes.ts';
import { toPage } from '../api/pagination.ts';
import type { ApiDeps, ProjectLookup } from '../api/context.ts';
import { bodyFor } from '../delivery/request.ts';
import { activateEndpoint, resendDelivery, rotateSecret, togglePause } from '../dispatch/operations.ts';
import { withTransaction } from '../store/pool.ts';
import { purgedReason } from '../store/retention.ts';
import {
  createPortalSession,
  deletePortalSession,
  findPortalSession,
  hashToken,
  openPortalLink,
  setSessionFlash,
  takeSessionFlash,
  type PortalLink,
} from '../store/portal-links.ts';
import { RETRYABLE, deliveryPage, deliveriesPage } from './delivery-pages.ts';
import { parseDeliveryFilters, redactRequestHeaders } from './filters.ts';
import { endpointPage, endpointsPage, errorPage, page, secretPage, type EndpointForm, type Frame } from './pages.ts';
import { scopeOf, scopedDeliveries, scopedDelivery, scopedEndpoint, scopedEndpoints, type Scope } from './scope.ts';
import { PortalRefusal, checkForm, clearCookieHeader, forbidden, linkRefusal, sessionCookie, sessionRefusal, setCookieHeader } from './session.ts';
import { html } from './html.ts';
import { loadAssets, securePages, type Asset } from '../web/pages.ts';

/** The API's dependencies, and its cached project lookup (only some pages need the project). */
export type PortalDeps = ApiDeps & { projects: ProjectLookup };

export interface PortalContext {
  link: PortalLink;
  scope: Scope;
  csrf: string;
  sessionId: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    portal: PortalContext | null;
  }
}

const ACTOR = 'the portal';

/** Confirmations after a form, by key: the page never echoes request text as a message. */
const NOTICES: Record<string, string> = {
  retried: 'Retry scheduled. This page refreshes until the new attempt is in.',
  paused: 'Endpoint paused.',
  unpaused: 'Endpoint unpaused.',
  activated: 'Endpoint activated.',
  saved: 'Settings saved.',
  'secret-shown': 'The new signing secret was shown once and is not shown again. Rotate again if it was lost.',
};

const notFoundPage = (): PortalRefusal => new PortalRefusal(404, 'WHARF_ERR_NOT_FOUND', 'Not found', 'There is nothing here, or it is not shared with this link.');

export async function portalRoutes(app: FastifyInstance, deps: PortalDeps): Promise<void> {
  const { pool, box, portal: options } = deps;
  // The shared files keep the portal's older names here (pages link to these).
  const shared = await loadAssets();
  const assets: Record<string, Asset> = { 'portal.css': shared['wharf.css'], 'portal.js': shared['wharf.js'] };

  app.decorateRequest('portal', null);
  // The CSP and the other headers, and form bodies (src/web/pages.ts).
  securePages(app, options.frameAncestors);

  const frameOf = (req: FastifyRequest): Frame => {
    const p = req.portal;
    return { title: '', session: p ? { name: p.link.name, csrf: p.csrf, canManage: p.link.can_manage_endpoint } : undefined };
  };
  const sendPage = (res: FastifyReply, status: number, body: string): FastifyReply => res.code(status).type('text/html; charset=utf-8').send(body);

  app.setErrorHandler((err: unknown, req, res) => {
    if (err instanceof PortalRefusal) {
      // A session that can no longer be used is forgotten by the browser too.
      if ((err.status === 401 || err.status === 410) && sessionCookie(req) !== null) res.header('set-cookie', clearCookieHeader(req, options));
      return sendPage(res, err.status, req.portal ? page({ ...frameOf(req), title: err.title }, html`<section class="card narrow"><h1>${err.title}</h1><p>${err.message}</p></section>`) : errorPage(err.title, err.message));
    }
    if (err instanceof WharfError && err.status < 500) return sendPage(res, err.status, errorPage('Request refused', err.message));
    const e = err as { statusCode?: number };
    if (e.statusCode !== undefined && e.statusCode < 500) {
      return sendPage(res, e.statusCode, errorPage('Request refused', e.statusCode === 413 ? 'The form is too large.' : 'The request could not be read.'));
    }
    if (isDatabaseUnavailable(err)) {
      req.log.warn({ err }, 'database unavailable');
      res.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
      return sendPage(res, 503, errorPage('Unavailable for a moment', 'The page cannot be shown right now. Try again in a few seconds.'));
    }
    req.log.error({ err }, 'portal request failed');
    return sendPage(res, 500, errorPage('Something went wrong', 'The page could not be shown. Try again in a moment.'));
  });
  app.setNotFoundHandler((_req, res) => sendPage(res, 404, errorPage('Not found', 'There is no such page.')));

  app.get('/assets/:name', async (req, res) => {
    const asset = assets[(req.params as { name: string }).name];
    if (!asset) throw notFoundPage();
    return res.type(asset.type).send(asset.body);
  });

  // Opening a link trades its token for a session cookie, then leaves the token's URL at once.
  app.get('/l/:token', async (req, res) => {
    const { token } = req.params as { token: string };
    const tokenHash = hashToken(token);
    // Reopening a one-time link (the back button) in the browser it opened in just continues.
    const existing = sessionCookie(req);
    const current = existing ? await findPortalSession(pool, existing, { tokenHash }) : null;
    if (current?.token_matches && sessionRefusal(current) === null) return res.redirect('/portal/', 303);
    const session = await withTransaction(pool, async (client) => {
      const opened = await openPortalLink(client, tokenHash);
      if (opened.refused !== null) throw linkRefusal(opened.refused, opened.link);
      return createPortalSession(client, opened.link, options.sessionMinutes);
    });
    const seconds = (session.expires_at.getTime() - Date.now()) / 1000;
    res.header('set-cookie', setCookieHeader(req, options, session.id, seconds));
    return res.redirect('/portal/', 303);
  });

  await app.register(async (portal) => {
    portal.addHook('onRequest', async (req) => {
      const id = sessionCookie(req);
      const s = id ? await findPortalSession(pool, id) : null;
      if (!id || !s) throw linkRefusal('unknown', null);
      const refused = sessionRefusal(s);
      if (refused) throw refused;
      req.portal = { link: s.link, scope: scopeOf(s.link), csrf: s.csrf_token, sessionId: id };
    });
    // Every state-changing request is a form post from a portal page.
    portal.addHook('preHandler', async (req) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') checkForm(req, options, req.portal!.csrf);
    });

    const ctx = (req: FastifyRequest): PortalContext => req.portal!;
    /** The link's project (cached for a few seconds), for the pages that need its settings. */
    const projectOf = async (req: FastifyRequest): Promise<Project> => {
      const project = await deps.projects(ctx(req).scope.projectId);
      if (!project) throw linkRefusal('unknown', null);
      return project;
    };
    const notice = (req: FastifyRequest): string | null => {
      const done = (req.query as Record<string, unknown>).done;
      return typeof done === 'string' ? (NOTICES[done] ?? null) : null;
    };
    const requireManage = (req: FastifyRequest): void => {
      if (!ctx(req).link.can_manage_endpoint) throw forbidden('This link can show endpoints but not change them.');
    };
    const endpointIdOf = (req: FastifyRequest): string => (req.params as { endpointID: string }).endpointID;
    const deliveryIdOf = (req: FastifyRequest): string => (req.params as { deliveryID: string }).deliveryID;

    portal.get('/', async (req, res) => {
      const endpoints = await scopedEndpoints(pool, ctx(req).scope);
      return sendPage(res, 200, endpointsPage({ ...frameOf(req), notice: notice(req) }, endpoints));
    });

    portal.get('/endpoints/:endpointID', async (req, res) => {
      const e = await scopedEndpoint(pool, ctx(req).scope, endpointIdOf(req));
      if (!e) throw notFoundPage();
      return sendPage(res, 200, endpointPage({ ...frameOf(req), title: e.name, notice: notice(req) }, e, null));
    });

    /** A manage action on an endpoint of the scope, in one transaction (404 outside it). */
    const manage = async <T>(req: FastifyRequest, fn: (client: pg.PoolClient, id: string) => Promise<T>): Promise<T> => {
      requireManage(req);
      const id = endpointIdOf(req);
      return withTransaction(pool, async (client) => {
        if (!(await scopedEndpoint(client, ctx(req).scope, id, { forUpdate: true }))) throw notFoundPage();
        return fn(client, id);
      });
    };
    const backTo = (id: string, done: string): string => `/portal/endpoints/${encodeURIComponent(id)}?done=${done}`;

    portal.post('/endpoints/:endpointID/pause', async (req, res) => {
      const e = await manage(req, (client, id) => togglePause(deps, client, ctx(req).scope.projectId, id, ACTOR));
      return res.redirect(backTo(e.id, e.status === 'paused' ? 'paused' : 'unpaused'), 303);
    });

    portal.post('/endpoints/:endpointID/activate', async (req, res) => {
      const e = await manage(req, (client, id) => activateEndpoint(deps, client, ctx(req).scope.projectId, id, ACTOR));
      return res.redirect(backTo(e.id, 'activated'), 303);
    });

    // Only the name, URL and timeout can be changed here, validated as the API validates them;
    // a new URL must answer the reachability ping.
    portal.post('/endpoints/:endpointID/edit', async (req, res) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const form: EndpointForm = {
        name: typeof body.name === 'string' ? body.name : '',
        url: typeof body.url === 'string' ? body.url : '',
        http_timeout: typeof body.http_timeout === 'string' ? body.http_timeout.trim() : '',
      };
      const changes = { name: form.name, url: form.url, http_timeout: /^\d{1,6}$/.test(form.http_timeout) ? Number(form.http_timeout) : form.http_timeout };
      requireManage(req);
      const id = endpointIdOf(req);
      if (!(await scopedEndpoint(pool, ctx(req).scope, id))) throw notFoundPage();
      try {
        // editEndpoint pings a new URL before its own short write transaction, holding no lock meanwhile.
        const project = await projectOf(req);
        const e = await editEndpoint(box, pool, project, id, changes, pingerFor(deps.outbound, project.signature));
        return res.redirect(backTo(e.id, 'saved'), 303);
      } catch (err) {
        if (!(err instanceof WharfError) || err.status !== 400) throw err;
        const e = await scopedEndpoint(pool, ctx(req).scope, endpointIdOf(req));
        if (!e) throw notFoundPage();
        return sendPage(res, 400, endpointPage({ ...frameOf(req), title: e.name, error: err.message }, e, form));
      }
    });

    // Post/redirect/get: the new secret waits, sealed, in the session for the one page that shows
    // it, so reloading that page cannot rotate again and the secret is shown exactly once.
    portal.post('/endpoints/:endpointID/rotate-secret', async (req, res) => {
      const project = await projectOf(req);
      const r = await manage(req, async (client, id) => {
        const rotated = await rotateSecret(box, client, project, id, { by: { type: 'portal_link', id: ctx(req).link.id, via: 'portal' } });
        const flash = { endpoint_id: id, secret: rotated.secret, expiration: rotated.expiration };
        await setSessionFlash(client, ctx(req).sessionId, box.encrypt(JSON.stringify(flash)));
        return rotated;
      });
      return res.redirect(`/portal/endpoints/${encodeURIComponent(r.endpoint.id)}/new-secret`, 303);
    });

    portal.get('/endpoints/:endpointID/new-secret', async (req, res) => {
      const e = await scopedEndpoint(pool, ctx(req).scope, endpointIdOf(req));
      if (!e) throw notFoundPage();
      const sealed = await takeSessionFlash(pool, ctx(req).sessionId);
      const flash = sealed === null ? null : (JSON.parse(box.decrypt(sealed)) as { endpoint_id: string; secret: string; expiration: number });
      if (!flash || flash.endpoint_id !== e.id) return res.redirect(backTo(e.id, 'secret-shown'), 303);
      return sendPage(res, 200, secretPage(frameOf(req), e, flash.secret, flash.expiration));
    });

    portal.get('/deliveries', async (req, res) => {
      const { scope } = ctx(req);
      const endpoints = await scopedEndpoints(pool, scope);
      // The filter's endpoint must be one of the list's (the form offers no other).
      const parsed = parseDeliveryFilters(req.query as Record<string, unknown>, (id) => endpoints.some((e) => e.id === id));
      if (parsed.error !== null) {
        return sendPage(res, 400, deliveriesPage({ ...frameOf(req), error: parsed.error }, endpoints, parsed.values, [], null, false));
      }
      const rows = await scopedDeliveries(pool, scope, parsed.filter);
      const { content, pagination } = toPage(rows, parsed.filter.perPage, (d) => d.id);
      return sendPage(res, 200, deliveriesPage(frameOf(req), endpoints, parsed.values, content, pagination.next_page_cursor, parsed.filter.before !== null));
    });

    portal.get('/deliveries/:deliveryID', async (req, res) => {
      // This page reloads every 2 s while the delivery is on its way: one scoped query, then the
      // event, the attempts and the (cached) project together.
      const { scope } = ctx(req);
      const found = await scopedDelivery(pool, scope, deliveryIdOf(req));
      if (!found) {
        // Said for any id made before the project's purge cutoff: it names the policy, never a row.
        const purged = await purgedReason(pool, scope.projectId, 'events', deliveryIdOf(req));
        throw purged ? new PortalRefusal(404, 'WHARF_ERR_PURGED', 'No longer kept', `This delivery was ${purged}.`) : notFoundPage();
      }
      const { delivery, endpoint } = found;
      const [event, sent, project] = await Promise.all([findEvent(pool, scope.projectId, delivery.event_id), deliveryAttempts(pool, scope.projectId, delivery.id), projectOf(req)]);
      const attempts = sent.map((a) => ({ ...a, request_headers: redactRequestHeaders(a.request_headers, project.signature.header) }));
      let sentBody: string | null = null;
      if (event && endpoint.content_type !== 'application/json') {
        try {
          sentBody = bodyFor(event.data, endpoint.content_type);
        } catch {
          sentBody = null;
        }
      }
      return sendPage(res, 200, deliveryPage({ ...frameOf(req), notice: notice(req) }, { delivery, endpoint, event, attempts, sentBody }));
    });

    portal.post('/deliveries/:deliveryID/retry', async (req, res) => {
      const { scope } = ctx(req);
      const id = deliveryIdOf(req);
      await withTransaction(pool, async (client) => {
        // Locks the delivery, so its status cannot change before resendDelivery (which re-reads it
        // under the lock already held) makes it scheduled.
        const found = await scopedDelivery(client, scope, id, { forUpdate: true });
        if (!found) throw notFoundPage();
        const { status } = found.delivery;
        if (!RETRYABLE.includes(status)) {
          throw new PortalRefusal(409, 'WHARF_ERR_CONFLICT', 'Not retried', `This delivery is ${status}; only failed or discarded deliveries can be retried.`);
        }
        await resendDelivery(deps, client, scope.projectId, id, ACTOR);
      });
      return res.redirect(`/portal/deliveries/${id}?done=retried`, 303);
    });

    portal.post('/logout', async (req, res) => {
      await deletePortalSession(pool, ctx(req).sessionId);
      req.portal = null;
      res.header('set-cookie', clearCookieHeader(req, options));
      return sendPage(res, 200, errorPage('Signed out', 'You have left the portal. Open your link again to come back (a one-time link opens only once).'));
    });
  });
}
