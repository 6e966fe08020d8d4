/**
 * Postgres text and jsonb cannot hold NUL (U+0000): a value carrying one, written anywhere, makes
 * its statement fail, and would answer 500. Every request's parsed body, query and path
 * parameters are looked through once, before any handler, and a NUL is refused with a 400 naming
 * where it is. An event's `data` is the exception (a route says so in its `config.nulAllowedIn`):
 * it is stored as JSON text, where NUL is the escape `\u0000`, and delivered as sent.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid } from '../core/errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Top-level body fields that may hold NUL because they are stored as JSON text. */
    nulAllowedIn?: readonly string[];
  }
}

/** A value met while walking, with the way back to the root (paths are built for a hit only). */
interface Node {
  value: unknown;
  parent: Node | null;
  /** The key or index under the parent; '' for the root. */
  step: string | number;
}

/** Parsed JSON, a parsed query (whose prototype is the parser's own), a form; not a raw body. */
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

function pathOf(node: Node, key?: string): string {
  const steps: (string | number)[] = key === undefined ? [] : [key];
  for (let n: Node | null = node; n !== null && n.parent !== null; n = n.parent) steps.push(n.step);
  steps.reverse();
  const text = steps.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
  const shown = text.replaceAll('\0', '\\u0000');
  // A path through a deeply nested body would be as long as the body; its end says where.
  return shown.length > 200 ? `…${shown.slice(-199)}` : shown;
}

/**
 * Where the first NUL in a parsed JSON value (or query) is, as a field path such as
 * `filter_config.event_types[0]`, or null. Iterative: no body drives a recursion. A raw body (a
 * Buffer: HTTP ingest's) is not looked into; `skip` names top-level keys left out.
 */
export function nulField(root: unknown, skip: readonly string[] = []): string | null {
  const stack: Node[] = [{ value: root, parent: null, step: '' }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'string') {
      if (v.includes('\0')) return pathOf(node) || 'body';
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], parent: node, step: i });
    } else if (isRecord(v)) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        if (node.parent === null && skip.includes(key)) continue;
        if (key.includes('\0')) return `${pathOf(node, key)} (a key)`;
        stack.push({ value: v[key], parent: node, step: key });
      }
    }
  }
  return null;
}

const refusal = (field: string) => invalid(field, 'must not contain NUL (\\u0000): it cannot be stored');

/** Refuses NUL in every request's path parameters, query and body, before the route's handler. */
export function refuseNul(app: FastifyInstance): void {
  // A callback hook, not an async one: it never waits, and a promise a request is what every
  // POST paid for it (issue 15). A throw in it reaches the error handler all the same (fastify's
  // hook runner catches it).
  app.addHook('preValidation', (req: FastifyRequest, _res: FastifyReply, done: (err?: Error) => void) => {
    const field = nulField(req.params) ?? nulField(req.query) ?? nulField(req.body, req.routeOptions.config?.nulAllowedIn);
    done(field === null ? undefined : refusal(field));
  });
}

/**
 * Whether Postgres refused a value for holding NUL (22021 for text, 22P05 for jsonb's `\u0000`):
 * whatever slipped past the checks above is still the caller's input, answered 400, not 500.
 */
export function isNulRefusal(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  return code === '22P05' || (code === '22021' && typeof message === 'string' && message.includes('0x00'));
}
