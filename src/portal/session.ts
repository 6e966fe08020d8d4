/**
 * Portal sessions: the cookie, the state checks every request makes, and the cross-site request
 * checks every form makes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { WharfError } from '../core/errors.ts';
import { linkState, type PortalLink, type PortalLinkState, type PortalSession } from '../store/portal-links.ts';
import type { PortalOptions } from './options.ts';

export const COOKIE = 'wharf_portal';

/** A session id is 32 random bytes in base64url: anything else in the cookie is ignored. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export function sessionCookie(req: FastifyRequest): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== COOKIE) continue;
    const value = part.slice(eq + 1).trim();
    if (SESSION_ID.test(value)) return value;
  }
  return null;
}

/** Secure when the request came over https, or when the public URL is https (TLS ends at a proxy). */
function isSecure(req: FastifyRequest, options: PortalOptions): boolean {
  return req.protocol === 'https' || options.publicUrl.startsWith('https:');
}

/**
 * HttpOnly, Path=/portal. SameSite=Lax, unless the portal may be framed by another site over
 * https: a Lax cookie is not sent inside a cross-site iframe, so embedding needs None (the CSRF
 * token and origin checks still guard every form).
 */
export function setCookieHeader(req: FastifyRequest, options: PortalOptions, value: string, maxAgeSeconds: number): string {
  const secure = isSecure(req, options);
  const sameSite = secure && options.frameAncestors.trim() !== "'none'" ? 'None' : 'Lax';
  return `${COOKIE}=${value}; Path=/portal; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=${sameSite}${secure ? '; Secure' : ''}`;
}

export function clearCookieHeader(req: FastifyRequest, options: PortalOptions): string {
  return setCookieHeader(req, options, '', 0);
}

/** A portal page refusing the request, with the status and words the customer should see. */
export class PortalRefusal extends WharfError {
  readonly title: string;
  constructor(status: number, code: string, title: string, message: string) {
    super(code, message, { status });
    this.name = 'PortalRefusal';
    this.title = title;
  }
}

/** Why a link or a session no longer opens the portal: revoked 401, expired or used 410. */
export function linkRefusal(state: PortalLinkState | 'unknown' | 'session-ended', link: Pick<PortalLink, 'kind'> | null): PortalRefusal {
  switch (state) {
    case 'revoked':
      return new PortalRefusal(401, 'WHARF_ERR_PORTAL_REVOKED', 'This link was revoked', 'The portal link you used has been revoked. Ask the team that sent it for a new one.');
    case 'expired':
      return new PortalRefusal(410, 'WHARF_ERR_PORTAL_EXPIRED', 'This link has expired', 'The portal link you used has expired. Ask the team that sent it for a new one.');
    case 'used':
      return new PortalRefusal(410, 'WHARF_ERR_PORTAL_USED', 'This link was already used', 'This one-time portal link has already been opened, and can be opened only once. Ask the team that sent it for a new one.');
    case 'session-ended':
      return link?.kind === 'one_time'
        ? new PortalRefusal(410, 'WHARF_ERR_PORTAL_USED', 'Your session has ended', 'Your portal session has ended, and its one-time link has been used. Ask the team that sent it for a new one.')
        : new PortalRefusal(401, 'WHARF_ERR_PORTAL_SESSION', 'Your session has ended', 'Your portal session has ended. Open your portal link again to continue.');
    case 'unknown':
    case 'active':
      return new PortalRefusal(401, 'WHARF_ERR_PORTAL_UNKNOWN', 'Not signed in', 'This portal link or session is not valid. Open the link you were given.');
  }
}

/**
 * Why a session cannot be used now, or null when it can: it is unknown, its link was revoked or
 * has expired, or the session itself has ended. (A one-time link's `used` state does not end the
 * sessions it started.) Compared with the database's clock.
 */
export function sessionRefusal(s: PortalSession | null): PortalRefusal | null {
  if (!s) return linkRefusal('unknown', null);
  const state = linkState(s.link, s.now);
  if (state === 'revoked' || state === 'expired') return linkRefusal(state, s.link);
  if (s.expires_at.getTime() <= s.now.getTime()) return linkRefusal('session-ended', s.link);
  return null;
}

export const forbidden = (message: string): PortalRefusal => new PortalRefusal(403, 'WHARF_ERR_FORBIDDEN', 'Not allowed', message);

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A form post must come from a portal page: the browser's Sec-Fetch-Site must say same-origin
 * (browsers without it: the Origin must name this site), and the session's CSRF token must
 * match, compared in constant time. Under Referrer-Policy: no-referrer, Chromium sends
 * `Origin: null` even for same-origin form posts, so `null` is judged by Sec-Fetch-Site alone.
 */
export function checkForm(req: FastifyRequest, options: PortalOptions, csrf: string): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if (site !== undefined && site !== 'same-origin') throw forbidden('This form was sent from another site.');
  if (origin !== undefined && (origin !== 'null' || site === undefined)) {
    const allowed = new Set([`${req.protocol}://${req.host}`]);
    if (options.publicUrl) allowed.add(new URL(options.publicUrl).origin);
    if (!allowed.has(origin)) throw forbidden('This form was sent from another site.');
  }
  const body = req.body as Record<string, unknown> | undefined;
  const token = typeof body?._csrf === 'string' ? body._csrf : '';
  // Hashing first makes the lengths equal, which timingSafeEqual requires.
  if (!timingSafeEqual(digest(token), digest(csrf))) throw forbidden('This form has expired or did not come from the portal. Reload the page and try again.');
}
