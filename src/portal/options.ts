import type { FastifyRequest } from 'fastify';

/** The portal's settings (config `portal.*`, plus the address the server listens on). */
export interface PortalOptions {
  /** Base URL of portal links; '' = derived from the server's address (see `portalBaseUrl`). */
  publicUrl: string;
  /** How long a session started by opening a link lasts. */
  sessionMinutes: number;
  /** CSP frame-ancestors source list; `'none'` forbids embedding. */
  frameAncestors: string;
  /** `server.host`, for the derived base URL. */
  listenHost: string;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);

/**
 * Where customers open portal links. Without `public_url`, the server's own host and the port the
 * request came in on; a wildcard listen address names no host, so the request's Host is used.
 */
export function portalBaseUrl(options: PortalOptions, req: FastifyRequest): string {
  if (options.publicUrl) return options.publicUrl.replace(/\/+$/, '');
  const host = options.listenHost;
  if (WILDCARD_HOSTS.has(host)) return `${req.protocol}://${req.host}`;
  const name = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${req.protocol}://${name}:${req.socket.localPort}`;
}
