/**
 * What the array parameters of the busiest statements cost Wharf's process to write, per webhook:
 * the recorder's update of a batch of deliveries (RECORD_OUTCOMES_SQL, each first attempt folded
 * into its delivery's row, as in the REST bench), ingest's insert of a batch of events and the
 * breaker's statement for the same batch. Three ways, in rounds that take turns so a drifting
 * machine moves them alike:
 *
 * - `pg`: plain JS arrays, as node-postgres writes them (pg's `prepareValue`: an array literal,
 *   every element through two regex replaces and quoted, a Date field by field in the local zone),
 *   as Wharf passed them until the afternoon of 2026-12-05;
 * - `ids`: ids and numbers as literals, the attempts' texts packed in one bytea
 *   (src/store/params.ts as it was from then), the text arrays and times still plain;
 * - `wharf`: today's, the text arrays and the breaker's times through textArray and timestampArray
 *   too (then the same `prepareValue`, which passes a string or Buffer through).
 *
 * Each parameter is then written into a buffer as pg-protocol's serializer writes it.
 *
 * The batch is the REST bench's (`npm run bench -- --mode max`): 37 deliveries a recorded batch on
 * average, each with its stored request headers and their signature, the bench sink's answer
 * headers and its body `ok`; and the ingest arrays of as many events (ingest's batches hold 18 on
 * average: two of them). No database: the parameters only.
 *
 *   node bench/array-params.ts --rounds 6 --batches 20000
 */
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { uuidv7 } from '../src/core/ids.ts';
import { floatArray, intArray, packTexts, textArray, timestampArray, uuidArray } from '../src/store/params.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' }, batches: { type: 'string', default: '20000' } } });
const rounds = Number(values.rounds);
const batches = Number(values.batches);
const prepareValue = (createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (v: unknown) => unknown }).prepareValue;

const DELIVERIES = 37;
const url = 'http://127.0.0.1:40123/hook';
const outcomes = Array.from({ length: DELIVERIES }, () => ({
  id: uuidv7(),
  first: uuidv7(),
  requestHeaders: JSON.stringify({
    'user-agent': 'Wharf/0.1.0',
    'content-type': 'application/json',
    'X-Convoy-Signature': `t=${Math.floor(Date.now() / 1000)},v1=${randomBytes(32).toString('hex')}`,
  }),
  responseHeaders: JSON.stringify({ date: new Date().toUTCString(), connection: 'keep-alive', 'keep-alive': 'timeout=5', 'content-type': 'text/plain', 'content-length': '2' }),
  body: 'ok',
  latency: 3,
}));
// The ingest arrays of as many events (one delivery each, as in the bench).
const events = Array.from({ length: DELIVERIES }, (_, i) => ({ id: uuidv7(), delivery: uuidv7(), at: i * 300 + 1, len: 300 }));
const handoffs = [uuidv7()];
const scratch = Buffer.alloc(1 << 20);

// The text arrays: ingest's insert (events and their deliveries), the recorder's statuses, errors and
// projects, the breaker's statement (projects, endpoints, kinds, times, windows).
const project = 'proj_bench';
const endpoint = '01937f2c-0000-7000-8000-00000000e001';
const texts = {
  ingest: [
    events.map(() => project), events.map(() => null), events.map(() => 'invoice.paid'), events.map(() => 'single'), events.map(() => endpoint),
    events.map(() => null), events.map(() => null), events.map(() => '{}'), events.map(() => '{}'),
    events.map(() => project), events.map(() => endpoint), events.map(() => 'invoice.paid'), events.map(() => 'scheduled'), events.map(() => null),
  ],
  recorder: [outcomes.map(() => 'success'), outcomes.map(() => null), outcomes.map(() => null), outcomes.map(() => project)],
  breaker: [outcomes.map(() => project), outcomes.map(() => endpoint), outcomes.map(() => 'success')],
};
const times = outcomes.map(() => new Date());
const windows = outcomes.map(() => 60);

/**
 * The recorder's, ingest's and the breaker's array parameters, built one of three ways and written
 * as pg writes them: `pg`, every one a plain array; `ids`, the ids, numbers and attempts' texts as
 * params.ts wrote them from the afternoon of 2026-12-05 (the text arrays still plain); `wharf`,
 * today's, the text arrays and times through textArray and timestampArray too.
 */
function write(way: 'pg' | 'ids' | 'wharf'): number {
  let n = 0;
  // As pg-protocol's serializer then writes it: a text's UTF-8 bytes into the message, a Buffer copied.
  const out = (v: unknown): void => {
    const w = prepareValue(v);
    n += typeof w === 'string' ? scratch.write(w, 0, 'utf8') : (w as Buffer).copy(scratch, 0);
  };
  const textParams = way === 'wharf'
    ? [...texts.ingest, ...texts.recorder, ...texts.breaker].map((t) => textArray(t))
    : [...texts.ingest, ...texts.recorder, ...texts.breaker];
  const breakerRest = way === 'wharf' ? [timestampArray(times), intArray(windows)] : [times, windows];
  if (way === 'pg') {
    for (const p of [
      outcomes.map((o) => o.id), outcomes.map(() => 1), outcomes.map(() => 200), outcomes.map(() => null), outcomes.map(() => 0),
      outcomes.map((o) => o.first), outcomes.map((o) => o.latency), outcomes.map(() => url), outcomes.map((o) => o.requestHeaders),
      outcomes.map((o) => o.responseHeaders), outcomes.map((o) => o.body), handoffs,
      events.map((e) => e.id), events.map((e) => e.delivery), events.map((e) => e.id), events.map((e) => e.delivery), events.map((e) => e.at), events.map((e) => e.len),
      ...textParams, ...breakerRest,
    ]) out(p);
  } else {
    const attemptTexts: string[] = [];
    for (const o of outcomes) attemptTexts.push(url, o.requestHeaders, o.responseHeaders, o.body);
    const packed = packTexts(attemptTexts);
    const nth = (all: readonly (number | null)[], k: number) => intArray(outcomes.map((_, i) => all[4 * i + k] ?? null));
    for (const p of [
      uuidArray(outcomes.map((o) => o.id)), intArray(outcomes.map(() => 1)), intArray(outcomes.map(() => 200)), floatArray(outcomes.map(() => null)), intArray(outcomes.map(() => 0)),
      uuidArray(outcomes.map((o) => o.first)), intArray(outcomes.map((o) => o.latency)), packed.bytes,
      ...[0, 1, 2, 3].flatMap((k) => [nth(packed.starts, k), nth(packed.lengths, k)]), uuidArray(handoffs),
      uuidArray(events.map((e) => e.id)), uuidArray(events.map((e) => e.delivery)), uuidArray(events.map((e) => e.id)), uuidArray(events.map((e) => e.delivery)),
      intArray(events.map((e) => e.at)), intArray(events.map((e) => e.len)),
      ...textParams, ...breakerRest,
    ]) out(p);
  }
  return n;
}

/** µs of this process's CPU a webhook, over `batches` batches. */
function round(way: 'pg' | 'ids' | 'wharf'): { us: number; bytes: number } {
  let bytes = 0;
  const before = process.cpuUsage();
  for (let i = 0; i < batches; i++) bytes = write(way);
  const used = process.cpuUsage(before);
  return { us: (used.user + used.system) / (batches * DELIVERIES), bytes };
}

const ways = ['pg', 'ids', 'wharf'] as const;
const results: Record<(typeof ways)[number], number[]> = { pg: [], ids: [], wharf: [] };
let sizes: Record<string, number> = {};
for (const way of ways) round(way); // warm up each
for (let r = 0; r < rounds; r++) {
  for (const way of r % 2 === 0 ? ways : [...ways].reverse()) {
    const { us, bytes } = round(way);
    results[way].push(us);
    sizes = { ...sizes, [way]: bytes };
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`the hot statements' array parameters, ${batches} batches of ${DELIVERIES} deliveries a round, ${rounds} rounds each:`);
for (const way of ways) {
  console.log(`  ${way.padEnd(6)} median ${median(results[way]).toFixed(2)} µs a webhook  (rounds: ${results[way].map((x) => x.toFixed(2)).join(', ')}; ${sizes[way]} bytes written a batch)`);
}
