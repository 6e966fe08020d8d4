/**
 * CPU a call of the crypto on the delivery path: unsealing an endpoint secret (done for each
 * dispatch batch and endpoint) and signing a body, through Wharf's own functions, beside Node's
 * calls with a Buffer key for reference (the slow path Wharf avoids on Node 24: src/core/hmac.ts,
 * src/store/crypto.ts).
 *
 *   node bench/crypto.ts [--calls 100000]
 */
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { hmac } from '../src/core/hmac.ts';
import { createSecretBox } from '../src/store/crypto.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '100000' } } });
const calls = Number(values.calls);

const key = randomBytes(32);
const box = createSecretBox(key);
const secret = randomBytes(32).toString('base64url');
const sealed = box.encrypt(secret);
const raw = Buffer.from(sealed.slice('v1:'.length), 'base64');
const body = Buffer.from(JSON.stringify({ data: 'x'.repeat(256) }));
const signingKey = randomBytes(24);

const cases: Record<string, () => unknown> = {
  'unseal a secret (SecretBox.decrypt)': () => box.decrypt(sealed),
  '  reference: createDecipheriv, Buffer key': () => {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  },
  'sign, string secret (convoy scheme)': () => hmac('SHA256', secret, body, 'hex'),
  'sign, Buffer key (standard-webhooks)': () => hmac('SHA256', signingKey, body, 'base64'),
  '  reference: createHmac, Buffer key': () => createHmac('sha256', signingKey).update(body).digest('base64'),
};

for (const [name, call] of Object.entries(cases)) {
  if (call() !== cases[name]!()) throw new Error(`${name}: two calls disagree`);
  for (let i = 0; i < Math.min(calls, 20_000); i++) call(); // warm-up
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) {
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) call();
    const cpu = process.cpuUsage(cpu0);
    rounds.push((cpu.user + cpu.system) / calls);
  }
  console.log(`${name.padEnd(42)} ${Math.min(...rounds).toFixed(2)} µs a call (best of 3 rounds of ${calls})`);
}
