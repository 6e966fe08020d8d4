/**
 * The operator dashboard under /dashboard: sign-in with a project's API key (that project) or the
 * operator token (every project), server-side sessions, and pages over the REST API. Every action
 * (and every list) is the API's own route called in-process (api-client.ts), so the dashboard
 * validates, scopes and records nothing the API would not; only the overview's counts are read
 * from the database directly, scoped to the page's project.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UNAVAILABLE_RETRY_AFTER_SECONDS, WharfError, isDatabaseUnavailable } from '../core/errors.ts';
import type { ApiDeps, ProjectLookup } from '../api/context.ts';
import { hashApiKey } from '../store/crypto.ts';
import { listProjects, projectForKeyHash } from '../store/projects.ts';
import { loadAssets, securePages } from '../web/pages.ts';
import type { InternalCredential } from '../web/internal-credential.ts';
import { formRefusal, isSecure, readSessionCookie, sessionCookieHeader, type CookieOptions } from '../web/session.ts';
import { ApiRefusal, DashboardRefusal, apiCaller, notFoundPage, query, type CallApi } from './api-client.ts';
import { dashboardPages } from './page-routes.ts';
import { sourcePages } from './source-routes.ts';
import { messagePage, projectsPage, signInPage, type Frame } from './pages.ts';
import { createDashboardSession, deleteDashboardSession, findDashboardSession } from './sessions.ts';
import { createSignInLimit } from './sign-in-limit.ts';
import { projectSummaries } from './summary.ts';

export type DashboardDeps = ApiDeps & {
  projects: ProjectLookup;
  /** The server the API routes are registered on, for in-process calls. */
  api: FastifyInstance;
  internal: InternalCredential;
  /** The operator token check the API's /metrics uses. */
  isOperatorToken: (given: string) => boolean;
};

export interface DashboardContext {
  sessionId: string;
  /** The one project a project key opens; null: the operator, every project. */
  projectId: string | null;
  csrf: string;
  /** What the session's API calls carry. */
  authorization: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    dashboard: DashboardContext | null;
  }
}

const COOKIE = 'wharf_dashboard';
/** The sign-in form's token lives in a cookie of its own until there is a session. */
const LOGIN_COOKIE = 'wharf_dashboard_login';

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

export async function dashboardRoutes(app: FastifyInstance, deps: DashboardDeps): Promise<void> {
  const { pool, box } = deps;
  const publicUrl = deps.portal.publicUrl;
  const assets = await loadAssets();
  const sessionSeconds = deps.dashboardSessionSeconds;
  // Failed sign-ins, per client address and from everywhere (sign-in-limit.ts).
  const limit = createSignInLimit();
  app.decorateRequest('dashboard', null);
  // The dashboard is never framed: it acts with an operator's rights.
  securePages(app, "'none'");

  const cookie = (req: FastifyRequest, name: string): CookieOptions => ({ name, path: '/dashboard', sameSite: 'Strict', secure: isSecure(req, publicUrl) });
  const sendPage = (res: FastifyReply, status: number, body: string): FastifyReply => res.code(status).type('text/html; charset=utf-8').send(body);
  const frameOf = (req: FastifyRequest): Frame => ({
    title: '',
    session: req.dashboard ? { csrf: req.dashboard.csrf, operator: req.dashboard.projectId === null } : undefined,
  });
  const signedOut = (req: FastifyRequest, res: FastifyReply): void => {
    if (readSessionCookie(req, COOKIE) !== null) res.header('set-cookie', sessionCookieHeader(cookie(req, COOKIE), '', 0));
  };

  app.setErrorHandler((err: unknown, req, res) => {
    if (err instanceof DashboardRefusal) {
      if (err.status === 401) {
        req.dashboard = null;
        signedOut(req, res);
      }
      return sendPage(res, err.status, messagePage(frameOf(req), err.title, err.message));
    }
    if (err instanceof ApiRefusal) return sendPage(res, err.status, messagePage(frameOf(req), 'Refused', err.message));
    if (err instanceof WharfError && err.status < 500) return sendPage(res, err.status, messagePage(frameOf(req), 'Request refused', err.message));
    const e = err as { statusCode?: number };
    if (e.statusCode !== undefined && e.statusCode < 500) {
      return sendPage(res, e.statusCode, messagePage(frameOf(req), 'Request refused', e.statusCode === 413 ? 'The form is too large.' : 'The request could not be read.'));
    }
    if (isDatabaseUnavailable(err)) {
      req.log.warn({ err }, 'database unavailable');
      res.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
      return sendPage(res, 503, messagePage(frameOf(req), 'Unavailable for a moment', 'The page cannot be shown right now. Try again in a few seconds.'));
    }
    req.log.error({ err }, 'dashboard request failed');
    return sendPage(res, 500, messagePage(frameOf(req), 'Something went wrong', 'The page could not be shown. Try again in a moment.'));
  });
  app.setNotFoundHandler((req, res) => sendPage(res, 404, messagePage(frameOf(req), 'Not found', 'There is no such page.')));

  app.get('/assets/:name', async (req, res) => {
    const asset = assets[(req.params as { name: string }).name as keyof typeof assets];
    if (!asset) throw notFoundPage();
    return res.type(asset.type).send(asset.body);
  });

  /** The session in the cookie, checked against its credential; null when there is none. */
  const sessionOf = async (req: FastifyRequest): Promise<DashboardContext | null> => {
    const id = readSessionCookie(req, COOKIE);
    const s = id ? await findDashboardSession(pool, id) : null;
    if (!id || !s) return null;
    if (s.project_id === null) {
      // An operator session lasts only as long as the token it signed in with.
      if (deps.operatorToken !== '' && s.credential_hash === sha256(deps.operatorToken)) {
        return { sessionId: id, projectId: null, csrf: s.csrf_token, authorization: deps.internal.authorization };
      }
      await deleteDashboardSession(pool, id);
      return null;
    }
    return { sessionId: id, projectId: s.project_id, csrf: s.csrf_token, authorization: `Bearer ${box.decrypt(s.key_enc!)}` };
  };

  const signIn = async (req: FastifyRequest, res: FastifyReply, error: string | null, status = 200): Promise<FastifyReply> => {
    const token = randomBytes(32).toString('base64url');
    res.header('set-cookie', sessionCookieHeader(cookie(req, LOGIN_COOKIE), token, 1800));
    return sendPage(res, status, signInPage(token, error));
  };

  app.get('/', async (req, res) => {
    const s = await sessionOf(req);
    if (!s) return signIn(req, res, null);
    return res.redirect(s.projectId === null ? '/dashboard/projects' : `/dashboard/projects/${encodeURIComponent(s.projectId)}`, 303);
  });
  app.get('/login', async (_req, res) => res.redirect('/dashboard', 303));

  app.post('/login', async (req, res) => {
    // No session yet: the form's token must match the one its page set in a cookie.
    const refused = formRefusal(req, publicUrl, readSessionCookie(req, LOGIN_COOKIE) ?? '');
    if (refused === 'cross-site') throw new DashboardRefusal(403, 'WHARF_ERR_FORBIDDEN', 'Not allowed', 'This form was sent from another site.');
    if (refused === 'csrf') return signIn(req, res, 'The sign-in form had expired. Try again.', 403);
    // Judged before the credential is looked at: while limited, a right key is refused too.
    const wait = limit.retryAfter(req.ip);
    if (wait > 0) {
      res.header('retry-after', String(wait));
      return signIn(req, res, `Too many failed sign-ins. Try again in ${wait} second${wait === 1 ? '' : 's'}.`, 429);
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    const credential = typeof body.credential === 'string' ? body.credential.trim() : '';
    let session: { id: string; expires_at: Date };
    let home: string;
    if (credential !== '' && deps.isOperatorToken(credential)) {
      session = await createDashboardSession(pool, { project_id: null, key_enc: null, credential_hash: sha256(credential) }, sessionSeconds);
      home = '/dashboard/projects';
    } else {
      const projectId = credential === '' ? null : await projectForKeyHash(pool, hashApiKey(credential));
      if (projectId === null) {
        limit.failed(req.ip);
        req.log.info({ ip: req.ip }, 'dashboard sign-in refused');
        return signIn(req, res, 'That is not a valid API key or operator token.', 401);
      }
      session = await createDashboardSession(pool, { project_id: projectId, key_enc: box.encrypt(credential), credential_hash: hashApiKey(credential) }, sessionSeconds);
      home = `/dashboard/projects/${encodeURIComponent(projectId)}`;
    }
    res.header('set-cookie', [
      sessionCookieHeader(cookie(req, COOKIE), session.id, (session.expires_at.getTime() - Date.now()) / 1000),
      sessionCookieHeader(cookie(req, LOGIN_COOKIE), '', 0),
    ]);
    return res.redirect(home, 303);
  });

  await app.register(async (signed) => {
    signed.addHook('onRequest', async (req, res) => {
      const s = await sessionOf(req);
      if (!s) {
        // A page asks to sign in; a form post without a session is refused.
        if (req.method === 'GET' || req.method === 'HEAD') {
          signedOut(req, res);
          return res.redirect('/dashboard', 303);
        }
        throw new DashboardRefusal(401, 'WHARF_ERR_DASHBOARD_SESSION', 'Not signed in', 'Your session has ended. Sign in again.');
      }
      req.dashboard = s;
    });
    // Every state-changing request is a form post from a dashboard page, with the session's token.
    signed.addHook('preHandler', async (req) => {
      if (req.method === 'GET' || req.method === 'HEAD') return;
      const refused = formRefusal(req, publicUrl, req.dashboard!.csrf);
      if (refused === 'cross-site') throw new DashboardRefusal(403, 'WHARF_ERR_FORBIDDEN', 'Not allowed', 'This form was sent from another site.');
      if (refused === 'csrf') throw new DashboardRefusal(403, 'WHARF_ERR_FORBIDDEN', 'Not allowed', 'This form has expired or did not come from the dashboard. Reload the page and try again.');
    });

    signed.post('/logout', async (req, res) => {
      await deleteDashboardSession(pool, req.dashboard!.sessionId);
      req.dashboard = null;
      res.header('set-cookie', sessionCookieHeader(cookie(req, COOKIE), '', 0));
      return res.redirect('/dashboard', 303);
    });

    signed.get('/projects', async (req, res) => {
      const { projectId } = req.dashboard!;
      if (projectId !== null) return res.redirect(`/dashboard/projects/${encodeURIComponent(projectId)}`, 303);
      const projects = await listProjects(pool);
      const summaries = await projectSummaries(pool, projects.map((p) => ({ id: p.id, name: p.name })));
      return sendPage(res, 200, projectsPage(frameOf(req), summaries));
    });

    /**
     * The page's project and an API caller for it. Another project than the session's is not
     * found, as is a project the operator's credential finds no such (the API answers 401).
     */
    const projectOf = async (req: FastifyRequest, res: FastifyReply): Promise<{ id: string; name: string; call: CallApi; frame: Frame }> => {
      const ctx = req.dashboard!;
      const id = (req.params as { projectID: string }).projectID;
      if (ctx.projectId !== null && ctx.projectId !== id) throw notFoundPage();
      const project = await deps.projects(id);
      if (!project) throw notFoundPage();
      const onRevoked = async (): Promise<never> => {
        if (ctx.projectId === null) throw notFoundPage();
        // The key this session signed in with no longer opens its project.
        await deleteDashboardSession(pool, ctx.sessionId);
        signedOut(req, res);
        throw new DashboardRefusal(401, 'WHARF_ERR_DASHBOARD_SESSION', 'Signed out', 'The API key this session signed in with is no longer valid. Sign in again.');
      };
      const call = apiCaller(deps.api, { authorization: ctx.authorization, host: req.headers.host }, id, onRevoked);
      return { id, name: project.name, call, frame: { ...frameOf(req), project: { id, name: project.name } } };
    };

    const pageDeps = { prefix: '/projects/:projectID', pool, box, portal: deps.portal, apiBrokerTypes: deps.apiBrokerTypes, projectOf, sendPage, query };
    await signed.register(dashboardPages, pageDeps);
    await signed.register(sourcePages, pageDeps);
  });
}
