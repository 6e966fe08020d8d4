import type { FastifyInstance } from 'fastify';
import { invalid, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { withTransaction } from '../store/pool.ts';
import {
  PORTAL_LINK_COLUMNS,
  PORTAL_LINK_KINDS,
  existingEndpointIds,
  getPortalLink,
  hashToken,
  insertPortalLink,
  linkState,
  newPortalToken,
  revokePortalLink,
  updatePortalLink,
  type PortalLink,
  type PortalLinkFields,
  type PortalLinkKind,
} from '../store/portal-links.ts';
import type { Queryable } from '../store/queryable.ts';
import { parseTime } from '../portal/filters.ts';
import { portalBaseUrl } from '../portal/options.ts';
import { convoyQuery, pageByIdDesc, pageRequest, stringFilters, unsupported } from './pagination.ts';
import { reply, type ApiDeps } from './context.ts';
import { boolean, object, onlyKeys, string, type Json } from '../core/validate.ts';

const MAX_ENDPOINTS = 100;
/** An unopened one-time link should not lie around forever: it expires after a day unless told. */
const ONE_TIME_DEFAULT_HOURS = 24;
/** Convoy's `auth_type` as Wharf's link kind. */
const AUTH_TYPE_KINDS: Readonly<Record<string, PortalLinkKind>> = { static_token: 'long_lived', refresh_token: 'one_time' };
const KIND_AUTH_TYPES: Readonly<Record<PortalLinkKind, string>> = { long_lived: 'static_token', one_time: 'refresh_token' };
/**
 * A link made without `kind` or `auth_type` is reusable, as Convoy's default `static_token` link
 * is: convoy-go never sends `auth_type`, and its users hand the same URL out again and again.
 */
const DEFAULT_KIND: PortalLinkKind = 'long_lived';

/**
 * A link as the API shows it, with Convoy's names beside Wharf's (`auth_type`, `endpoint_count`).
 * The URL and its token are a credential: shown in the answer to the create call only, where
 * Convoy shows them on every read (README: where Wharf differs from Convoy).
 */
const present = (l: PortalLink, opened?: { url: string; token: string }): Json => ({
  uid: l.id,
  id: l.id,
  project_id: l.project_id,
  name: l.name,
  owner_id: l.owner_id ?? '', // a string in Convoy's schema: "" for a link by endpoints
  endpoints: l.endpoint_ids,
  endpoint_count: l.endpoint_ids.length,
  can_manage_endpoint: l.can_manage_endpoint,
  kind: l.kind,
  auth_type: KIND_AUTH_TYPES[l.kind],
  status: linkState(l),
  expires_at: l.expires_at,
  used_at: l.used_at,
  revoked_at: l.revoked_at,
  created_at: l.created_at,
  updated_at: l.updated_at,
  ...(opened ?? {}),
});

export async function portalLinkRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool } = deps;
  const options = deps.portal;

  /**
   * A link's settings from a create or update body: `owner_id` or `endpoints` (checked to exist),
   * `can_manage_endpoint`, `kind` (Convoy's `auth_type`: `static_token` is a reusable link,
   * `refresh_token` a one-time one) and `expires_at`.
   */
  const readLink = async (db: Queryable, projectId: string, body: Json, current: PortalLink | null): Promise<PortalLinkFields> => {
    onlyKeys(body, ['name', 'owner_id', 'endpoints', 'can_manage_endpoint', 'kind', 'auth_type', 'expires_at']);
    const name = string(body, 'name', { required: current === null, max: 200 }) ?? current!.name;
    // Convoy's clients send "" (and []) for what they leave unset: empty means absent.
    const ownerId = string(body, 'owner_id', { max: 200, empty: true }) || null;
    const endpoints = readEndpointList(body);
    if (ownerId === null && endpoints === null) throw invalid('owner_id', 'or endpoints is required: the link shows an owner\'s endpoints or a list of them');
    if (ownerId !== null && endpoints !== null) throw invalid('endpoints', 'cannot be given with owner_id: give one or the other');
    const authType = string(body, 'auth_type', { empty: true }) || null;
    if (authType !== null && !(authType in AUTH_TYPE_KINDS)) throw invalid('auth_type', `must be one of ${Object.keys(AUTH_TYPE_KINDS).join(', ')} (got ${JSON.stringify(authType)})`);
    const kindValue = string(body, 'kind') ?? (authType ? AUTH_TYPE_KINDS[authType] : (current?.kind ?? DEFAULT_KIND));
    if (!PORTAL_LINK_KINDS.includes(kindValue as PortalLinkKind)) {
      throw invalid('kind', `must be one of ${PORTAL_LINK_KINDS.join(', ')} (got ${JSON.stringify(kindValue)})`);
    }
    const kind = kindValue as PortalLinkKind;
    const expiresAt = readExpiry(body) ?? (current ? current.expires_at : kind === 'one_time' ? new Date(Date.now() + ONE_TIME_DEFAULT_HOURS * 3_600_000) : null);
    if (endpoints !== null) {
      const found = await existingEndpointIds(db, projectId, endpoints);
      const missing = endpoints.findIndex((id) => !found.has(id));
      if (missing >= 0) throw invalid(`endpoints[${missing}]`, `endpoint ${JSON.stringify(endpoints[missing])} does not exist in this project`);
    }
    const canManage = boolean(body, 'can_manage_endpoint') ?? current?.can_manage_endpoint ?? false;
    return { name, owner_id: ownerId, endpoint_ids: endpoints ?? [], can_manage_endpoint: canManage, kind, expires_at: expiresAt };
  };

  app.post('/portal-links', async (req, res) => {
    const body = object(req.body, 'body');
    const token = newPortalToken();
    const link = await withTransaction(pool, async (client) =>
      insertPortalLink(client, req.project.id, uuidv7(), await readLink(client, req.project.id, body, null), hashToken(token)),
    );
    const url = `${portalBaseUrl(options, req)}/portal/l/${token}`;
    return reply(res, 201, 'Portal link created; its URL is shown only now', present(link, { url, token }));
  });

  // Convoy's update: the link's settings change, its URL (and open sessions) stay.
  app.put('/portal-links/:linkID', async (req, res) => {
    const { linkID } = req.params as { linkID: string };
    const body = object(req.body, 'body');
    const link = await withTransaction(pool, async (client) => {
      const current = await getPortalLink(client, req.project.id, linkID);
      if (!current) throw notFound('portal link', linkID);
      return updatePortalLink(client, req.project.id, linkID, await readLink(client, req.project.id, body, current));
    });
    return reply(res, 202, 'Portal link updated', present(link!));
  });

  app.get('/portal-links', async (req, res) => {
    const q = convoyQuery(req.query);
    unsupported(q, ['q'], 'is not supported: portal links are found by owner_id');
    const page = pageRequest(q);
    const result = await pageByIdDesc<PortalLink>(pool, {
      table: 'portal_links',
      columns: PORTAL_LINK_COLUMNS,
      projectId: req.project.id,
      filters: stringFilters(q, ['owner_id']),
      page,
    });
    return reply(res, 200, 'Portal links fetched', { content: result.content.map((l) => present(l)), pagination: result.pagination });
  });

  app.get('/portal-links/:linkID', async (req, res) => {
    const { linkID } = req.params as { linkID: string };
    const link = await getPortalLink(pool, req.project.id, linkID);
    if (!link) throw notFound('portal link', linkID);
    return reply(res, 200, 'Portal link fetched', present(link));
  });

  // DELETE (Wharf) and PUT …/revoke (Convoy) both revoke: the row stays so the URL can say so.
  const revoke = async (projectId: string, linkID: string): Promise<Json> => {
    const link = await withTransaction(pool, (client) => revokePortalLink(client, projectId, linkID));
    if (!link) throw notFound('portal link', linkID);
    return present(link);
  };
  app.delete('/portal-links/:linkID', async (req, res) =>
    reply(res, 200, 'Portal link revoked', await revoke(req.project.id, (req.params as { linkID: string }).linkID)));
  app.put('/portal-links/:linkID/revoke', async (req, res) =>
    reply(res, 200, 'Portal link revoked', await revoke(req.project.id, (req.params as { linkID: string }).linkID)));
}

function readEndpointList(body: Json): string[] | null {
  const v = body.endpoints;
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return null;
  if (!Array.isArray(v) || v.length > MAX_ENDPOINTS) {
    throw invalid('endpoints', `must be a list of 1 to ${MAX_ENDPOINTS} endpoint ids`);
  }
  v.forEach((id, i) => {
    if (typeof id !== 'string' || id.trim() === '' || id.length > 200) throw invalid(`endpoints[${i}]`, 'must be an endpoint id');
  });
  return [...new Set(v as string[])];
}

function readExpiry(body: Json): Date | null {
  const v = string(body, 'expires_at', { max: 64 });
  if (v === undefined) return null;
  // ISO 8601 with a date and a time zone, so the same string means the same instant everywhere.
  const at = parseTime(v, { zoned: true });
  if (at === null) throw invalid('expires_at', `must be an ISO 8601 time with a time zone, e.g. 2030-01-31T12:00:00Z (got ${JSON.stringify(v)})`);
  if (at.getTime() <= Date.now()) throw invalid('expires_at', 'must be in the future');
  return at;
}
