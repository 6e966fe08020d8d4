/**
 * What the portal's and the dashboard's browser sessions share: the session cookie, constant-time
 * secret comparison, and the cross-site checks every form post passes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/** A session id is 32 random bytes in base64url: anything else in a cookie is ignored. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** The session id in the cookie `name`, or null when there is none or it is malformed. */
export function readSessionCookie(req: FastifyRequest, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    if (SESSION_ID.test(value)) return value;
  }
  return null;
}

/** Secure when the request came over https, or when the public URL is https (TLS ends at a proxy). */
export function isSecure(req: FastifyRequest, publicUrl: string): boolean {
  return req.protocol === 'https' || publicUrl.startsWith('https:');
}

export interface CookieOptions {
  name: string;
  path: string;
  sameSite: 'Strict' | 'Lax' | 'None';
  secure: boolean;
}

/** A session cookie: always HttpOnly; `Max-Age=0` (with an empty value) clears it. */
export function sessionCookieHeader(o: CookieOptions, value: string, maxAgeSeconds: number): string {
  return `${o.name}=${value}; Path=${o.path}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=${o.sameSite}${o.secure ? '; Secure' : ''}`;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A check of a secret given in a request against the expected one, in constant time: both are
 * compared as SHA-256 digests, so neither the secret's bytes nor its length show in the timing
 * (timingSafeEqual also needs equal lengths). An empty expected secret matches nothing.
 */
export function secretMatcher(expected: string): (given: string) => boolean {
  if (expected === '') return () => false;
  const want = digest(expected);
  return (given) => timingSafeEqual(digest(given), want);
}

/** Why a form post is refused: sent from another site, or without the session's CSRF token. */
export type FormRefusal = 'cross-site' | 'csrf';

/**
 * A form post must come from one of this site's pages: the browser's Sec-Fetch-Site must say
 * same-origin (browsers without it: the Origin must name this site), and the session's CSRF token
 * must match, compared in constant time. Under Referrer-Policy: no-referrer, Chromium sends
 * `Origin: null` even for same-origin form posts, so `null` is judged by Sec-Fetch-Site alone.
 */
export function formRefusal(req: FastifyRequest, publicUrl: string, csrf: string): FormRefusal | null {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if (site !== undefined && site !== 'same-origin') return 'cross-site';
  if (origin !== undefined && (origin !== 'null' || site === undefined)) {
    const allowed = new Set([`${req.protocol}://${req.host}`]);
    if (publicUrl) allowed.add(new URL(publicUrl).origin);
    if (!allowed.has(origin)) return 'cross-site';
  }
  const body = req.body as Record<string, unknown> | undefined;
  const token = typeof body?._csrf === 'string' ? body._csrf : '';
  return secretMatcher(csrf)(token) ? null : 'csrf';
}
