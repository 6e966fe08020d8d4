/**
 * CPU of the answer to a new event (POST /events): the event as the API presents it, in Convoy's
 * envelope, as the text sent. Beside it, the way it was built before: the stored data text read
 * back (a depth scan and JSON.parse, as for a row from the database) and the whole answer
 * serialised, the tenant's payload with it. Now the data text readEnvelope wrote goes into the
 * answer as it is (envelopeWithJson, src/api/context.ts). Payloads of a few sizes: the e2e bench's
 * (256 bytes, one long string) and order-like objects of about 2 and 16 KB.
 *
 *   node bench/reply.ts [--calls 20000]
 */
import { parseArgs } from 'node:util';
import { envelopeWithJson, JSON_SLOT } from '../src/api/context.ts';
import { presentEvent, type EventRow } from '../src/api/events-routes.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '20000' } } });
const calls = Number(values.calls);

const item = (i: number) => ({ sku: `SKU-${i}-${'ab'.repeat(4)}`, name: `Item "${i}" — deluxe`, qty: i % 5, price: 19.99 + i, tags: ['a', 'b', `t${i}`] });
const order = (items: number) => ({
  id: 'ord_01HZX3', customer: { id: 'cus_9', email: 'someone@example.com', address: { line1: '1 Main St', city: 'Zürich', zip: '8001' } },
  items: Array.from({ length: items }, (_, i) => item(i)), total: 1234.5, currency: 'EUR', paid: true, notes: null,
});
const payloads: Record<string, unknown> = { 'e2e bench, 256 B': { seq: 1, pad: 'x'.repeat(196) }, 'order, ~2 KB': order(14), 'order, ~16 KB': order(115) };

for (const [name, value] of Object.entries(payloads)) {
  const data = JSON.stringify(value);
  const row: EventRow = {
    id: '0193a6b2-7c1e-7d2a-9f00-1234567890ab', project_id: 'default', source_id: null, event_type: 'order.created', message_type: 'single',
    endpoint_id: 'ep', owner_id: null, idempotency_key: null, custom_headers: {}, headers: {}, data, created_at: new Date(),
  };
  const extra = { duplicate: false, deliveries: 1 };
  const cases: Record<string, () => string> = {
    now: () => envelopeWithJson(201, 'Event created', { ...presentEvent(row, { data: JSON_SLOT }), ...extra }, data),
    before: () => JSON.stringify({ status: true, message: 'Event created', data: { ...presentEvent(row), ...extra } }),
  };
  if (cases.now!() !== cases.before!()) throw new Error(`${name}: the two answers differ`);
  const best: Record<string, number> = {};
  for (let r = 0; r < 5; r++) {
    for (const [k, call] of Object.entries(cases)) {
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < calls; i++) call();
      const cpu = process.cpuUsage(cpu0);
      best[k] = Math.min(best[k] ?? Infinity, (cpu.user + cpu.system) / calls);
    }
  }
  console.log(`${`${name} (${data.length} B)`.padEnd(28)} now ${best.now!.toFixed(2)} µs, before ${best.before!.toFixed(2)} µs an answer (best of 5 rounds of ${calls})`);
}
