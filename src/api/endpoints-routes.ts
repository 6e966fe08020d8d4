import type pg from 'pg';
import { flattenAuth, nestAuth } from '../delivery/auth.ts';
import type { FastifyInstance } from 'fastify';
import { WharfError, invalid, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { ENDPOINT_SETTINGS, type Endpoint, type Project, type SignatureScheme, type SignatureSettings } from '../core/types.ts';
import { ENDPOINT_DEFAULTS, readEndpointSettings, type EndpointSettings } from '../delivery/endpoint-settings.ts';
import type { OutboundDeps } from '../delivery/outbound.ts';
import { requireReachable, type PingTarget } from '../delivery/ping.ts';
import { parseSubscription } from '../ingest/subscription-settings.ts';
import { sourceExists } from '../store/sources.ts';
import { saveSubscription } from '../store/subscriptions.ts';
import { generateSecret } from '../delivery/signatures.ts';
import { CREDENTIAL_KEYS, NO_CREDENTIALS, credentialSecretKeys, type EndpointCredentials } from '../delivery/credentials.ts';
import { redactKeys, restoreRedacted, stillRedacted } from '../core/redact.ts';
import { Reader } from '../core/settings.ts';
import type { SecretBox } from '../store/crypto.ts';
import { MAX_EXPIRATION, activateEndpoint, applyTransitions, rotateSecret, togglePause } from '../dispatch/operations.ts';
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
import { convoyQuery, filterText, pageRequest, toPage } from './pagination.ts';
import { reply, type ApiDeps } from './context.ts';
import { boolean, integer, object, onlyKeys, settingsError, string, type Json } from '../core/validate.ts';

const MAX_BULK = 1000;
/** Bulk onboarding pings this many endpoints at once. */
const BULK_PINGS = 8;

/** How credentials appear in an answer. */
function shownCredentials(c: EndpointCredentials): Json {
  const shown = redactKeys(c, credentialSecretKeys(c)) as unknown as Record<string, unknown>;
  // Answered in Convoy's shape: the type's fields nested under its name.
  return { ...shown, authentication: nestAuth(shown.authentication as Record<string, unknown> | null) } as Json;
}

/** A new endpoint's fields, credentials and secret from a request body (400 names the field). */
function newEndpoint(body: Json, scheme: SignatureScheme): { fields: EndpointFields; secret: string; credentials: EndpointCredentials; disabled: boolean } {
  const { secret, credentials, is_disabled, ...f } = readFields(body, scheme);
  if (f.url === undefined) throw invalid('url', 'is required');
  if (f.name === undefined) throw invalid('name', 'is required');
  return {
    secret: secret ?? generateSecret(scheme),
    credentials: credentials ?? NO_CREDENTIALS,
    fields: { ...ENDPOINT_DEFAULTS, ...f, name: f.name, url: f.url },
    disabled: is_disabled === true,
  };
}

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

/** Reads the writable fields present in a body (the config file's rules); absent ones stay undefined. */
function readFields(body: Json, scheme: SignatureScheme): EndpointSettings {
  const r = new Reader();
  const fields = r.fields(body, '', ENDPOINT_SETTINGS);
  const out = fields === null ? {} : readEndpointSettings(r, fields, '', scheme);
  if (r.issues.length > 0) throw settingsError(r.issues, '');
  const kept = out.credentials ? stillRedacted(out.credentials, credentialSecretKeys(out.credentials)) : null;
  if (kept !== null) throw invalid(kept, '"********" keeps a stored secret, and none is stored here to keep (a new endpoint, or another kind of authentication); give the secret itself');
  return out;
}

/**
 * Changes the fields a body names (PUT semantics for the keys present; absent keys keep their
 * value). Secrets sent back as "********" keep what is stored. 400 names a wrong field. Everything
 * is read and checked, and a new URL pinged, before the short write transaction, so a slow
 * endpoint holds neither a lock nor a connection in a transaction.
 */
export async function editEndpoint(
  box: SecretBox,
  pool: pg.Pool,
  project: Pick<Project, 'id' | 'signature'>,
  endpointID: string,
  body: Json,
  ping?: Pinger,
): Promise<Endpoint> {
  const projectId = project.id;
  const current = await getEndpoint(pool, projectId, endpointID);
  if (!current) throw notFound('endpoint', endpointID);
  const stored = (await loadCredentials(pool, box, projectId, [endpointID])).get(endpointID) ?? NO_CREDENTIALS;
  // An answer's credentials (Convoy's nested shape, secrets as ********) may be sent back as they are.
  const flat = 'authentication' in body ? { ...body, authentication: flattenAuth(body.authentication) } : body;
  const { secret, credentials: given, ...changes } = readFields(restoreRedacted(flat, stored, credentialSecretKeys(stored)) as Json, project.signature.scheme);
  if (secret !== undefined) {
    throw invalid('secret', 'cannot be changed here; rotate it with PUT /endpoints/{id}/expire_secret');
  }
  const credentials = { ...stored };
  if (given) for (const k of CREDENTIAL_KEYS) if (k in body) (credentials as unknown as Record<string, unknown>)[k] = given[k];
  const next = { ...current, ...changes };
  // A new URL is tried as the endpoint will be (its secrets, credentials and settings) before it is saved.
  if (ping && next.url !== current.url) {
    await ping(next, (await liveSecrets(pool, box, projectId, [endpointID])).get(endpointID) ?? [], credentials);
  }
  return withTransaction(pool, async (db) => {
    if (given) await saveCredentials(db, box, projectId, endpointID, credentials);
    const updated = await updateEndpoint(db, projectId, endpointID, next);
    if (!updated) throw notFound('endpoint', endpointID);
    return updated;
  });
}

export async function presentEndpoint(db: Queryable, box: SecretBox, e: Endpoint, secretValue?: string): Promise<Json> {
  return (await presentEndpoints(db, box, [e], secretValue === undefined ? undefined : new Map([[e.id, secretValue]])))[0]!;
}

/**
 * Endpoints as the API shows them; one query for the secrets' metadata of the whole list.
 * `newSecrets` holds, by endpoint id, the value of a secret just made: shown this once, as the newest.
 */
export async function presentEndpoints(db: Queryable, box: SecretBox, endpoints: Endpoint[], newSecrets?: ReadonlyMap<string, string>): Promise<Json[]> {
  if (endpoints.length === 0) return [];
  const secretsOf = await listSecretInfo(db, endpoints[0]!.project_id, endpoints.map((e) => e.id));
  const credentialsOf = await loadCredentials(db, box, endpoints[0]!.project_id, endpoints.map((e) => e.id));
  return endpoints.map((e) => ({
    uid: e.id,
    id: e.id,
    project_id: e.project_id,
    name: e.name,
    url: e.url,
    // Convoy's schema types these as strings: "" where Wharf has none.
    owner_id: e.owner_id ?? '',
    description: e.description,
    status: e.status,
    http_timeout: e.http_timeout,
    advanced_signatures: e.advanced_signatures,
    support_email: e.support_email ?? '',
    notification_url: e.notification_url,
    content_type: e.content_type,
    rate_limit: e.rate_limit,
    rate_limit_duration: e.rate_limit_duration,
    // Credentials are shown with their secrets hidden; sending those back unchanged keeps them.
    ...shownCredentials(credentialsOf.get(e.id) ?? NO_CREDENTIALS),
    // A secret's value is shown once, in the answer to the call that made it.
    secrets: (secretsOf.get(e.id) ?? []).map((s, i) => (i === 0 && newSecrets?.has(e.id) ? { ...s, value: newSecrets.get(e.id)! } : s)),
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
    const { fields, secret, credentials, disabled } = newEndpoint(body, req.project.signature.scheme);
    const id = uuidv7();
    // A disabled endpoint (Convoy's is_disabled) is not called, so it is not pinged either.
    if (!skip && !disabled) await pingerFor(deps.outbound, req.project.signature)({ ...fields, project_id: req.project.id, id }, [{ value: secret }], credentials);
    const data = await withTransaction(pool, async (client) => {
      let e = await insertEndpoint(client, box, req.project.id, id, fields, secret, { credentials, createdBy: req.actor });
      if (disabled) {
        const { rows } = await client.query<Endpoint>(`UPDATE endpoints SET status = 'inactive' WHERE project_id = $1 AND id = $2 RETURNING *`, [req.project.id, id]);
        e = rows[0]!;
      }
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
      const created: Endpoint[] = [];
      const sources = new Set<string>();
      for (const item of items) {
        const { fields, secret, credentials, subs, id } = item!;
        created.push(await insertEndpoint(client, box, req.project.id, id, fields, secret, { credentials, createdBy: req.actor }));
        for (const s of subs) {
          if (s.source_id !== null && !sources.has(s.source_id)) {
            if (!(await sourceExists(client, req.project.id, s.source_id))) {
              throw invalid('source_id', `source ${JSON.stringify(s.source_id)} does not exist in this project`);
            }
            sources.add(s.source_id);
          }
          await saveSubscription(client, req.project.id, s.id || uuidv7(), { ...s, endpoint_id: id }, false);
        }
      }
      return presentEndpoints(client, box, created, new Map(items.map((i) => [i!.id, i!.secret])));
    });
    return reply(res, 201, `${data.length} endpoints created`, { content: data });
  });

  app.get('/endpoints', async (req, res) => {
    const q = convoyQuery(req.query);
    const page = pageRequest(q);
    const rows = await listEndpoints(pool, req.project.id, {
      owner_id: filterText(q, 'owner_id') ?? undefined,
      q: filterText(q, 'q') ?? undefined,
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
    let e = await editEndpoint(box, pool, req.project, endpointID, body, ping);
    // Convoy's is_disabled: true turns the endpoint inactive (with its alert); false changes nothing
    // (activate does that).
    if (body.is_disabled === true && e.status !== 'inactive') {
      e = await withTransaction(pool, async (client) => {
        await applyTransitions(deps, client, [
          { project_id: req.project.id, endpoint_id: endpointID, from: ['active', 'pending', 'paused'], to: 'inactive', reason: 'disabled through the API (is_disabled)' },
        ]);
        return (await getEndpoint(client, req.project.id, endpointID))!;
      });
    }
    return reply(res, 202, 'Endpoint updated', await presentEndpoint(pool, box, e));
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
    // convoy-go sends "secret": "" to ask for a generated one, as Convoy does.
    const given = string(body, 'secret', { max: 1024, empty: true }) || undefined;
    const data = await withTransaction(pool, async (client) => {
      const r = await rotateSecret(box, client, req.project, endpointID, { expiration, secret: given, by: req.actor });
      return { expiration: r.expiration, endpoint: await presentEndpoint(client, box, r.endpoint, r.secret) };
    });
    return reply(res, 200, `Secret rotated; the previous one stays valid for ${data.expiration} s`, data.endpoint);
  });

  app.post('/endpoints/:endpointID/activate', async (req, res) => {
    const { endpointID } = req.params as { endpointID: string };
    const data = await withTransaction(pool, async (client) =>
      presentEndpoint(client, box, await activateEndpoint(deps, client, req.project.id, endpointID, 'the API')));
    return reply(res, 202, 'Endpoint activated', data);
  });
}
