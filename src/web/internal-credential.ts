/**
 * The dashboard's credential for operator sessions: its pages act on any project through the
 * REST API in-process (`app.inject()`), so the API's own validation and scoping decide every
 * action. The token is random per process and never leaves it (not logged, not in any answer),
 * and a request carrying it is honoured only when it did not come from the network: fastify's
 * inject gives its requests a stand-in socket, a client's request has a real one.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { secretMatcher } from './session.ts';

const SCHEME = /^Bearer\s+wharf-internal\.(\S+)\s*$/;

/**
 * The header the dashboard's in-process calls carry, so the API records that an action (a secret
 * rotated with a project key) came through the dashboard. Believed only from `inject()`.
 */
export const VIA_HEADER = 'x-wharf-via';

/** Whether a request came from this process (`app.inject()`), not from the network. */
export const inProcess = (req: FastifyRequest): boolean => !(req.raw.socket instanceof Socket);

/** Where the API request came from: the dashboard (in-process, saying so) or the API's own clients. */
export const viaOf = (req: FastifyRequest): 'dashboard' | 'api' => (inProcess(req) && req.headers[VIA_HEADER] === 'dashboard' ? 'dashboard' : 'api');

export interface InternalCredential {
  /** The Authorization header value in-process calls carry. */
  readonly authorization: string;
  /** True for an in-process request carrying this process's token; false for everything else. */
  accepts(req: FastifyRequest): boolean;
}

export function createInternalCredential(): InternalCredential {
  const token = randomBytes(32).toString('base64url');
  const matches = secretMatcher(token);
  return {
    authorization: `Bearer wharf-internal.${token}`,
    accepts(req) {
      if (!inProcess(req)) return false;
      const m = SCHEME.exec(req.headers.authorization ?? '');
      return m !== null && matches(m[1]!);
    },
  };
}
