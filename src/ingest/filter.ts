/**
 * Subscription filters, in Convoy's dialect (MongoDB-like): `{ body?: expr, headers?: expr }`.
 *
 * An expression is an object whose keys are dot-separated paths (`"person.age"`, `"items.0.sku"`)
 * or `$and`/`$or` (non-empty arrays of expressions), all of which must hold. A path's value is a
 * literal (deep equality), an object of operators (`$eq $neq $gt $gte $lt $lte $in $nin $exist
 * $regex`), or a nested expression: `{"person": {"age": 5}}` is compiled to `{"person.age": 5}`,
 * `$and`/`$or` inside it included, so both forms mean exactly the same. `{}` is a literal.
 *
 * Semantics chosen (Mongo's, where Convoy's documentation is silent or its code is inconsistent):
 * - Walking a path through an array: a numeric segment indexes it; `$` (Convoy's positional
 *   `items.$.sku`) takes every element; any other segment is looked up in each element that is
 *   an object, so `items.sku` reaches every item's sku. Only own properties are followed.
 * - A comparison holds when some value reached, or some element of an array reached, satisfies it:
 *   `{"tags": "a"}` matches `["a","b"]`, and so does `{"tags": ["a","b"]}`.
 * - `$neq` and `$nin` are the negations of `$eq` and `$in`: they hold when no value reached equals,
 *   so a missing path satisfies them. Every other comparison fails on a missing path, and a
 *   literal `null` matches only an explicit null.
 * - `$exist: true` holds when the path reaches anything, null included (as Convoy's code says).
 * - `$gt $gte $lt $lte` compare numbers with numbers and strings with strings (UTF-16 order);
 *   mixed types never match (Convoy would parse "10" as a number; we do not).
 * - `$regex` searches (unanchored) and is case-sensitive, in RE2's syntax and semantics, as Go's
 *   regexp that Convoy uses: it runs on `re2js`, a linear-time engine, never on JavaScript's
 *   backtracking RegExp, so no pattern can stall the process (`(a|a)*b`, `.*.*.*=` included).
 *   What RE2 cannot express (backreferences, lookaround) is refused when the filter is saved, as
 *   is a pattern over 512 characters or one RE2 compiles to more than 1,000 instructions (10,000
 *   for all of a filter's patterns); each string is searched in its first 64 KiB.
 * - One evaluation has a work budget (filter-cost.ts): patterns are charged their size times the
 *   text they read, path steps and comparisons a few units each. An evaluation over budget does
 *   not match, so no filter and event, however large, hold the process for more than ~25 ms.
 *   Filters themselves are bounded when saved: 16 levels deep, 1,000 keys and elements in all.
 * - Headers are flat: a key is a whole header name (dots included), matched lower-cased; a value
 *   is a string (events keep a repeated header's values joined with ", ", see headers.ts); an
 *   array handed to matchesFilter is compared like any array.
 *
 * A filter is compiled once and cached by its JSON text (and by object identity): treat a filter
 * object as immutable once it has been matched.
 */

import { PatternCompiler, STEP_UNITS, charge, search, startEvaluation } from './filter-cost.ts';

/** A subscription's filter as stored: both parts optional. */
export interface SubscriptionFilter {
  body?: Record<string, unknown>;
  headers?: Record<string, unknown>;
}

type Scope = 'body' | 'headers';
type Doc = Record<string, unknown>;
type DocTest = (doc: unknown) => boolean;
/** Tests the values a path reached (none when it is missing). */
type ValuesTest = (found: unknown[]) => boolean;
type FilterEvent = { body: unknown; headers: Record<string, string | string[]> };

const MAX_DEPTH = 16;
const MAX_ENTRIES = 1000;

const COMPARISONS = ['$eq', '$neq', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exist', '$regex'] as const;
type Comparison = (typeof COMPARISONS)[number];
const OPERATOR_LIST = [...COMPARISONS, '$and', '$or'].join(', ');
const HEADER_STRINGS = 'header values are strings; compare with a string';

const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const isComparison = (k: string): k is Comparison => (COMPARISONS as readonly string[]).includes(k);
/** `$gt` is an operator; `$` and `$.venues` are Convoy's positional paths. */
const isOperatorKey = (k: string): boolean => k.startsWith('$') && k !== '$' && !k.startsWith('$.');
const never = (): boolean => false;
const always = (): boolean => true;

/** Header names may hold dots and headers do not nest, so a header key is one segment. */
const pathOf = (key: string, scope: Scope): string[] => (scope === 'headers' ? [key.toLowerCase()] : key.split('.'));

/** An object holding any comparison operator is an operator object; `{}` is a literal. */
function shapeOf(v: unknown): 'literal' | 'operators' | 'expression' {
  if (!isObject(v)) return 'literal';
  const keys = Object.keys(v);
  if (keys.length === 0) return 'literal';
  return keys.some(isComparison) ? 'operators' : 'expression';
}

// ---------------------------------------------------------------------------------------------
// Matching

const INDEX = /^(?:0|[1-9]\d*)$/;

function pushOwn(o: Doc, key: string, out: unknown[]): void {
  if (Object.hasOwn(o, key) && o[key] !== undefined) out.push(o[key]);
}

function step(v: unknown, seg: string, out: unknown[]): void {
  if (Array.isArray(v)) {
    charge(STEP_UNITS * (v.length + 1));
    if (seg === '$') {
      for (const e of v) if (e !== undefined) out.push(e);
    } else if (INDEX.test(seg)) {
      if (v[Number(seg)] !== undefined) out.push(v[Number(seg)]);
    } else {
      for (const e of v) if (isObject(e)) pushOwn(e, seg, out);
    }
  } else if (isObject(v)) {
    pushOwn(v, seg, out);
  }
}

/** Every value `path` reaches in `doc`; several when it crosses arrays, none when missing. */
function resolve(doc: unknown, path: readonly string[]): unknown[] {
  let found: unknown[] = [doc];
  for (const seg of path) {
    const next: unknown[] = [];
    for (const v of found) step(v, seg, next);
    if (next.length === 0) return next;
    found = next;
  }
  return found;
}

/** Whether a value reached, or an element of an array reached, passes `test`. */
function some(found: unknown[], test: (v: unknown) => boolean): boolean {
  charge(STEP_UNITS * found.length);
  for (const v of found) {
    if (test(v)) return true;
    if (Array.isArray(v)) {
      charge(STEP_UNITS * v.length);
      for (const e of v) if (test(e)) return true;
    }
  }
  return false;
}

/** Deep equality, walked along `want` (from the filter) so its cost is bounded by the filter. */
function deepEqual(got: unknown, want: unknown): boolean {
  charge(1);
  if (got === want) return true;
  if (Array.isArray(want)) {
    return Array.isArray(got) && got.length === want.length && want.every((w, i) => deepEqual(got[i], w));
  }
  if (isObject(want)) {
    if (!isObject(got)) return false;
    const keys = Object.keys(want);
    const gotKeys = Object.keys(got);
    charge(gotKeys.length);
    return gotKeys.length === keys.length && keys.every((k) => Object.hasOwn(got, k) && deepEqual(got[k], want[k]));
  }
  return false;
}

/** Sign of `v - x` for two numbers or two strings; null for any other pair. */
function order(v: unknown, x: unknown): number | null {
  if (typeof v === 'number' && typeof x === 'number') return v - x;
  if (typeof v === 'string' && typeof x === 'string') return v < x ? -1 : v > x ? 1 : 0;
  return null;
}

const ORDERINGS: Record<'$gt' | '$gte' | '$lt' | '$lte', (c: number) => boolean> = {
  $gt: (c) => c > 0,
  $gte: (c) => c >= 0,
  $lt: (c) => c < 0,
  $lte: (c) => c <= 0,
};

/** A comparison as a test, or null when its operand is unusable. */
function compileComparison(op: Comparison, x: unknown): ValuesTest | null {
  switch (op) {
    case '$eq':
      return (found) => some(found, (v) => deepEqual(v, x));
    case '$neq':
      return (found) => !some(found, (v) => deepEqual(v, x));
    case '$in':
    case '$nin': {
      if (!Array.isArray(x)) return null;
      const isIn = (found: unknown[]): boolean => some(found, (v) => x.some((w) => deepEqual(v, w)));
      return op === '$in' ? isIn : (found) => !isIn(found);
    }
    case '$exist':
      return typeof x === 'boolean' ? (found) => found.length > 0 === x : null;
    case '$regex': {
      const re = typeof x === 'string' ? patterns.compile(x) : null;
      if (re === null || typeof re === 'string') return null;
      return (found) => some(found, (v) => typeof v === 'string' && search(re, v));
    }
    default: {
      if (typeof x !== 'number' && typeof x !== 'string') return null;
      const holds = ORDERINGS[op];
      return (found) =>
        some(found, (v) => {
          const c = order(v, x);
          return c !== null && holds(c);
        });
    }
  }
}

function compileOperators(ops: Doc): ValuesTest {
  const tests: ValuesTest[] = [];
  for (const [op, operand] of Object.entries(ops)) {
    const test = isComparison(op) ? compileComparison(op, operand) : null;
    if (!test) return never;
    tests.push(test);
  }
  return (found) => tests.every((t) => t(found));
}

function compileField(path: string[], value: unknown, scope: Scope): DocTest {
  const shape = shapeOf(value);
  if (shape === 'expression') return compileExpr(value, scope, path);
  const test: ValuesTest =
    shape === 'operators' ? compileOperators(value as Doc) : (found) => some(found, (v) => deepEqual(v, value));
  return (doc) => test(resolve(doc, path));
}

/** `prefix` is the path of the nested object the expression sits in, so nesting is flattening. */
function compileExpr(expr: unknown, scope: Scope, prefix: readonly string[]): DocTest {
  if (!isObject(expr)) return never;
  const tests: DocTest[] = [];
  for (const [key, value] of Object.entries(expr)) {
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) return never;
      const branches = value.map((b) => compileExpr(b, scope, prefix));
      tests.push(key === '$and' ? (doc) => branches.every((b) => b(doc)) : (doc) => branches.some((b) => b(doc)));
    } else if (isOperatorKey(key)) {
      return never;
    } else {
      tests.push(compileField([...prefix, ...pathOf(key, scope)], value, scope));
    }
  }
  return (doc) => tests.every((t) => t(doc));
}

/** The compiler of the filter being compiled (compiling is synchronous, so one at a time). */
let patterns = new PatternCompiler();

function compileFilter(filter: object): (event: FilterEvent) => boolean {
  if (!isObject(filter)) return never;
  patterns = new PatternCompiler();
  // An unknown part (a `query` scope we do not have) fails closed rather than being ignored.
  if (Object.keys(filter).some((k) => k !== 'body' && k !== 'headers')) return never;
  const part = (expr: unknown, scope: Scope): DocTest =>
    expr === undefined || expr === null ? always : compileExpr(expr, scope, []);
  const body = part(filter.body, 'body');
  const headers = part(filter.headers, 'headers');
  return (event) => body(event.body) && headers(event.headers);
}

type CompiledFilter = (event: FilterEvent) => boolean;

/** How many compiled filters the text-keyed cache keeps (least recently used go first). */
const MAX_CACHED = 1000;
/** By object, for the many events of one batch that meet the same row. */
const byObject = new WeakMap<object, CompiledFilter>();
/** By JSON text, for the rows each batch reloads: the database hands out new objects every time. */
const byText = new Map<string, CompiledFilter>();

/**
 * A filter's compiled test, cached by its JSON text (and by object identity in front of that), so
 * structurally equal filters compile once. Throws when the filter cannot be serialised.
 */
export function compiledFilter(filter: object): CompiledFilter {
  const known = byObject.get(filter);
  if (known) return known;
  const text = JSON.stringify(filter);
  let test = byText.get(text);
  if (test) {
    byText.delete(text); // refreshed: the oldest entry is the one evicted
  } else {
    test = compileFilter(filter);
    if (byText.size >= MAX_CACHED) byText.delete(byText.keys().next().value!);
  }
  byText.set(text, test);
  byObject.set(filter, test);
  return test;
}

/** Whether an event matches: `body` is the parsed JSON body (any JSON value), `headers` lower-cased names. */
export function matchesFilter(
  filter: SubscriptionFilter | null | undefined,
  event: { body: unknown; headers: Record<string, string | string[]> },
): boolean {
  if (filter === null || filter === undefined) return true;
  if (typeof filter !== 'object') return false;
  // Routing must survive any document (getters, proxies, a missing `headers`): a throw is no
  // match, and so is an evaluation over its work budget (OVER_BUDGET).
  try {
    startEvaluation();
    return compiledFilter(filter)(event);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Checking a filter given by a user

/** One problem with a filter: where (like `filter.body.$or[1].age.$gt`) and what. */
export interface FilterIssue {
  path: string;
  message: string;
}

interface Check {
  errors: FilterIssue[];
  scope: Scope;
  root: string;
  entries: number;
  patterns: PatternCompiler;
}

/** Counts a container's entries and bounds its depth; false when it must not be walked. */
function enter(ctx: Check, value: Doc | unknown[], at: string, depth: number): boolean {
  if (ctx.entries > MAX_ENTRIES) return false;
  if (depth > MAX_DEPTH) {
    ctx.errors.push({ path: at, message: `nested deeper than ${MAX_DEPTH} levels` });
    return false;
  }
  ctx.entries += Array.isArray(value) ? value.length : Object.keys(value).length;
  if (ctx.entries > MAX_ENTRIES) {
    ctx.errors.push({ path: ctx.root, message: `more than ${MAX_ENTRIES} keys and array elements in all` });
    return false;
  }
  return true;
}

function checkLiteral(value: unknown, at: string, depth: number, ctx: Check): void {
  if (typeof value === 'string') return;
  if (ctx.scope === 'headers' && !Array.isArray(value)) {
    ctx.errors.push({ path: at, message: HEADER_STRINGS });
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) ctx.errors.push({ path: at, message: 'must be a finite number' });
  } else if (typeof value === 'boolean' || value === null) {
    return;
  } else if (Array.isArray(value)) {
    if (enter(ctx, value, at, depth)) value.forEach((v, i) => checkLiteral(v, `${at}[${i}]`, depth + 1, ctx));
  } else if (isObject(value)) {
    if (enter(ctx, value, at, depth)) {
      for (const [k, v] of Object.entries(value)) checkLiteral(v, `${at}.${k}`, depth + 1, ctx);
    }
  } else {
    ctx.errors.push({ path: at, message: 'must be a JSON value' });
  }
}

function checkComparison(op: Comparison, x: unknown, at: string, depth: number, ctx: Check): void {
  const fail = (message: string): void => void ctx.errors.push({ path: at, message });
  switch (op) {
    case '$eq':
    case '$neq':
      return checkLiteral(x, at, depth, ctx);
    case '$in':
    case '$nin':
      if (!Array.isArray(x)) return fail('must be an array');
      if (enter(ctx, x, at, depth)) x.forEach((v, i) => checkLiteral(v, `${at}[${i}]`, depth + 1, ctx));
      return;
    case '$exist':
      if (typeof x !== 'boolean') fail('must be true or false');
      return;
    case '$regex': {
      if (typeof x !== 'string') return fail('must be a string');
      const re = ctx.patterns.compile(x);
      if (typeof re === 'string') fail(re);
      return;
    }
    default:
      if (typeof x === 'number' && ctx.scope === 'headers') return fail(HEADER_STRINGS);
      if (typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x))) return;
      return fail('must be a number or a string');
  }
}

function checkOperators(ops: Doc, at: string, depth: number, ctx: Check): void {
  if (!enter(ctx, ops, at, depth)) return;
  for (const [op, x] of Object.entries(ops)) {
    const here = `${at}.${op}`;
    if (isComparison(op)) checkComparison(op, x, here, depth + 1, ctx);
    else if (isOperatorKey(op) && op !== '$and' && op !== '$or') ctx.errors.push({ path: here, message: `unknown operator; expected one of ${OPERATOR_LIST}` });
    else ctx.errors.push({ path: here, message: 'field names and $and/$or cannot be mixed with operators' });
  }
}

/** Why a key cannot be a path, or null. */
function pathProblem(key: string, scope: Scope): string | null {
  if (scope === 'headers') return key === '' ? 'empty header name' : null;
  const segments = key.split('.');
  if (segments.includes('')) return 'empty path segment';
  const op = segments.find((s) => s.startsWith('$') && s !== '$');
  return op ? `path segment "${op}" looks like an operator; write {"field": {"${op}": …}}` : null;
}

function checkExpr(expr: Doc, at: string, depth: number, ctx: Check): void {
  if (!enter(ctx, expr, at, depth)) return;
  for (const [key, value] of Object.entries(expr)) {
    const here = `${at}.${key}`;
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) {
        ctx.errors.push({ path: here, message: 'must be a non-empty array of objects' });
      } else if (enter(ctx, value, here, depth + 1)) {
        value.forEach((b, i) => {
          if (isObject(b)) checkExpr(b, `${here}[${i}]`, depth + 2, ctx);
          else ctx.errors.push({ path: `${here}[${i}]`, message: 'must be an object' });
        });
      }
    } else if (isComparison(key)) {
      ctx.errors.push({ path: here, message: `an operator needs a field; write {"field": {"${key}": …}}` });
    } else if (isOperatorKey(key)) {
      ctx.errors.push({ path: here, message: `unknown operator; expected one of ${OPERATOR_LIST}` });
    } else {
      const problem = pathProblem(key, ctx.scope);
      if (problem) ctx.errors.push({ path: here, message: problem });
      else checkCondition(value, here, depth + 1, ctx);
    }
  }
}

function checkCondition(value: unknown, at: string, depth: number, ctx: Check): void {
  const shape = shapeOf(value);
  if (shape === 'operators') checkOperators(value as Doc, at, depth, ctx);
  else if (shape === 'literal') checkLiteral(value, at, depth, ctx);
  else if (ctx.scope === 'headers') ctx.errors.push({ path: at, message: HEADER_STRINGS });
  else checkExpr(value as Doc, at, depth, ctx);
}

/**
 * Problems with a filter given by a user, each with its path under `path` (like
 * `filter.body.$or[1].age.$gt`); [] when valid. Absent (`null`/`undefined`) is valid: it matches all.
 */
export function checkFilter(filter: unknown, path = 'filter'): FilterIssue[] {
  if (filter === undefined || filter === null) return [];
  if (!isObject(filter)) return [{ path, message: 'must be an object with optional "body" and "headers"' }];
  const errors: FilterIssue[] = [];
  // One context for both parts, so the entry budget covers the whole filter.
  const ctx: Check = { errors, scope: 'body', root: path, entries: 0, patterns: new PatternCompiler() };
  for (const [key, expr] of Object.entries(filter)) {
    const at = `${path}.${key}`;
    if (key !== 'body' && key !== 'headers') errors.push({ path: at, message: 'unknown key; expected "body" or "headers"' });
    else if (expr === undefined || expr === null) continue;
    else if (!isObject(expr)) errors.push({ path: at, message: 'must be an object' });
    else {
      ctx.scope = key;
      checkExpr(expr, at, 1, ctx);
    }
  }
  return errors;
}
