import { describe, expect, it } from 'vitest';
import { RE2JS } from 're2js';
import { checkFilter, compiledFilter, matchesFilter, type SubscriptionFilter } from '../../../src/ingest/filter.ts';
import { MAX_FILTER_PROGRAM, REGEX_SUBJECT_CHARS, WORK_BUDGET } from '../../../src/ingest/filter-cost.ts';
import { MAX_LOOP_BLOCK_MS } from '../../harness/event-loop.ts';

const order = {
  event_type: 'order.created',
  person: { age: 12, name: 'tunde', nick: null },
  cities: ['lagos', 'ibadan'],
  temperatures: [30, 12, 39.9],
  items: [
    { sku: 'A1', qty: 2, tags: ['red'] },
    { sku: 'B2', qty: 5, tags: [] },
  ],
  matrix: [
    [1, 2],
    [3, 4],
  ],
  meta: {},
  amount: '10',
  flags: { paid: true },
};
const headers = { 'x-source': 'billing', 'x-tag': ['a', 'b'], 'x.dotted': 'yes' };

const body = (expr: Record<string, unknown>, doc: unknown = order): boolean =>
  matchesFilter({ body: expr }, { body: doc, headers: {} });

describe('matchesFilter on the body', () => {
  it.each<[string, Record<string, unknown>, boolean]>([
    ['empty expression', {}, true],
    ['top-level literal', { event_type: 'order.created' }, true],
    ['top-level literal, other value', { event_type: 'order.paid' }, false],
    ['dotted path', { 'person.age': 12 }, true],
    ['nested object, same as dotted', { person: { age: 12 } }, true],
    ['nested object, other value', { person: { age: 13 } }, false],
    ['nested object, two fields', { person: { age: 12, name: 'tunde' } }, true],
    ['nested object, one field differs', { person: { age: 12, name: 'bola' } }, false],
    ['$eq on a string', { 'person.name': { $eq: 'tunde' } }, true],
    ['$eq on an object is deep and ignores key order', { person: { $eq: { nick: null, name: 'tunde', age: 12 } } }, true],
    ['$eq on an object with fewer keys', { person: { $eq: { age: 12 } } }, false],
    ['{} is a literal equal to {}', { meta: {} }, true],
    ['{} is a literal, not "anything"', { flags: {} }, false],
    ['{} on a missing path', { missing: {} }, false],

    ['missing path', { 'person.height': 1 }, false],
    ['path through a number', { 'person.age.years': 12 }, false],
    ['explicit null', { 'person.nick': null }, true],
    ['null does not match a missing path', { 'person.height': null }, false],

    ['array: any element equals', { cities: 'lagos' }, true],
    ['array: no element equals', { cities: 'abuja' }, false],
    ['array: the whole array equals', { cities: ['lagos', 'ibadan'] }, true],
    ['array: order matters for whole-array equality', { cities: ['ibadan', 'lagos'] }, false],
    ['array index', { 'cities.0': 'lagos' }, true],
    ['array index, other element', { 'cities.1': 'lagos' }, false],
    ['array index out of range', { 'cities.5': 'lagos' }, false],
    ['field through an array of objects reaches every element', { 'items.sku': 'B2' }, true],
    ['index then field', { 'items.1.sku': 'B2' }, true],
    ['index then field, other element', { 'items.0.sku': 'B2' }, false],
    ["Convoy's positional $", { 'items.$.sku': 'B2' }, true],
    ['positional $ on an object', { 'person.$.age': 12 }, false],
    // Nesting is flattening, so two fields may be satisfied by different elements (no $elemMatch).
    ['nested fields under an array are independent', { items: { sku: 'A1', qty: 5 } }, true],
    ['array inside array of objects', { 'items.tags': 'red' }, true],
    ['empty array inside array of objects', { 'items.tags': [] }, true],
    ['nested array by indexes', { 'matrix.1.0': 3 }, true],
    ['nested array: an element equals', { matrix: [1, 2] }, true],
    ['nested array: elements of elements are not searched', { matrix: 4 }, false],
    ['nested array by positional $', { 'matrix.$.$': 4 }, true],
    ['index then any element', { 'matrix.0': 2 }, true],

    ['$neq', { event_type: { $neq: 'order.paid' } }, true],
    ['$neq, equal', { event_type: { $neq: 'order.created' } }, false],
    ['$neq on a missing path', { missing: { $neq: 1 } }, true],
    ['$neq when an element equals', { cities: { $neq: 'lagos' } }, false],
    ['$neq null on a missing path', { missing: { $neq: null } }, true],

    ['$gt', { 'person.age': { $gt: 11 } }, true],
    ['$gt, equal', { 'person.age': { $gt: 12 } }, false],
    ['$gte, equal', { 'person.age': { $gte: 12 } }, true],
    ['$lt, equal', { 'person.age': { $lt: 12 } }, false],
    ['$lt', { 'person.age': { $lt: 13 } }, true],
    ['$lte, equal', { 'person.age': { $lte: 12 } }, true],
    ['$lte', { 'person.age': { $lte: 11 } }, false],
    ['$gt and $lt together, inside', { 'person.age': { $gt: 10, $lt: 20 } }, true],
    ['$gt and $lt together, outside', { 'person.age': { $gt: 10, $lt: 12 } }, false],
    ['$gt on strings', { event_type: { $gt: 'order.a' } }, true],
    ['$lt on strings', { event_type: { $lt: 'order.a' } }, false],
    ['$gt, number against a numeric string', { amount: { $gt: 5 } }, false],
    ['$gt, string against a number', { 'person.age': { $gt: '1' } }, false],
    ['$gte, number against a boolean', { 'flags.paid': { $gte: 0 } }, false],
    ['$lt on a missing path', { missing: { $lt: 100 } }, false],
    ['$gt: any element of an array', { temperatures: { $gt: 39 } }, true],
    ['$gt: no element of an array', { temperatures: { $gt: 40 } }, false],
    ['$lte: through an array of objects', { 'items.qty': { $lte: 2 } }, true],

    ['$in', { event_type: { $in: ['order.created', 'order.paid'] } }, true],
    ['$in, absent', { event_type: { $in: ['order.paid'] } }, false],
    ['$in on an array field', { cities: { $in: ['abuja', 'ibadan'] } }, true],
    ['$in with null', { 'person.nick': { $in: [null] } }, true],
    ['$in with null on a missing path', { missing: { $in: [null] } }, false],
    ['$in with an object', { 'flags': { $in: [{ paid: true }] } }, true],
    ['$nin', { event_type: { $nin: ['order.paid'] } }, true],
    ['$nin, present', { event_type: { $nin: ['order.created'] } }, false],
    ['$nin on a missing path', { missing: { $nin: ['x'] } }, true],
    ['$nin when an element is listed', { cities: { $nin: ['ibadan'] } }, false],

    ['$exist true on a value', { 'person.age': { $exist: true } }, true],
    ['$exist true on null', { 'person.nick': { $exist: true } }, true],
    ['$exist true on a missing path', { 'person.height': { $exist: true } }, false],
    ['$exist false on a missing path', { 'person.height': { $exist: false } }, true],
    ['$exist false on a value', { 'person.age': { $exist: false } }, false],
    ['$exist through an array of objects', { 'items.sku': { $exist: true } }, true],
    ['$exist false with another operator on a missing path', { missing: { $exist: false, $eq: 'x' } }, false],

    ['$regex', { event_type: { $regex: '^order\\.' } }, true],
    ['$regex is unanchored', { event_type: { $regex: 'created' } }, true],
    ['$regex is case-sensitive', { event_type: { $regex: '^ORDER' } }, false],
    ['$regex with a leading RE2 flag', { event_type: { $regex: '(?i)^ORDER' } }, true],
    ['$regex with a Go named group', { event_type: { $regex: '^(?P<kind>[a-z]+)\\.created$' } }, true],
    ['$regex on an array element', { cities: { $regex: '^iba' } }, true],
    ['$regex on a number', { 'person.age': { $regex: '1' } }, false],
    ['$regex on a missing path', { missing: { $regex: '.*' } }, false],

    ['$or, second branch', { $or: [{ cities: 'london' }, { 'person.age': 12 }] }, true],
    ['$or, no branch', { $or: [{ cities: 'london' }, { 'person.age': 13 }] }, false],
    ['$or with an empty branch', { $or: [{ cities: 'london' }, {}] }, true],
    [
      '$and holding $or',
      { $and: [{ 'person.age': { $gte: 10 } }, { $or: [{ type: 'weekly' }, { cities: 'lagos' }] }] },
      true,
    ],
    ['$and, one branch fails', { $and: [{ 'person.age': { $gte: 10 } }, { cities: 'london' }] }, false],
    ['$and beside a field, field fails', { $and: [{ 'person.age': 12 }], event_type: 'order.paid' }, false],
    ['$and and $or side by side', { $and: [{ 'person.age': 12 }], $or: [{ cities: 'x' }, { 'flags.paid': true }] }, true],
    ['$or inside a nested object is relative to it', { person: { $or: [{ age: 1 }, { name: 'tunde' }] } }, true],
    ['$or inside a nested object, no branch', { person: { $or: [{ age: 1 }, { name: 'bola' }] } }, false],
  ])('%s', (_name, expr, expected) => {
    expect(body(expr)).toBe(expected);
  });

  it.each<[string, Record<string, unknown>, unknown, boolean]>([
    ['root array: positional', { '$.event': 'meetup' }, [{ event: 'meetup' }, { venue: 'x' }], true],
    ['root array: field reaches every element', { venue: 'x' }, [{ event: 'meetup' }, { venue: 'x' }], true],
    ['root array: index', { '0.venue': 'x' }, [{ event: 'meetup' }, { venue: 'x' }], false],
    [
      "Convoy's documented nested positional filter",
      { '$.venues.$.lagos': 'lekki' },
      [{ event: 'meetup' }, { venues: [{ lagos: ['ikeja', 'lekki'] }, { ibadan: ['bodija'] }] }],
      true,
    ],
    ['scalar body, field', { a: 1 }, 'hello', false],
    ['scalar body, $exist false', { a: { $exist: false } }, 'hello', true],
    ['null body', { a: { $neq: 1 } }, null, true],
    ['inherited properties are not fields', { constructor: { $exist: true } }, {}, false],
    ['own __proto__ from JSON is a field', { ['__proto__']: 1 }, JSON.parse('{"__proto__":1}'), true],
  ])('%s', (_name, expr, doc, expected) => {
    expect(body(expr, doc)).toBe(expected);
  });
});

describe('matchesFilter on headers and whole filters', () => {
  const event = { body: order, headers };

  it.each<[string, Record<string, unknown>, boolean]>([
    ['a header', { 'x-source': 'billing' }, true],
    ['names are matched lower-cased', { 'X-Source': 'billing' }, true],
    ['another value', { 'x-source': 'shipping' }, false],
    ['a repeated header: any value', { 'x-tag': 'b' }, true],
    ['a repeated header: all values', { 'x-tag': ['a', 'b'] }, true],
    ['a repeated header with $in', { 'x-tag': { $in: ['c', 'a'] } }, true],
    ['a name with a dot is one name', { 'x.dotted': 'yes' }, true],
    ['a missing header, $exist false', { 'x-missing': { $exist: false } }, true],
    ['a missing header', { 'x-missing': 'x' }, false],
    ['$regex on a header', { 'x-source': { $regex: '^bill' } }, true],
    ['$or across headers', { $or: [{ 'x-source': 'no' }, { 'x-tag': 'a' }] }, true],
  ])('%s', (_name, expr, expected) => {
    expect(matchesFilter({ headers: expr }, event)).toBe(expected);
  });

  it.each<[string, SubscriptionFilter | null | undefined, boolean]>([
    ['null', null, true],
    ['undefined', undefined, true],
    ['no parts', {}, true],
    ['empty parts', { body: {}, headers: {} }, true],
    ['body and headers both match', { body: { event_type: 'order.created' }, headers: { 'x-source': 'billing' } }, true],
    ['body matches, headers do not', { body: { event_type: 'order.created' }, headers: { 'x-source': 'no' } }, false],
    ['headers match, body does not', { body: { event_type: 'no' }, headers: { 'x-source': 'billing' } }, false],
  ])('filter %s', (_name, filter, expected) => {
    expect(matchesFilter(filter, event)).toBe(expected);
  });

  it('treats a null part as absent', () => {
    expect(matchesFilter({ body: null } as unknown as SubscriptionFilter, event)).toBe(true);
  });
});

describe('matchesFilter is total', () => {
  const event = { body: order, headers };
  const broken: [string, unknown][] = [
    ['a string filter', 'event_type'],
    ['an array filter', []],
    ['an unknown part', { query: { a: 1 } }],
    ['a non-object body expression', { body: 'x' }],
    ['$gt with an object', { body: { 'person.age': { $gt: {} } } }],
    ['$in with a string', { body: { event_type: { $in: 'order.created' } } }], // a lenient $in would match
    // Each of these would match `order` if it were read leniently, so the test can fail.
    ['$exist with a string', { body: { event_type: { $exist: 'yes' } } }],
    ['$regex that does not compile', { body: { event_type: { $regex: '(' } } }],
    ['$regex with lookahead RE2 lacks', { body: { event_type: { $regex: '(?=order)' } } }],
    ['$or that is not an array', { body: { $or: { event_type: 'order.created' } } }],
    ['an empty $and', { body: { $and: [] } }],
    ['an unknown operator', { body: { event_type: { $like: 'order' } } }],
    ['operators mixed with fields', { body: { person: { $exist: true, age: 12 } } }],
    ['an operator without a field', { body: { $exist: true } }],
  ];
  it.each(broken)('a broken filter (%s) matches nothing', (_name, filter) => {
    expect(matchesFilter(filter as SubscriptionFilter, event)).toBe(false);
  });

  it('a broken $or branch does not match, the others still can', () => {
    const filter = { body: { $or: [{ 'person.age': { $gt: {} } }, { event_type: 'order.created' }] } };
    expect(matchesFilter(filter, event)).toBe(true);
  });

  it('survives hostile documents', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const throwing = Object.defineProperty({}, 'a', {
      enumerable: true,
      get() {
        throw new Error('boom');
      },
    });
    const filter = { body: { 'self.self.a': 1, self: { $neq: { a: 1 } } } };
    expect(matchesFilter(filter, { body: cyclic, headers: {} })).toBe(true);
    expect(matchesFilter({ body: { a: 1 } }, { body: throwing, headers: {} })).toBe(false);
    expect(matchesFilter({ headers: { a: '1' } }, { body: {}, headers: undefined } as never)).toBe(false);
    expect(matchesFilter({ body: { a: 1 } }, { body: undefined, headers: {} })).toBe(false);
    expect(matchesFilter({ body: { 'a.b': { $exist: false } } }, { body: [[[]]], headers: {} })).toBe(true);
  });

  // Patterns that take a backtracking engine exponential time run in linear time on RE2, with
  // the same answer JavaScript would give (eventually).
  it.each([
    ['^(a+)+$', `${'a'.repeat(40)}!`, false],
    ['(a|a)*(a|a)*(a|a)*b', 'a'.repeat(200), false],
    ['.*.*.*.*.*=', 'a'.repeat(200), false],
    ['.*.*.*.*.*=', `${'a'.repeat(200)}=`, true],
    ['^(\\w+\\s?)*$', `${'word '.repeat(40)}!`, false],
    ['(x+x+)+y', 'x'.repeat(5000), false],
  ])('runs %s over a hostile subject at once', (pattern, subject, expected) => {
    const started = performance.now();
    expect(matchesFilter({ body: { s: { $regex: pattern } } }, { body: { s: subject }, headers: {} })).toBe(expected);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('searches the first 64 KiB of each string', () => {
    const late = { body: { s: { $regex: 'needle' } } };
    expect(matchesFilter(late, { body: { s: `${'x'.repeat(REGEX_SUBJECT_CHARS)}needle` }, headers: {} })).toBe(false);
    expect(matchesFilter(late, { body: { s: `${'x'.repeat(60_000)}needle` }, headers: {} })).toBe(true);
  });

  it('charges patterns their RE2 program size times the text they read, and an evaluation over its budget does not match', () => {
    const size = RE2JS.compile('needle').programSize();
    const length = 50_000;
    // Just enough strings to spend the budget: the last one holds the needle and is never read.
    const fit = Math.floor(WORK_BUDGET / (size * (length + 1)));
    const strings = Array.from({ length: fit + 1 }, (_, i) => `${'x'.repeat(length)}${i === fit ? 'needle' : ''}`.slice(0, length));
    strings[fit] = `${'x'.repeat(length - 6)}needle`;
    const filter = { body: { 'a.$': { $regex: 'needle' } } };
    expect(matchesFilter(filter, { body: { a: strings }, headers: {} })).toBe(false);
    expect(matchesFilter(filter, { body: { a: strings.slice(1) }, headers: {} })).toBe(true);
    // The budget is per evaluation: the next event starts afresh.
    expect(matchesFilter(filter, { body: { a: ['needle'] }, headers: {} })).toBe(true);
  });

  // A linear engine is still slow in the product of pattern and text: these took seconds each
  // (a DFA that thrashes, 3,000 instructions over 64 KiB; 400 paths through 100,000 items).
  const abc = Array.from({ length: 65_535 }, (_, i) => ((i * 7919) % 13 < 6 ? 'a' : 'b')).join('') + 'c';
  const items = Array.from({ length: 100_000 }, (_, i) => ({ x: i }));
  it.each<[string, SubscriptionFilter, unknown]>([
    ['a pattern whose DFA thrashes', { body: { s: { $regex: 'a[ab]{900}c' } } }, { s: abc }],
    ['three large alternatives', { body: { s: { $regex: '\\pL{300}!|\\pN{300}!|\\w{300}!' } } }, { s: `${'a'.repeat(65_535)}!` }],
    ['many patterns, each under the limit', { body: { $or: Array.from({ length: 40 }, (_, i) => ({ s: { $regex: `a[ab]{${200 + i}}c` } })) } }, { s: abc }],
    ['400 paths through a large array', { body: { $or: Array.from({ length: 400 }, (_, i) => ({ 'items.x': `n${i}` })) } }, { items }],
    ['$in of objects over a large array', { body: { $or: Array.from({ length: 100 }, (_, i) => ({ items: { $in: [{ x: -i - 1 }, { x: -i - 2 }] } })) } }, { items }],
  ])('bounds the time of %s, which then does not match', (_name, filter, doc) => {
    expect(checkFilter(filter)).toEqual([]);
    // This thread's CPU time, not the wall clock: what the evaluation holds the event loop for on
    // a core of its own, whatever else the machine runs meanwhile (test files run side by side).
    const started = process.threadCpuUsage();
    expect(matchesFilter(filter, { body: doc, headers: {} })).toBe(false);
    const spent = process.threadCpuUsage(started);
    expect((spent.user + spent.system) / 1000).toBeLessThan(MAX_LOOP_BLOCK_MS);
  });

  it('still matches what fits its budget in a large document', () => {
    expect(matchesFilter({ body: { 'items.x': 49_999 } }, { body: { items: items.slice(0, 50_000) }, headers: {} })).toBe(true);
    expect(matchesFilter({ body: { s: { $regex: 'a[ab]{20}c$' } } }, { body: { s: abc.slice(-5000) }, headers: {} })).toBe(true);
  });

  it("keeps Go's syntax, as Convoy's filters use it", () => {
    const doc = { body: { s: 'Order-42 PAID' }, headers: {} };
    expect(matchesFilter({ body: { s: { $regex: '(?i)order-(?P<n>\\d+) paid' } } }, doc)).toBe(true);
    expect(matchesFilter({ body: { s: { $regex: 'order' } } }, doc)).toBe(false);
    expect(matchesFilter({ body: { s: { $regex: '\\pL+-\\d{2}\\b' } } }, doc)).toBe(true);
  });

  it('compiles a filter once and reuses it for an equal filter read again from the database', () => {
    const stored = { body: { s: { $regex: '^x' } } };
    // Each batch reloads its subscriptions, and pg hands out new, structurally equal objects.
    const reloaded = JSON.parse(JSON.stringify(stored)) as typeof stored;
    expect(reloaded).not.toBe(stored);
    expect(compiledFilter(reloaded)).toBe(compiledFilter(stored));
    expect(compiledFilter(structuredClone(stored))).toBe(compiledFilter(stored));
    const event = (s: string) => ({ body: { s }, headers: {} });
    expect(matchesFilter(reloaded, event('xy'))).toBe(true);
    // A different filter is a different entry.
    const other = { body: { s: { $regex: '^y' } } };
    expect(compiledFilter(other)).not.toBe(compiledFilter(stored));
    expect(matchesFilter(other, event('xy'))).toBe(false);
  });

  it('keeps a bounded number of compiled filters, dropping the least recently used', () => {
    const used = compiledFilter({ body: { kept: 1 } });
    const unused = compiledFilter({ body: { dropped: 1 } });
    for (let i = 0; i < 1000; i++) {
      compiledFilter({ body: { n: i } });
      if (i % 100 === 0) compiledFilter({ body: { kept: 1 } }); // recently used, so kept
    }
    expect(compiledFilter({ body: { kept: 1 } })).toBe(used);
    expect(compiledFilter({ body: { dropped: 1 } })).not.toBe(unused); // compiled anew
    expect(matchesFilter({ body: { dropped: 1 } }, { body: { dropped: 1 }, headers: {} })).toBe(true);
  });
});

const nest = (levels: number): unknown => (levels === 0 ? 1 : { a: nest(levels - 1) });

describe('checkFilter', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['undefined', undefined],
    ['no parts', {}],
    ['null parts', { body: null, headers: null }],
    ['Convoy $and/$or example', { body: { $and: [{ age: { $gte: 10 } }, { $or: [{ type: 'weekly' }, { cities: 'lagos' }] }] } }],
    ['every operator', {
      body: {
        a: { $eq: { x: [1, null, true] } },
        b: { $neq: 'x' },
        c: { $gt: 1, $lt: 'z' },
        d: { $gte: -1.5, $lte: 2 },
        e: { $in: [1, 'a', null, { k: 1 }] },
        f: { $nin: [] },
        g: { $exist: false },
        h: { $regex: '^es_[a-zA-Z]+$' },
      },
    }],
    ['positional paths', { body: { '$.venues.$.lagos': 'lekki', 'items.0.sku': 'x' } }],
    ['headers', { headers: { 'X-Source': 'billing', 'x-tag': ['a', 'b'], 'x-n': { $gt: '5', $in: ['a'], $exist: true } } }],
    ['RE2 flags and named groups', { body: { a: { $regex: '(?is)^(?P<x>a.b)$' } } }],
    ["Convoy's URL pattern", {
      body: {
        url: {
          $regex:
            '^(?P<scheme>[^:\\/?#]+):(?:\\/\\/)?(?:(?:(?P<login>[^:]+)(?::(?P<password>[^@]+)?)?@)?(?P<host>[^@\\/?#:]*)(?::(?P<port>\\d+)?)?)?(?P<path>[^?#]*)(?:\\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?',
        },
      },
    }],
    ['repeated group of fixed size', { body: { a: { $regex: '^(\\d{3})+$' } } }],
    ['repeated alternation', { body: { a: { $regex: '^(ab|cd)+$' } } }],
    ['optional group holding a quantifier', { body: { a: { $regex: '(?:x+)?y' } } }],
    ['quantifier inside a class is not a quantifier', { body: { a: { $regex: '([+*])+' } } }],
    // A backtracking engine's worst cases are ordinary patterns for RE2, so they are accepted.
    ['nested quantifiers', { body: { a: { $regex: '^(a+)+$' } } }],
    ['overlapping alternatives', { body: { a: { $regex: '(a|a)*(a|a)*b' } } }],
    ['a repeated group of a variable quantifier', { body: { a: { $regex: '(.*,){9}' } } }],
    ['16 levels deep', { body: nest(16) }],
    ['1000 entries', { body: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 'v'])) }],
  ])('accepts %s', (_name, filter) => {
    expect(checkFilter(filter)).toEqual([]);
  });

  const OPS = '$eq, $neq, $gt, $gte, $lt, $lte, $in, $nin, $exist, $regex, $and, $or';
  const HEADERS = 'header values are strings; compare with a string';

  it.each<[string, unknown, string[]]>([
    ['a string', 'x', ['filter: must be an object with optional "body" and "headers"']],
    ['an array', [], ['filter: must be an object with optional "body" and "headers"']],
    ['an unknown part', { query: {} }, ['filter.query: unknown key; expected "body" or "headers"']],
    ['a non-object body', { body: [] }, ['filter.body: must be an object']],
    ['an unknown operator', { body: { a: { $gtt: 1 } } }, [`filter.body.a.$gtt: unknown operator; expected one of ${OPS}`]],
    ['an unknown logical operator', { body: { $nor: [] } }, [`filter.body.$nor: unknown operator; expected one of ${OPS}`]],
    ['an operator without a field', { body: { $gt: 5 } }, ['filter.body.$gt: an operator needs a field; write {"field": {"$gt": …}}']],
    ['$in not an array', { body: { a: { $in: 'x' } } }, ['filter.body.a.$in: must be an array']],
    ['$nin not an array', { body: { a: { $nin: { x: 1 } } } }, ['filter.body.a.$nin: must be an array']],
    ['an empty $or', { body: { $or: [] } }, ['filter.body.$or: must be a non-empty array of objects']],
    ['$and not an array', { body: { $and: { a: 1 } } }, ['filter.body.$and: must be a non-empty array of objects']],
    ['$or holding a number', { body: { $or: [{ a: 1 }, 1] } }, ['filter.body.$or[1]: must be an object']],
    [
      'a bad operand deep in $or',
      { body: { $or: [{ a: 1 }, { age: { $gt: true } }] } },
      ['filter.body.$or[1].age.$gt: must be a number or a string'],
    ],
    ['$lte with null', { body: { a: { $lte: null } } }, ['filter.body.a.$lte: must be a number or a string']],
    ['$exist not a boolean', { body: { a: { $exist: 'yes' } } }, ['filter.body.a.$exist: must be true or false']],
    ['$regex not a string', { body: { a: { $regex: 1 } } }, ['filter.body.a.$regex: must be a string']],
    ['$regex too long', { body: { a: { $regex: 'a'.repeat(513) } } }, ['filter.body.a.$regex: must be at most 512 characters']],
    [
      '$regex that does not compile',
      { body: { a: { $regex: '(' } } },
      ['filter.body.a.$regex: is not a pattern RE2 accepts (no backreferences or lookaround): missing closing ): `(`'],
    ],
    [
      '$regex with lookbehind',
      { body: { a: { $regex: '(?<=a)b' } } },
      ['filter.body.a.$regex: is not a pattern RE2 accepts (no backreferences or lookaround): invalid named capture: `(?<=a)b`'],
    ],
    ['$regex with a repeat count RE2 refuses', { body: { a: { $regex: 'a{1001}' } } }, ['filter.body.a.$regex: is not a pattern RE2 accepts (no backreferences or lookaround): invalid repeat count: `{1001}`']],
    ['$regex with a backreference', { body: { a: { $regex: '(a)\\1' } } }, ['filter.body.a.$regex: is not a pattern RE2 accepts (no backreferences or lookaround): invalid escape sequence: `\\1`']],
    [
      '$regex that compiles to too many instructions',
      { body: { a: { $regex: '[a-z]{1000}' } } },
      ['filter.body.a.$regex: is too large: RE2 compiles it to 1002 instructions, at most 1000 (use smaller counted repetitions such as {100})'],
    ],
    [
      'patterns that compile to too many instructions together',
      { body: { $or: Array.from({ length: 12 }, (_, i) => ({ [`a${i}`]: { $regex: '[a-z]{900}' } })) } },
      [`filter.body.$or[11].a11.$regex: is one pattern too many: a filter's patterns may compile to at most ${MAX_FILTER_PROGRAM} RE2 instructions in all`],
    ],
    [
      'operators mixed with a field',
      { body: { a: { $gt: 1, b: 2 } } },
      ['filter.body.a.b: field names and $and/$or cannot be mixed with operators'],
    ],
    [
      'operators mixed with $or',
      { body: { a: { $gt: 1, $or: [{ b: 1 }] } } },
      ['filter.body.a.$or: field names and $and/$or cannot be mixed with operators'],
    ],
    ['an empty path segment', { body: { 'a..b': 1 } }, ['filter.body.a..b: empty path segment']],
    [
      'an operator in a dotted path',
      { body: { 'age.$gt': 5 } },
      ['filter.body.age.$gt: path segment "$gt" looks like an operator; write {"field": {"$gt": …}}'],
    ],
    ['a non-finite number', { body: { a: Infinity } }, ['filter.body.a: must be a finite number']],
    ['a non-JSON value', { body: { a: { $eq: () => 1 } } }, ['filter.body.a.$eq: must be a JSON value']],
    ['a number for a header', { headers: { 'x-count': 5 } }, [`filter.headers.x-count: ${HEADERS}`]],
    ['$gt a number on a header', { headers: { 'x-count': { $gt: 5 } } }, [`filter.headers.x-count.$gt: ${HEADERS}`]],
    ['a nested object under a header', { headers: { 'x-a': { b: 'c' } } }, [`filter.headers.x-a: ${HEADERS}`]],
    ['$in with a number on a header', { headers: { 'x-a': { $in: ['a', 1] } } }, [`filter.headers.x-a.$in[1]: ${HEADERS}`]],
    ['an empty header name', { headers: { '': 'x' } }, ['filter.headers.: empty header name']],
    [
      '17 levels deep',
      { body: nest(17) },
      [`filter.body${'.a'.repeat(16)}: nested deeper than 16 levels`],
    ],
    [
      '17 levels deep through $or and an operator',
      { body: { $or: [{ a: { $eq: nest(13) } }] } },
      [`filter.body.$or[0].a.$eq${'.a'.repeat(12)}: nested deeper than 16 levels`],
    ],
    [
      '1001 entries',
      { body: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, 'v'])) },
      ['filter: more than 1000 keys and array elements in all'],
    ],
    [
      '1001 entries across body and headers',
      {
        body: { a: { $in: Array.from({ length: 600 }, (_, i) => i) } },
        headers: { b: { $in: Array.from({ length: 397 }, (_, i) => `${i}`) } },
      },
      ['filter: more than 1000 keys and array elements in all'],
    ],
    [
      'several problems, in order',
      { body: { a: { $in: 1 }, b: { $exist: 1 } }, headers: { c: true }, extra: 1 },
      [
        'filter.body.a.$in: must be an array',
        'filter.body.b.$exist: must be true or false',
        `filter.headers.c: ${HEADERS}`,
        'filter.extra: unknown key; expected "body" or "headers"',
      ],
    ],
  ])('rejects %s', (_name, filter, errors) => {
    expect(checkFilter(filter).map((i) => `${i.path}: ${i.message}`)).toEqual(errors);
  });

  it('puts paths under the path it is given', () => {
    expect(checkFilter({ body: { a: { $in: 1 } } }, 'subscriptions[2].filter_config.filter')).toEqual([
      { path: 'subscriptions[2].filter_config.filter.body.a.$in', message: 'must be an array' },
    ]);
  });

  it('keeps the path and the message apart, even for a key holding ": "', () => {
    expect(checkFilter({ headers: { 'x-a: b': 1 } })).toEqual([{ path: 'filter.headers.x-a: b', message: HEADERS }]);
  });
});
