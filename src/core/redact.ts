/**
 * Secrets inside a settings block, named by dotted keys: hidden in API answers, and kept when a
 * client sends the hidden value back unchanged.
 */
type Mapping = Record<string, unknown>;

/** What a secret looks like in an API answer; sending it back unchanged keeps the stored value. */
export const REDACTED = '********';

/** The mapping that holds the last segment of a dotted `key`, and that segment; null where absent. */
function holder(root: unknown, key: string): { node: Mapping; last: string } | null {
  const path = key.split('.');
  const last = path.pop()!;
  let node = root;
  for (const p of path) node = node && typeof node === 'object' ? (node as Mapping)[p] : undefined;
  return node && typeof node === 'object' && !Array.isArray(node) ? { node: node as Mapping, last } : null;
}

/** A copy of `value` with every present secret replaced by REDACTED. */
export function redactKeys<T>(value: T, keys: readonly string[]): T {
  const out = structuredClone(value);
  for (const key of keys) {
    const at = holder(out, key);
    if (at && at.node[at.last] !== undefined && at.node[at.last] !== null) at.node[at.last] = REDACTED;
  }
  return out;
}

/** A copy of `next` where every secret given as REDACTED takes the stored value again. */
export function restoreRedacted(next: unknown, stored: unknown, keys: readonly string[]): unknown {
  if (!next || typeof next !== 'object' || Array.isArray(next)) return next;
  const out = structuredClone(next) as Mapping;
  for (const key of keys) {
    const to = holder(out, key);
    if (to && to.node[to.last] === REDACTED) to.node[to.last] = holder(stored, key)?.node[to.last];
  }
  return out;
}

/**
 * The first of `keys` whose value is still REDACTED once stored values were restored: a client
 * sent "********" where nothing is stored to keep (a new endpoint, or another kind of credential),
 * which must not become the secret itself. Null when there is none.
 */
export function stillRedacted(value: unknown, keys: readonly string[]): string | null {
  return keys.find((key) => {
    const at = holder(value, key);
    return at !== null && at.node[at.last] === REDACTED;
  }) ?? null;
}

// ---------------------------------------------------------------------------------------------
// Secrets in free text (broker errors, SDK log lines)

/** What a secret found in a log line or an error text becomes. */
export const SCRUBBED = '***';

/** Members of a secret mapping (a service-account key) that are themselves secret. */
const SECRET_MEMBER = /private_key$|secret|password|passphrase|token$/i;
/** A PEM private key, whole or cut short: never in a log line, whoever's it is. */
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/**
 * The secret strings at `keys` of a settings block: each string value; of a URL, its password too;
 * of a mapping (a service-account key), the members whose names say they are secret.
 */
export function secretValues(block: unknown, keys: readonly string[]): string[] {
  const out = new Set<string>();
  const add = (value: unknown, depth: number): void => {
    if (typeof value === 'string') {
      if (value === '') return;
      out.add(value);
      const password = urlPassword(value);
      if (password) out.add(password);
    } else if (value && typeof value === 'object' && depth < 4) {
      for (const [name, member] of Object.entries(value)) {
        if (SECRET_MEMBER.test(name) || (member !== null && typeof member === 'object')) add(member, depth + 1);
      }
    }
  };
  for (const key of keys) {
    const at = holder(block, key);
    if (at) add(at.node[at.last], 0);
  }
  return [...out];
}

function urlPassword(value: string): string | null {
  if (!value.includes('@') || !value.includes('://')) return null;
  try {
    const password = new URL(value).password;
    return password ? decodeURIComponent(password) : null;
  } catch {
    return null;
  }
}

/**
 * A function that replaces every occurrence of the secrets in a text by SCRUBBED: as given, URL-
 * encoded, and JSON-escaped (how a key with newlines shows inside quoted JSON); and any PEM private
 * key. Longer forms go first, so a URL goes whole before its password.
 */
export function secretScrubber(values: readonly string[]): (text: string) => string {
  const forms = new Set<string>();
  for (const v of values) {
    if (v === '') continue;
    forms.add(v);
    forms.add(encodeURIComponent(v));
    forms.add(JSON.stringify(v).slice(1, -1));
  }
  const ordered = [...forms].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const form of ordered) if (out.includes(form)) out = out.split(form).join(SCRUBBED);
    return out.replace(PEM_PRIVATE_KEY, SCRUBBED);
  };
}

/** `text` with the secrets (see secretScrubber) replaced by SCRUBBED. */
export function scrubSecrets(text: string, values: readonly string[]): string {
  return secretScrubber(values)(text);
}

/** The part of pino the wrapped logger offers (a ConnectorLogger). */
interface LevelLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * A logger that scrubs the message and every string in the fields (errors included: message,
 * stack, cause) before `logger` sees them.
 */
export function scrubbingLogger(logger: LevelLogger, scrub: (text: string) => string): LevelLogger {
  const clean = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return scrub(value);
    if (value === null || typeof value !== 'object' || depth > 6) return value;
    if (value instanceof Error) {
      const copy = new Error(scrub(value.message));
      copy.name = value.name;
      copy.stack = value.stack === undefined ? undefined : scrub(value.stack);
      for (const [k, v] of Object.entries(value)) (copy as unknown as Mapping)[k] = clean(v, depth + 1);
      if (value.cause !== undefined) copy.cause = clean(value.cause, depth + 1);
      return copy;
    }
    if (Array.isArray(value)) return value.map((v) => clean(v, depth + 1));
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clean(v, depth + 1)]));
  };
  const at =
    (level: keyof LevelLogger) =>
    (obj: object, msg: string): void =>
      logger[level](clean(obj, 0) as object, scrub(msg));
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
