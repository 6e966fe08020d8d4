import type { FastifyInstance } from 'fastify';
import { WharfError, invalid, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { CONTENT_TYPES, ENDPOINT_SETTINGS, type Endpoint, type EndpointContentType, type SignatureScheme, type SignatureSettings } from '../core/types.ts';
import type { OutboundDeps } from '../delivery/outbound.ts';
import { requireReachable, type PingTarget } from '../delivery/ping.ts';
import { parseSubscription } from '../ingest/subscription-settings.ts';
import { getSource } from '../store/sources.ts';
import { saveSubscription } from '../store/subscriptions.ts';
import { generateSecret, validateSecret } from '../delivery/signatures.ts';
import { CREDENTIAL_KEYS, NO_CREDENTIALS, credentialSecretKeys, readCredentials, type EndpointCredentials } from '../delivery/credentials.ts';
import { redactKeys, restoreRedacted } from '../core/redact.ts';
import { Reader } from '../core/settings.ts';
import type { SecretBox } from '../store/crypto.ts';
import { MAX_EXPIRATION, activateEndpoint, rotateSecret, togglePause } from '../dispatch/operations.ts';
import {
  deleteEndpoint,
  getEndpoint,
  insertEndpoint,
  listEndpoints,
  listSecretInfo,
  liveSecrets,
  loadCredentials,
  saveCredentials,
  updateEndpoint,
  type EndpointFields,
  type ListedEndpoint,
} from '../store/endpoints.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { pageRequest, toPage } from './pagination.ts';
import { reply, type ApiDeps } from './server.ts';
import { boolean, email, httpUrl, integer, object, onlyKeys, settingsError, string, type Json } from './validate.ts';

const MAX_BULK = 1000;
/** Bulk onboarding pings this many endpoints at once. */
const BULK_PINGS = 8;

/** How credentials appear in an answer. */
function shownCredentials(c: EndpointCredentials): Json {
  return redactKeys({ ...c }, credentialSecretKeys(c)) as unknown as Json;
}

/** A new endpoint's fields, credentials and secret from a request body (400 names the field). */
function newEndpoint(body: Json, scheme: SignatureScheme): { fields: EndpointFields; secret: string; credentials: EndpointCredentials } {
  const f = readFields(body);
  if (f.url === undefined) throw invalid('url', 'is required');
  if (f.name === undefined) throw invalid('name', 'is required');
  const secret = f.secret ?? generateSecret(scheme);
  const why = validateSecret(scheme, secret);
  if (why) throw invalid('secret', why);
  return {
    secret,
    credentials: f.credentials ?? NO_CREDENTIALS,
    fields: {
      name: f.name,
      url: f.url,
      owner_id: f.owner_id ?? null,
      description: f.description ?? '',
      http_timeout: f.http_timeout ?? 10,
      advanced_signatures: f.advanced_signatures ?? true,
      support_email: f.support_email ?? null,
      notification_url: f.notification_url ?? null,
      content_type: f.content_type ?? 'application/json',
      rate_limit: f.rate_limit ?? 0,
      rate_limit_duration: f.rate_limit_duration ?? 60,
    },
  };
}

const FIELDS = ENDPOINT_SETTINGS;

/** `skip_ping_validation` asks for no reachability check; it is a request flag, never stored. */
function withoutSkip(body: Json): { skip: boolean; body: Json } {
  const skip = boolean(body, 'skip_ping_validation') ?? false;
  const { skip_ping_validation: _, ...rest } = body;
  return { skip, body: rest };
}

/** Checks an endpoint's reachability with what it will be saved with; the API's and the portal's. */
export type Pinger = (e: PingTarget, secrets: { value: string }[], credentials: EndpointCredentials) => Promise<void>;

export const pingerFor = (outbound: OutboundDeps, signature: SignatureSettings): Pinger => (e, secrets, credentials) =>
  requireReachable(outbound, signature, e, secrets, credentials);

/** Reads the writable fields present in a body; absent ones stay undefined. */
function readFields(body: Json): Partial<EndpointFields> & { secret?: string; credentials?: EndpointCredentials } {
  onlyKeys(body, FIELDS);
  const out: Partial<EndpointFields> & { secret?: string; credentials?: EndpointCredentials } = {};
  if (CREDENTIAL_KEYS.some((k) => k in body)) {
    const r = new Reader();
    out.credentials = readCredentials(r, body, '');
    if (r.issues.length > 0) throw settingsError(r.issues, '');
  }
  const name = string(body, 'name', { max: 200 });
  if (name !== undefined) out.name = name;
  const url = httpUrl(body, 'url', false);
  if (url !== undefined) out.url = url;
  if ('owner_id' in body) out.owner_id = string(body, 'owner_id', { max: 200 }) ?? null;
  if ('description' in body) out.description = string(body, 'description', { max: 2000, empty: true }) ?? '';
  const timeout = integer(body, 'http_timeout', 1, 300);
  if (timeout !== undefined) out.http_timeout = timeout;
  const adv = boolean(body, 'advanced_signatures');
  if (adv !== undefined) out.advanced_signatures = adv;
  if ('support_email' in body) out.support_email = email(body, 'support_email') ?? null;
  if ('notification_url' in body) out.notification_url = httpUrl(body, 'notification_url', false) ?? null;
  const secret = string(body, 'secret', { max: 1024 });
  if (secret !== undefined) out.secret = secret;
  const contentType = string(body, 'content_type', { max: 100 });
  if (contentType !== undefined) {
    if (!CONTENT_TYPES.includes(contentType as EndpointContentType)) throw invalid('content_type', `must be one of ${CONTENT_TYPES.join(', ')}`);
    out.content_type = contentType as EndpointContentType;
  }
  const rateLimit = integer(body, 'rate_limit', 0, 1_000_000);
  if (rateLimit !== undefined) out.rate_limit = rateLimit;
  const duration = integer(body, 'rate_limit_duration', 1, 86_400);
  if (duration !== undefined) out.rate_limit_duration = duration;
  return out;
}

/**
 * Changes the fields a body names (PUT semantics for the keys present; absent keys keep their
 * value). Secrets sent back as "********" keep what is stored. 400 names a wrong field.
 */
export async function editEndpoint(
  box: SecretBox,
  db: Queryable,
  projectId: string,
  endpointID: string,
  body: Json,
  ping?: Pinger,
): Promise<Endpoint> {
  const current = await getEndpoint(db, projectId, endpointID);
  if (!current) throw notFound('endpoint', endpointID);
  const stored = (await loadCredentials(db, box, projectId, [endpointID])).get(endpointID) ?? NO_CREDENTIALS;
  const f = readFields(restoreRedacted(body, stored, credentialSecretKeys(stored)) as Json);
  if (f.secret !== undefined) {
    throw invalid('secret', 'cannot be changed here; rotate it with PUT /endpoints/{id}/expire_secret');
  }
  let credentials = stored;
  if (f.credentials) {
    credentials = { ...stored };
    for (const k of CREDENTIAL_KEYS) if (k in body) (credentials as unknown as Record<string, unknown>)[k] = f.credentials[k];
  }
  // A new URL is tried as the endpoint will be (its secrets, credentials and settings) before it is saved.
  if (ping && f.url !== undefined && f.url !== current.url) {
    const secrets = (await liveSecrets(db, box, projectId, [endpointID])).get(endpointID) ?? [];
    await ping({ ...current, url: f.url, http_timeout: f.http_timeout ?? current.http_timeout, content_type: f.content_type ?? current.content_type,
      advanced_signatures: f.advanced_signatures ?? current.advanced_signatures }, secrets, credentials);
  }
  if (f.credentials) await saveCredentials(db, box, projectId, endpointID, credentials);
  const updated = await updateEndpoint(db, projectId, endpointID, {
    name: f.name ?? current.name,
    url: f.url ?? current.url,
    owner_id: f.owner_id !== undefined ? f.owner_id : current.owner_id,
    description: f.description ?? current.description,
    http_timeout: f.http_timeout ?? current.http_timeout,
    advanced_signatures: f.advanced_signatures ?? current.advanced_signatures,
    support_email: f.support_email !== undefined ? f.support_email : current.support_email,
    notification_url: f.notification_url !== undefined ? f.notification_url : current.notification_url,
    content_type: f.content_type ?? current.content_type,
    rate_limit: f.rate_limit ?? current.rate_limit,
    rate_limit_duration: f.rate_limit_duration ?? current.rate_limit_duration,
  });
  if (!updated) throw notFound('endpoint', endpointID);
  return updated;
}

export async function presentEndpoint(db: Queryable, box: SecretBox, e: Endpoint, secretValue?: string): Promise<Json> {
  return (await presentEndpoints(db, box, [e], secretValue))[0]!;
}

/** Endpoints as the API shows them; one query for the secrets' metadata of the whole list. */
export async function presentEndpoints(db: Queryable, box: SecretBox, endpoints: Endpoint[], secretValue?: string): Promise<Json[]> {
  if (endpoints.length === 0) return [];
  const secretsOf = await listSecretInfo(db, endpoints[0]!.project_id, endpoints.map((e) => e.id));
  const credentialsOf = await loadCredentials(db, box, endpoints[0]!.project_id, endpoints.map((e) => e.id));
  return endpoints.map((e) => ({
    uid: e.id,
    id: e.id,
    project_id: e.project_id,
    name: e.name,
    url: e.url,
    owner_id: e.owner_id,
    description: e.description,
    status: e.status,
    http_timeout: e.http_timeout,
    advanced_signatures: e.advanced_signatures,
    support_email: e.support_email,
    notification_url: e.notification_url,
    content_type: e.content_type,
    rate_limit: e.rate_limit,
    rate_limit_duration: e.rate_limit_duration,
    // Credentials are shown with their secrets hidden; sending those back unchanged keeps them.
    ...shownCredentials(credentialsOf.get(e.id) ?? NO_CREDENTIALS),
    // A secret's value is shown once, in the answer to the call that made it.
    secrets: (secretsOf.get(e.id) ?? []).map((s, i) => (i === 0 && secretValue !== undefined ? { ...s, value: secretValue } : s)),
    created_at: e.created_at,
    updated_at: e.updated_at,
  }));
}

function encodeCursor(e: ListedEndpoint): string {
  return Buffer.from(JSON.stringify([e.cursor_at, e.id])).toString('base64url');
}

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function decodeCursor(cursor: string): { created_at: string; id: string } {
  try {
    const [created_at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    if (typeof created_at !== 'string' || !CURSOR_TIME.test(created_at) || typeof id !== 'string') throw new Error('shape');
    return { created_at, id };
  } catch {
    throw invalid('next_page_cursor', 'must be a cursor from a previous page');
  }
}

export async function endpointRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, box } = deps;

  app.post('/endpoints', async (req, res) => {
    const { skip, body } = withoutSkip(object(req.body, 'body'));
    const { fields, secret, credentials } = newEndpoint(body, req.project.signature.scheme);
    const id = uuidv7();
    if (!skip) await pingerFor(deps.outbound, req.project.signature)({ ...fields, project_id: req.project.id, id }, [{ value: secret }], credentials);
    const data = await withTransaction(pool, async (client) => {
      const e = await insertEndpoint(client, box, req.project.id, id, fields, secret);
      await saveCredentials(client, box, req.project.id, e.id, credentials);
      return presentEndpoint(client, box, e, secret);
    });
    return reply(res, 201, 'Endpoint created', data);
  });

  // Onboarding many at once: every endpoint with its subscriptions in one transaction, or none;
  // a 400 lists what is wrong with each item.
  app.post('/endpoints/bulk', async (req, res) => {
    const body = object(req.body, 'body');
    onlyKeys(body, ['endpoints']);
    if (!Array.isArray(body.endpoints) || body.endpoints.length === 0 || body.endpoints.length > MAX_BULK) {
      throw invalid('endpoints', `must be a list of 1 to ${MAX_BULK} endpoints`);
    }
    const errors: { index: number; field: string | null; message: string }[] = [];
    const failed = (index: number, err: unknown): void => {
      if (!(err instanceof WharfError) || err.status !== 400) throw err;
      errors.push({ index, field: err.field ? `endpoints[${index}].${err.field}` : null, message: `endpoints[${index}]: ${err.message}` });
    };
    const items = body.endpoints.map((raw, index) => {
      try {
        const { skip, body: item } = withoutSkip({ ...object(raw, `endpoints[${index}]`) });
        const subscriptions = item.subscriptions ?? [];
        delete item.subscriptions;
        if (!Array.isArray(subscriptions)) throw invalid('subscriptions', 'must be a list');
        const endpoint = { ...newEndpoint(item, req.project.signature.scheme), id: uuidv7(), skip };
        const subs = subscriptions.map((s, si) => {
          const { subscription, issues } = parseSubscription({ ...object(s, `subscriptions[${si}]`), endpoint_id: 'pending' });
          if (subscription === null) {
            const e = settingsError(issues, 'subscription');
            throw new WharfError(e.code, `subscriptions[${si}].${e.message}`, { status: 400, field: `subscriptions[${si}].${e.field}` });
          }
          return subscription;
        });
        return { ...endpoint, subs };
      } catch (err) {
        failed(index, err);
        return null;
      }
    });
    // Every valid item is tried (a few at a time) before anything is saved, so one answer lists all unreachable URLs.
    if (errors.length === 0) {
      const ping = pingerFor(deps.outbound, req.project.signature);
      const queue = items.map((item, index) => ({ item: item!, index })).filter(({ item }) => !item.skip);
      await Promise.all(Array.from({ length: Math.min(BULK_PINGS, queue.length) }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const { item, index } = next;
          await ping({ ...item.fields, project_id: req.project.id, id: item.id }, [{ value: item.secret }], item.credentials).catch((err) => failed(index, err));
        }
      }));
      errors.sort((a, b) => a.index - b.index);
    }
    if (errors.length > 0) {
      return reply(res, 400, `${errors.length} of ${items.length} endpoints are not valid; none was created`, { code: 'WHARF_ERR_INVALID', errors });
    }
    const data = await withTransaction(pool, async (client) => {
      const created: Json[] = [];
      for (const item of items) {
        const { fields, secret, credentials, subs, id } = item!;
        const e = await insertEndpoint(client, box, req.project.id, id, fields, secret);
        await saveCredentials(client, box, req.project.id, id, credentials);
        for (const s of subs) {
          if (s.source_id !== null && !(await getSource(client, box, req.project.id, s.source_id))) {
            throw invalid('source_id', `source ${JSON.stringify(s.source_id)} does not exist in this project`);
          }
          await saveSubscription(client, req.project.id, s.id || uuidv7(), { ...s, endpoint_id: id }, false);
        }
        created.push(await presentEndpoint(client, box, e, secret));
      }
      return created;
    });
    return reply(res, 201, `${data.length} endpoints created`, { content: data });
  });

  app.get('/endpoints', async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const page = pageRequest(q);
    const rows = await listEndpoints(pool, req.project.id, {
      owner_id: typeof q.owner_id === 'string' ? q.owner_id : undefined,
      q: typeof q.q === 'string' ? q.q : undefined,
      limit: page.perPage + 1,
      after: page.cursor ? decodeCursor(page.cursor) : undefined,
    });
    const result = toPage(rows, page.perPage, encodeCursor);
    const content = await presentEndpoints(pool, box, result.content);
    return reply(res, 200, 'Endpoints fetched', { content, pagination: result.pagination });
  });

  app.get('/endpoints/:endpointID', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const e = await getEndpoint(pool, req.project.id, endpointID);
    if (!e) throw notFound('endpoint', endpointID);
    return reply(res, 200, 'Endpoint fetched', await presentEndpoint(pool, box, e));
  });

  app.put('/endpoints/:endpointID', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const { skip, body } = withoutSkip(object(req.body, 'body'));
    const ping = skip ? undefined : pingerFor(deps.outbound, req.project.signature);
    const data = await withTransaction(pool, async (client) =>
      presentEndpoint(client, box, await editEndpoint(box, client, req.project.id, endpointID, body, ping)));
    return reply(res, 202, 'Endpoint updated', data);
  });

  app.delete('/endpoints/:endpointID', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    if (!(await deleteEndpoint(pool, req.project.id, endpointID))) throw notFound('endpoint', endpointID);
    return reply(res, 200, 'Endpoint deleted', null);
  });

  app.put('/endpoints/:endpointID/pause', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const data = await withTransaction(pool, async (client) =>
      presentEndpoint(client, box, await togglePause(deps, client, req.project.id, endpointID, 'the API')));
    return reply(res, 202, 'Endpoint status updated', data);
  });

  app.put('/endpoints/:endpointID/expire_secret', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const body = object(req.body ?? {}, 'body');
    onlyKeys(body, ['expiration', 'secret']);
    const expiration = integer(body, 'expiration', 0, MAX_EXPIRATION);
    const given = string(body, 'secret', { max: 1024 });
    const data = await withTransaction(pool, async (client) => {
      const r = await rotateSecret(box, client, req.project, endpointID, { expiration, secret: given });
      return { expiration: r.expiration, endpoint: await presentEndpoint(client, box, r.endpoint, r.secret) };
    });
    return reply(res, 202, `Secret rotated; the previous one stays valid for ${data.expiration} s`, data.endpoint);
  });

  app.post('/endpoints/:endpointID/activate', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const data = await withTransaction(pool, async (client) =>
      presentEndpoint(client, box, await activateEndpoint(deps, client, req.project.id, endpointID, 'the API')));
    return reply(res, 202, 'Endpoint activated', data);
  });
}
