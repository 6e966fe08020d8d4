/**
 * The dashboard acts through the REST API: every page's action (and most of its reading) is a
 * call to the API's own routes, made in-process with `app.inject()` and the session's credential
 * (the project's API key, or the operator's internal credential). The API's validation, scoping
 * and side effects (meta events, alerts, pings) are the dashboard's, so the two cannot disagree.
 */
import type { FastifyInstance } from 'fastify';
import { WharfError } from '../core/errors.ts';
import { VIA_HEADER } from '../web/internal-credential.ts';

/** An API answer's `data`; its shape is the API's (README: REST API). */
export type ApiData = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ApiAnswer {
  status: number;
  message: string;
  data: ApiData;
}

/** A page refusing the request, with the status and the words the operator should see. */
export class DashboardRefusal extends WharfError {
  readonly title: string;
  constructor(status: number, code: string, title: string, message: string) {
    super(code, message, { status });
    this.name = 'DashboardRefusal';
    this.title = title;
  }
}

export const notFoundPage = (): DashboardRefusal =>
  new DashboardRefusal(404, 'WHARF_ERR_NOT_FOUND', 'Not found', 'There is nothing here, or it is not in a project you signed in to.');

/** The API refused what a form asked (400, 409…): shown on the form, naming the field. */
export class ApiRefusal extends Error {
  readonly status: number;
  readonly field: string | null;
  constructor(status: number, message: string, field: string | null) {
    super(message);
    this.name = 'ApiRefusal';
    this.status = status;
    this.field = field;
  }
}

export type CallApi = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) => Promise<ApiAnswer>;

/**
 * Calls `/api/v1/projects/{project}{path}`. A 404 (or 401: no such project for this credential)
 * becomes the dashboard's not-found page; a 401 on the session's own project means its key was
 * revoked (`onRevoked`); another 4xx is an ApiRefusal for the form to show; 5xx is thrown as is.
 */
export function apiCaller(
  api: FastifyInstance,
  /** The credential, and the browser's Host (the API names URLs, such as an HTTP source's, after it). */
  headers: { authorization: string; host: string | undefined },
  projectId: string,
  onRevoked: () => Promise<never>,
): CallApi {
  return async (method, path, body) => {
    const res = await api.inject({
      method,
      url: `/api/v1/projects/${encodeURIComponent(projectId)}${path}`,
      // The API records a secret rotated here as done through the dashboard (README: Dashboard).
      headers: { authorization: headers.authorization, [VIA_HEADER]: 'dashboard', ...(headers.host ? { host: headers.host } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    let parsed: { message?: string; data?: ApiData };
    try {
      parsed = res.json();
    } catch {
      parsed = {};
    }
    const message = typeof parsed.message === 'string' ? parsed.message : `HTTP ${res.statusCode}`;
    if (res.statusCode === 401) return onRevoked();
    if (res.statusCode === 404) throw notFoundPage();
    if (res.statusCode >= 500) {
      throw new WharfError('WHARF_ERR_DASHBOARD_API', `the API answered ${res.statusCode} to ${method} ${path}: ${message}`, { status: 500 });
    }
    if (res.statusCode >= 400) {
      const field = typeof parsed.data?.field === 'string' ? (parsed.data.field as string) : null;
      throw new ApiRefusal(res.statusCode, message, field);
    }
    return { status: res.statusCode, message, data: parsed.data };
  };
}

/** A query string from filter values, empty ones left out. */
export function query(values: Record<string, string | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A form or query field as text (trimmed); '' when absent or not text. */
export const fieldText = (values: unknown, key: string): string => {
  const v = (values as Record<string, unknown> | undefined)?.[key];
  return typeof v === 'string' ? v.trim() : '';
};

/** A list through the API; a filter it refuses comes back as `error` above an empty list (400). */
export async function listVia(call: CallApi, path: string): Promise<{ rows: ApiData[]; next: string | null; error: string | null }> {
  try {
    const { data } = await call('GET', path);
    return { rows: data.content ?? [], next: data.pagination?.next_page_cursor || null, error: null };
  } catch (err) {
    if (err instanceof ApiRefusal) return { rows: [], next: null, error: err.message };
    throw err;
  }
}

/**
 * A time from a form's datetime-local field (`2026-01-31T12:00`, which the page labels UTC) in
 * Convoy's layout (`2026-01-31T12:00:00`, UTC); anything else as typed, for the API to judge.
 */
export const apiTime = (v: string): string => (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(v) ? `${v}:00` : v);
