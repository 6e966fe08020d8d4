/**
 * The pages of a project's sources, dead letters and subscriptions. As on every dashboard page,
 * reading and acting go through the REST API (`call`); what it refuses is shown with its message,
 * which names the field.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiRefusal, fieldText as text, listVia, type ApiData, type CallApi } from './api-client.ts';
import { NOTICES, type PageDeps } from './page-routes.ts';
import { projectPath, type Frame } from './pages.ts';
import { deadLettersPage, newSourcePage, sourcePage, sourcesPage, type DeadLetterFilters } from './source-pages.ts';
import { EMPTY_SOURCE, jsonField, readSourceForm, shownSettings, sourceBody, sourceFormOf, type SourceForm } from './source-form.ts';
import {
  EMPTY_SUBSCRIPTION,
  newSubscriptionPage,
  subscriptionFormOf,
  subscriptionPage,
  subscriptionsPage,
  type FilterTest,
  type SubscriptionForm,
} from './subscription-pages.ts';

const seg = encodeURIComponent;

type Project = Awaited<ReturnType<PageDeps['projectOf']>>;

const NO_TEST: FilterTest = { filter: '', body: '{\n  \n}', headers: '{}', matches: null };


function readSubscriptionForm(body: unknown): SubscriptionForm {
  return { name: text(body, 'name'), endpoint_id: text(body, 'endpoint_id'), source_id: text(body, 'source_id'), event_types: text(body, 'event_types'), filter: text(body, 'filter') };
}

/** The API body of a subscription form; the API checks every part and names what is wrong. */
function subscriptionBody(f: SubscriptionForm): Record<string, unknown> {
  const types = f.event_types.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return {
    ...(f.name ? { name: f.name } : {}),
    endpoint_id: f.endpoint_id,
    source_id: f.source_id === '' ? null : f.source_id,
    filter_config: { event_types: types.length === 0 ? ['*'] : types, filter: jsonField(f.filter, 'filter_config.filter', { body: {}, headers: {} }) },
  };
}

export async function sourcePages(app: FastifyInstance, deps: PageDeps): Promise<void> {
  const { projectOf, sendPage, query } = deps;
  const notice = (req: FastifyRequest): string | null => NOTICES[text(req.query, 'done')] ?? null;
  const idOf = (req: FastifyRequest, key: string): string => (req.params as Record<string, string>)[key]!;
  const get = async (call: CallApi, path: string): Promise<ApiData> => (await call('GET', path)).data;

  // Sources.
  app.get('/sources', async (req, res) => {
    const p = await projectOf(req, res);
    return sendPage(res, 200, sourcesPage({ ...p.frame, notice: notice(req) }, p.id, (await get(p.call, '/sources?per_page=100')).content));
  });

  app.get('/sources/new', async (req, res) => {
    const p = await projectOf(req, res);
    return sendPage(res, 200, newSourcePage(p.frame, p.id, EMPTY_SOURCE, deps.apiBrokerTypes));
  });

  /** The form as typed, fit to show again: credentials never come back into the page. */
  const refilled = (form: SourceForm, stored: ApiData | null): SourceForm => ({ ...form, settings: shownSettings(form, stored) });

  app.post('/sources/new', async (req, res) => {
    const p = await projectOf(req, res);
    const form = readSourceForm(req.body);
    try {
      const { data } = await p.call('POST', '/sources', sourceBody(form, null));
      return res.redirect(`${projectPath(p.id, 'sources', data.uid)}?done=source-created`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return sendPage(res, err.status, newSourcePage({ ...p.frame, error: err.message }, p.id, refilled(form, null), deps.apiBrokerTypes));
    }
  });

  const sourcePageOf = async (p: Project, s: ApiData, form: SourceForm, f: Frame): Promise<string> => {
    const letters = s.type === 'http' ? [] : (await get(p.call, `/deadletters${query({ source_id: s.uid, per_page: '10' })}`)).content;
    return sourcePage(f, p.id, s, letters, form);
  };

  app.get('/sources/:sourceID', async (req, res) => {
    const p = await projectOf(req, res);
    const s = await get(p.call, `/sources/${seg(idOf(req, 'sourceID'))}`);
    return sendPage(res, 200, await sourcePageOf(p, s, sourceFormOf(s), { ...p.frame, notice: notice(req) }));
  });

  app.post('/sources/:sourceID/edit', async (req, res) => {
    const p = await projectOf(req, res);
    const path = `/sources/${seg(idOf(req, 'sourceID'))}`;
    const before = await get(p.call, path);
    const form = { ...readSourceForm(req.body), type: before.type as string };
    try {
      await p.call('PUT', path, sourceBody(form, before));
      return res.redirect(`${projectPath(p.id, 'sources', before.uid)}?done=source-saved`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return sendPage(res, err.status, await sourcePageOf(p, before, refilled(form, before), { ...p.frame, error: err.message }));
    }
  });

  app.post('/sources/:sourceID/delete', async (req, res) => {
    const p = await projectOf(req, res);
    await p.call('DELETE', `/sources/${seg(idOf(req, 'sourceID'))}`);
    return res.redirect(`${projectPath(p.id, 'sources')}?done=source-deleted`, 303);
  });

  // Dead letters.
  app.get('/dead-letters', async (req, res) => {
    const p = await projectOf(req, res);
    const filters: DeadLetterFilters = { source_id: text(req.query, 'source_id'), code: text(req.query, 'code'), replayed: text(req.query, 'replayed') };
    const got = await listVia(p.call, `/deadletters${query({ ...filters, next_page_cursor: text(req.query, 'next_page_cursor') })}`);
    return sendPage(res, got.error ? 400 : 200, deadLettersPage({ ...p.frame, notice: notice(req), error: got.error }, p.id, filters, got.rows, got.next));
  });

  // A replay the API refuses (still broken: 422; replayed already or source gone: 409) is shown
  // above the list with the API's reason.
  app.post('/dead-letters/:letterID/replay', async (req, res) => {
    const p = await projectOf(req, res);
    try {
      const { data } = await p.call('POST', `/deadletters/${seg(idOf(req, 'letterID'))}/replay`);
      return res.redirect(`${projectPath(p.id, 'events', data.event_id)}?done=${data.duplicate ? 'replayed-duplicate' : 'replayed'}`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      const got = await listVia(p.call, '/deadletters');
      return sendPage(res, err.status, deadLettersPage({ ...p.frame, error: err.message }, p.id, { source_id: '', code: '', replayed: '' }, got.rows, got.next));
    }
  });

  // Subscriptions.
  const choices = async (call: CallApi): Promise<{ endpoints: ApiData[]; sources: ApiData[] }> => {
    const [endpoints, sources] = await Promise.all([get(call, '/endpoints?per_page=100'), get(call, '/sources?per_page=100')]);
    return { endpoints: endpoints.content, sources: sources.content };
  };
  const listPage = async (req: FastifyRequest, res: FastifyReply, p: Project, test: FilterTest, error: string | null, status: number) => {
    const subs = (await get(p.call, '/subscriptions')).content;
    return sendPage(res, status, subscriptionsPage({ ...p.frame, notice: notice(req), error }, p.id, subs, test));
  };

  app.get('/subscriptions', async (req, res) => listPage(req, res, await projectOf(req, res), NO_TEST, null, 200));

  app.get('/subscriptions/new', async (req, res) => {
    const p = await projectOf(req, res);
    const c = await choices(p.call);
    return sendPage(res, 200, newSubscriptionPage(p.frame, p.id, { ...EMPTY_SUBSCRIPTION, endpoint_id: text(req.query, 'endpoint_id') }, c.endpoints, c.sources));
  });

  app.post('/subscriptions/new', async (req, res) => {
    const p = await projectOf(req, res);
    const form = readSubscriptionForm(req.body);
    try {
      const { data } = await p.call('POST', '/subscriptions', subscriptionBody(form));
      return res.redirect(`${projectPath(p.id, 'subscriptions', data.uid)}?done=sub-created`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      const c = await choices(p.call);
      return sendPage(res, err.status, newSubscriptionPage({ ...p.frame, error: err.message }, p.id, form, c.endpoints, c.sources));
    }
  });

  // A filter tried on a sample: the API's verdict, shown under the box with what was typed.
  app.post('/subscriptions/test-filter', async (req, res) => {
    const p = await projectOf(req, res);
    const test: FilterTest = { filter: text(req.body, 'filter'), body: text(req.body, 'body'), headers: text(req.body, 'headers'), matches: null };
    try {
      const given = {
        filter: jsonField(test.filter, 'filter', null),
        request: { body: jsonField(test.body, 'request.body', null), headers: jsonField(test.headers, 'request.headers', {}) },
      };
      const { data } = await p.call('POST', '/subscriptions/test_filter', given);
      return listPage(req, res, p, { ...test, matches: data === true }, null, 200);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      return listPage(req, res, p, test, err.message, err.status);
    }
  });

  app.get('/subscriptions/:subscriptionID', async (req, res) => {
    const p = await projectOf(req, res);
    const s = await get(p.call, `/subscriptions/${seg(idOf(req, 'subscriptionID'))}`);
    const c = await choices(p.call);
    const form = subscriptionFormOf(s);
    return sendPage(res, 200, subscriptionPage({ ...p.frame, notice: notice(req) }, p.id, s, form, c.endpoints, c.sources, { ...NO_TEST, filter: form.filter }));
  });

  app.post('/subscriptions/:subscriptionID/edit', async (req, res) => {
    const p = await projectOf(req, res);
    const path = `/subscriptions/${seg(idOf(req, 'subscriptionID'))}`;
    const before = await get(p.call, path);
    const form = readSubscriptionForm(req.body);
    try {
      await p.call('PUT', path, subscriptionBody(form));
      return res.redirect(`${projectPath(p.id, 'subscriptions', before.uid)}?done=sub-saved`, 303);
    } catch (err) {
      if (!(err instanceof ApiRefusal)) throw err;
      const c = await choices(p.call);
      return sendPage(res, err.status, subscriptionPage({ ...p.frame, error: err.message }, p.id, before, form, c.endpoints, c.sources, { ...NO_TEST, filter: form.filter }));
    }
  });

  app.post('/subscriptions/:subscriptionID/delete', async (req, res) => {
    const p = await projectOf(req, res);
    await p.call('DELETE', `/subscriptions/${seg(idOf(req, 'subscriptionID'))}`);
    return res.redirect(`${projectPath(p.id, 'subscriptions')}?done=sub-deleted`, 303);
  });
}
