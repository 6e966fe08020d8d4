/**
 * Portal sessions: the cookie, the state checks every request makes, and the cross-site request
 * checks every form makes.
 */
import type { FastifyRequest } from 'fastify';
import { WharfError } from '../core/errors.ts';
import { linkState, type PortalLink, type PortalLinkState, type PortalSession } from '../store/portal-links.ts';
import type { PortalOptions } from './options.ts';
import { formRefusal, isSecure, readSessionCookie, sessionCookieHeader } from '../web/session.ts';

export const COOKIE = 'wharf_portal';

export function sessionCookie(req: FastifyRequest): string | null {
  return readSessionCookie(req, COOKIE);
}

/**
 * HttpOnly, Path=/portal. SameSite=Lax, unless the portal may be framed by another site over
 * https: a Lax cookie is not sent inside a cross-site iframe, so embedding needs None (the CSRF
 * token and origin checks still guard every form).
 */
export function setCookieHeader(req: FastifyRequest, options: PortalOptions, value: string, maxAgeSeconds: number): string {
  const secure = isSecure(req, options.publicUrl);
  const sameSite = secure && options.frameAncestors.trim() !== "'none'" ? 'None' : 'Lax';
  return sessionCookieHeader({ name: COOKIE, path: '/portal', sameSite, secure }, value, maxAgeSeconds);
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

/** A form post must come from a portal page with the session's CSRF token (src/web/session.ts). */
export function checkForm(req: FastifyRequest, options: PortalOptions, csrf: string): void {
  const refused = formRefusal(req, options.publicUrl, csrf);
  if (refused === 'cross-site') throw forbidden('This form was sent from another site.');
  if (refused === 'csrf') throw forbidden('This form has expired or did not come from the portal. Reload the page and try again.');
}
