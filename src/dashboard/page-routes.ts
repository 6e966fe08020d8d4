/**
 * The pages of one project (/dashboard/projects/{id}/…). Reading and acting both go through the
 * REST API (`call`): a form's POST becomes the API call the REST client would make, and what the
 * API refuses is shown on the form with its message, which names the field.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { portalBaseUrl, type PortalOptions } from '../portal/options.ts';
import type { SecretBox } from '../store/crypto.ts';
import { ApiRefusal, apiTime, notFoundPage, fieldText, listVia, type ApiData, type CallApi } from './api-client.ts';
import { EMPTY_FORM, bodyOf, formOf, readForm } from './endpoint-form.ts';
import { endpointPage, endpointsPage, newEndpointPage, secretPage, type EndpointFilters } from './endpoint-pages.ts';
import { FORCE_PREFIX, batchRetryPage, deliveriesPage, deliveryPage, eventPage, eventsPage, linkCreatedPage, portalLinksPage, type DeliveryFilters, type EventFilters, type TimeFilters } from './delivery-pages.ts';
import { batchRetryFilter } from '../api/deliveries-routes.ts';
import { countMatching } from '../dispatch/batch-retry.ts';
import { WharfError } from '../core/errors.ts';
import { href } from '../web/html.ts';
import { overviewPage, projectPath, type Frame } from './pages.ts';
import type { SourceLine } from './source-pages.ts';
import { setFlash, takeFlash } from './sessions.ts';
import { projectSummaries } from './summary.ts';

export interface PageDeps {
  pool: pg.Pool;
  box: SecretBox;
  portal: PortalOptions;
  /** Broker types the sources API may create (config `ingest.api_broker_types`). */
  apiBrokerTypes: readonly string[];
  projectOf: (req: FastifyRequest, res: FastifyReply) => Promise<{ id: string; name: string; call: CallApi; frame: Frame }>;
  sendPage: (res: FastifyReply, status: number, body: string) => FastifyReply;
  query: (values: Record<string, string | null | undefined>) => string;
}

/** Confirmations after a form, by key: a page never echoes request text as a message. */
export const NOTICES: Record<string, string> = {
  created: 'Endpoint created.',
  saved: 'Settings saved.',
  'saved-pinged': 'Settings saved; the new URL answered the ping.',
  paused: 'Endpoint paused.',
  unpaused: 'Endpoint unpaused.',
  activated: 'Endpoint activated.',
  deleted: 'Endpoint deleted.',
  resent: 'Resend scheduled. This page looks again until the new attempt is in.',
  revoked: 'Portal link revoked; its sessions have ended.',
  'batch-retried': 'Batch retry queued: the matching deliveries are sent again in the background.',
  'force-resent': 'The selected deliveries are being sent again.',
  'force-resent-partly': 'Some of the selected deliveries are being sent again; the others could not be (gone, or not of this project).',
  'none-selected': 'No delivery was selected.',
  replayed: 'Dead letter replayed: this is the event it became.',
  'replayed-duplicate': 'Dead letter replayed: the event already existed, and this is it.',
  'sub-created': 'Subscription created.',
  'sub-saved': 'Subscription saved.',
  'sub-deleted': 'Subscription deleted.',
  'secret-shown': 'The new secret was shown once and is not shown again. Rotate again if it was lost.',
  'source-created': 'Source created.',
  'source-saved': 'Source saved.',
  'source-deleted': 'Source deleted.',
};

type Flash = { kind: 'secret'; endpoint_id: string; secret: string; message: string } | { kind: 'link'; name: string; url: string };

const text = fieldText;
const seg = encodeURIComponent;

const timesOf = (q: unknown): TimeFilters => ({ start_date: text(q, 'start_date'), end_date: text(q, 'end_date') });
const deliveryFilters = (q: unknown): DeliveryFilters => ({ status: text(q, 'status'), endpoint_id: text(q, 'endpoint_id'), event_type: text(q, 'event_type'), ...timesOf(q) });
/** The filters as the API takes them: times from the page's datetime fields in Convoy's layout. */
const apiFilters = <F extends TimeFilters>(f: F): F => ({ ...f, start_date: apiTime(f.start_date), end_date: apiTime(f.end_date) });

export async function dashboardPages(app: FastifyInstance, deps: PageDeps): Promise<void> {
  const { pool, box, projectOf, sendPage, query } = deps;
  const notice = (req: FastifyRequest): string | null => NOTICES[text(req.query, 'done')] ?? null;
  const idOf = (req: FastifyRequest, key: string): string => (req.params as Record<string, string>)[key]!;
  const flash = async (req: FastifyRequest, f: Flash): Promise<void> => setFlash(pool, req.dashboard!.sessionId, box.encrypt(JSON.stringify(f)));
  const takeOnce = async (req: FastifyRequest): Promise<Flash | null> => {
    const sealed = await takeFlash(pool, req.dashboard!.sessionId);
    return sealed === null ? null : (JSON.parse(box.decrypt(sealed)) as Flash);
  };
  const list = listVia;

  const call = async (c: CallApi, path: string): Promise<ApiData> => (await c('GET', path)).data;

  app.get('/', async (req, res) => {
    const p = await projectOf(req, res);
    const [summary] = await projectSummaries(pool, [{ id: p.id, name: p.name }]);
    const [sources, alerts] = await Promise.all([call(p.call, '/sources?per_page=100'), call(p.call, '/meta-events?per_page=10')]);
    return sendPage(res, 200, overviewPage({ ...p.frame, notice: notice(req) }, summary!, sources.content as SourceLine[], alerts.content));
  });

  // Endpoints. The API filters by owner and name; the state filter applies to the page it returns.
  app.get('/endpoints', async (req, res) => {
    const p = await projectOf(req, res);
    const filters: EndpointFilters = { owner_id: text(req.query, 'owner_id'), status: text(req.query, 'status'), q: text(req.query, 'q') };
    const got = await list(p.call, `/endpoints${query({ owner_id: filters.owner_id, q: filters.q, per_page: '100', next_page_cursor: text(req.query, 'next_page_cursor') })}`);
    const rows = filters.status ? got.rows.filter((e) => String(e.status).toLowerCase() === filters.status) : got.rows;
    return sendPage(res, got.error ? 400 : 200, endpointsPage({ ...p.frame, notice: notice(req), error: got.error }, p.id, filters, rows, got.next));
  });

  app.get('/endpoints/new', async (req, res) => {
    const p = await projectOf(req, res);
    return sendPage(res, 200, newEndpointPage(p.frame, p.id, EMPTY_FORM));
  });

  app.post('/endpoints/new', async (req, res) => {
    const p = await projectOf(req, res);
    const form = readForm(req.body);
    try {
      const { data } = await p.call('POST', '/endpoints', bodyOf(form, null));
      // The creation answer is the one place the endpoint's first secret is shown.
      const secret = (data.secrets ?? []).find((s: ApiData) => typeof s.value === 'string')?.value as string | undefined;
      if (secret) {
        await flash(req, { kind: 'secret', endpoint_id: data.uid, secret, message: 'Endpoint created. Its receiver checks signatures with this secret' });
        return res.redirect(projectPath(p.id, 'endpoints', data.uid, 'new-secret'), 303);
      }
      return res.redirect(`${projectPath(p.id, 'endpoints', data.uid)}?done=created`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return sendPage(res, err.status, newEndpointPage({ ...p.frame, error: err.message }, p.id, form));
    }
  });

  app.get('/endpoints/:endpointID', async (req, res) => {
    const p = await projectOf(req, res);
    const e = await call(p.call, `/endpoints/${seg(idOf(req, 'endpointID'))}`);
    return sendPage(res, 200, endpointPage({ ...p.frame, notice: notice(req) }, p.id, e, formOf(e)));
  });

  app.post('/endpoints/:endpointID/edit', async (req, res) => {
    const p = await projectOf(req, res);
    const path = `/endpoints/${seg(idOf(req, 'endpointID'))}`;
    const before = await call(p.call, path);
    const form = readForm(req.body);
    try {
      const { data } = await p.call('PUT', path, bodyOf(form, before));
      const pinged = data.url !== before.url && form.skip_ping !== 'on';
      return res.redirect(`${projectPath(p.id, 'endpoints', data.uid)}?done=${pinged ? 'saved-pinged' : 'saved'}`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return sendPage(res, err.status, endpointPage({ ...p.frame, error: err.message }, p.id, before, form));
    }
  });

  /** An endpoint action: the API call, then back to the endpoint with a notice. */
  const action = (name: string, method: 'PUT' | 'POST', apiPath: string, done: (data: ApiData) => string): void => {
    app.post(`/endpoints/:endpointID/${name}`, async (req, res) => {
      const p = await projectOf(req, res);
      const id = idOf(req, 'endpointID');
      const { data } = await p.call(method, `/endpoints/${seg(id)}${apiPath}`);
      return res.redirect(`${projectPath(p.id, 'endpoints', id)}?done=${done(data)}`, 303);
    });
  };
  action('pause', 'PUT', '/pause', (e) => (e.status === 'paused' ? 'paused' : 'unpaused'));
  action('activate', 'POST', '/activate', () => 'activated');

  app.post('/endpoints/:endpointID/delete', async (req, res) => {
    const p = await projectOf(req, res);
    await p.call('DELETE', `/endpoints/${seg(idOf(req, 'endpointID'))}`);
    return res.redirect(`${projectPath(p.id, 'endpoints')}?done=deleted`, 303);
  });

  // Post/redirect/get: the new secret waits, sealed, in the session for the one page that shows
  // it, so a reload cannot rotate again and the secret is shown exactly once.
  app.post('/endpoints/:endpointID/rotate-secret', async (req, res) => {
    const p = await projectOf(req, res);
    const id = idOf(req, 'endpointID');
    const raw = text(req.body, 'expiration');
    const expiration = /^\d{1,9}$/.test(raw) ? Number(raw) : raw;
    try {
      const { data, message } = await p.call('PUT', `/endpoints/${seg(id)}/expire_secret`, { expiration });
      const secret = (data.secrets ?? []).find((s: ApiData) => typeof s.value === 'string')?.value as string;
      await flash(req, { kind: 'secret', endpoint_id: data.uid, secret, message });
      return res.redirect(projectPath(p.id, 'endpoints', id, 'new-secret'), 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      const e = await call(p.call, `/endpoints/${seg(id)}`);
      return sendPage(res, err.status, endpointPage({ ...p.frame, error: err.message }, p.id, e, formOf(e)));
    }
  });

  app.get('/endpoints/:endpointID/new-secret', async (req, res) => {
    const p = await projectOf(req, res);
    const e = await call(p.call, `/endpoints/${seg(idOf(req, 'endpointID'))}`);
    const f = await takeOnce(req);
    if (!f || f.kind !== 'secret' || f.endpoint_id !== e.uid) return res.redirect(`${projectPath(p.id, 'endpoints', e.uid)}?done=secret-shown`, 303);
    return sendPage(res, 200, secretPage(p.frame, p.id, e, f.secret, f.message));
  });

  // Events and deliveries.
  app.get('/events', async (req, res) => {
    const p = await projectOf(req, res);
    const filters: EventFilters = { event_type: text(req.query, 'event_type'), endpoint_id: text(req.query, 'endpoint_id'), idempotency_key: text(req.query, 'idempotency_key'), ...timesOf(req.query) };
    const got = await list(p.call, `/events${query({ ...apiFilters(filters), next_page_cursor: text(req.query, 'next_page_cursor') })}`);
    return sendPage(res, got.error ? 400 : 200, eventsPage({ ...p.frame, error: got.error }, p.id, filters, got.rows, got.next));
  });

  app.get('/events/:eventID', async (req, res) => {
    const p = await projectOf(req, res);
    const e = await call(p.call, `/events/${seg(idOf(req, 'eventID'))}`);
    const deliveries = await call(p.call, `/eventdeliveries${query({ event_id: e.uid, per_page: '100' })}`);
    return sendPage(res, 200, eventPage({ ...p.frame, notice: notice(req) }, p.id, e, deliveries.content));
  });

  app.get('/deliveries', async (req, res) => {
    const p = await projectOf(req, res);
    const filters = deliveryFilters(req.query);
    const got = await list(p.call, `/eventdeliveries${query({ ...apiFilters(filters), next_page_cursor: text(req.query, 'next_page_cursor') })}`);
    return sendPage(res, got.error ? 400 : 200, deliveriesPage({ ...p.frame, notice: notice(req), error: got.error }, p.id, filters, got.rows, got.next));
  });

  // Batch retry: the page counts what the filters match, read as the API reads them, and the
  // confirmation is the API's batch retry with the same filters.
  app.get('/deliveries/batch-retry', async (req, res) => {
    const p = await projectOf(req, res);
    const filters = deliveryFilters(req.query);
    try {
      const count = await countMatching(pool, { ...batchRetryFilter(apiFilters(filters), p.id), cutoff: 'infinity' });
      return sendPage(res, 200, batchRetryPage(p.frame, p.id, filters, count));
    } catch (err) {
      if (!(err instanceof WharfError) || err.status !== 400) throw err;
      return sendPage(res, 400, batchRetryPage({ ...p.frame, error: err.message }, p.id, filters, null));
    }
  });

  app.post('/deliveries/batch-retry', async (req, res) => {
    const p = await projectOf(req, res);
    const filters = deliveryFilters(req.body);
    try {
      await p.call('POST', '/eventdeliveries/batchretry', apiFilters(filters));
      return res.redirect(href(projectPath(p.id, 'deliveries'), { ...filters, done: 'batch-retried' }), 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return sendPage(res, err.status, batchRetryPage({ ...p.frame, error: err.message }, p.id, filters, null));
    }
  });

  app.post('/deliveries/force-resend', async (req, res) => {
    const p = await projectOf(req, res);
    const ids = Object.keys((req.body ?? {}) as object).filter((k) => k.startsWith(FORCE_PREFIX)).map((k) => k.slice(FORCE_PREFIX.length));
    if (ids.length === 0) return res.redirect(`${projectPath(p.id, 'deliveries')}?done=none-selected`, 303);
    const { data } = await p.call('POST', '/eventdeliveries/forceresend', { ids });
    // The API answers 200 with a count of failures; when none was resent, none was found here.
    if (data.successes === 0) throw notFoundPage();
    // One delivery: back to it, where the new attempt shows; several: the list.
    if (ids.length === 1 && data.successes === 1) return res.redirect(`${projectPath(p.id, 'deliveries', ids[0]!)}?done=resent`, 303);
    return res.redirect(`${projectPath(p.id, 'deliveries')}?done=${data.failures === 0 ? 'force-resent' : 'force-resent-partly'}`, 303);
  });

  app.get('/deliveries/:deliveryID', async (req, res) => {
    const p = await projectOf(req, res);
    const path = `/eventdeliveries/${seg(idOf(req, 'deliveryID'))}`;
    // The delivery first, then its attempts: an outcome writes both in one transaction, so the
    // attempts read after the delivery hold every attempt its summary counts. A page whose summary
    // is final (nothing more refreshes it) then shows them all; read the other way round, an
    // outcome committed between the reads left a final summary over the attempts from before it,
    // and the page stayed so. A new attempt under a summary from before it is the smaller fault:
    // that summary is still on its way, and the page looks again in two seconds.
    const d = await call(p.call, path);
    const attempts = await call(p.call, `${path}/deliveryattempts`);
    return sendPage(res, 200, deliveryPage({ ...p.frame, notice: notice(req) }, p.id, d, attempts));
  });

  app.post('/deliveries/:deliveryID/resend', async (req, res) => {
    const p = await projectOf(req, res);
    const id = idOf(req, 'deliveryID');
    await p.call('PUT', `/eventdeliveries/${seg(id)}/resend`);
    return res.redirect(`${projectPath(p.id, 'deliveries', id)}?done=resent`, 303);
  });

  // Portal links.
  const linksPage = async (req: FastifyRequest, res: FastifyReply, p: Awaited<ReturnType<typeof projectOf>>, form: Record<string, string>, error: string | null, status: number) => {
    const { data } = await p.call('GET', '/portal-links?per_page=100');
    return sendPage(res, status, portalLinksPage({ ...p.frame, notice: notice(req), error }, p.id, data.content, form));
  };
  app.get('/portal-links', async (req, res) => linksPage(req, res, await projectOf(req, res), {}, null, 200));

  app.post('/portal-links', async (req, res) => {
    const p = await projectOf(req, res);
    const form: Record<string, string> = {};
    for (const k of ['name', 'owner_id', 'endpoints', 'kind', 'expires_at', 'can_manage_endpoint']) form[k] = text(req.body, k);
    const body: Record<string, unknown> = {
      name: form.name,
      kind: form.kind || 'one_time',
      can_manage_endpoint: form.can_manage_endpoint === 'on',
      ...(form.owner_id ? { owner_id: form.owner_id } : {}),
      ...(form.endpoints ? { endpoints: form.endpoints.split(',').map((s) => s.trim()).filter((s) => s !== '') } : {}),
      ...(form.expires_at ? { expires_at: form.expires_at } : {}),
    };
    try {
      const { data } = await p.call('POST', '/portal-links', body);
      // The API derives the link's base from the request it was given, which here is in-process
      // (no socket, no port): the base comes from the browser's request instead, as the API's would.
      const path = /\/portal\/l\/[^/?#]+$/.exec(String(data.url))?.[0];
      if (!path) throw new Error('the API answered a portal link without its /portal/l/ URL');
      await flash(req, { kind: 'link', name: data.name, url: `${portalBaseUrl(deps.portal, req)}${path}` });
      return res.redirect(projectPath(p.id, 'portal-links', 'created'), 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return linksPage(req, res, p, form, err.message, err.status);
    }
  });

  app.get('/portal-links/created', async (req, res) => {
    const p = await projectOf(req, res);
    const f = await takeOnce(req);
    if (!f || f.kind !== 'link') return res.redirect(projectPath(p.id, 'portal-links'), 303);
    return sendPage(res, 200, linkCreatedPage(p.frame, p.id, f.name, f.url));
  });

  app.post('/portal-links/:linkID/revoke', async (req, res) => {
    const p = await projectOf(req, res);
    await p.call('PUT', `/portal-links/${seg(idOf(req, 'linkID'))}/revoke`);
    return res.redirect(`${projectPath(p.id, 'portal-links')}?done=revoked`, 303);
  });

}
