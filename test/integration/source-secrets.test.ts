/**
 * Credentials that a broker or SDK text quotes never leave the source manager: its connector's log
 * lines and health().lastError are scrubbed of the values at the module's `secretKeys`. The Kafka
 * connector (kafkajs, its own log lines included) reaches no broker here, and the topic is spelled
 * like the SASL password, so every error names it.
 */
import { LOOPBACK_EGRESS } from '../harness/egress.ts';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSourceManager, type SourceManager } from '../../src/sources/manager.ts';
import { parseSource } from '../../src/sources/settings.ts';
import { createSecretBox } from '../../src/store/crypto.ts';
import { saveSource } from '../../src/store/sources.ts';
import { migratedDatabase } from '../harness/db.ts';
import { until } from './connectors/support.ts';

describe('source manager: credentials in broker texts', () => {
  let pool: pg.Pool;
  let close: () => Promise<void>;
  let manager: SourceManager | null = null;
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const box = createSecretBox(randomBytes(32));

  beforeAll(async () => {
    ({ pool, close } = await migratedDatabase('postgres', 'wharf-test-source-secrets'));
  });
  afterAll(async () => {
    await manager?.stop();
    await close?.();
  });

  it('scrubs the SASL password from health().lastError and from every log line', async () => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const { source, issues } = parseSource({
      name: 'leaky',
      type: 'kafka',
      kafka: { brokers: ['127.0.0.1:1'], topic: password, consumer_group: 'g', sasl: { mechanism: 'plain', username: 'svc', password } },
    });
    expect(issues).toEqual([]);
    await saveSource(pool, box, 'p', source!, false);
    manager = createSourceManager({ pool, boss: {} as PgBoss, box, logger, limits: { maxJsonDepth: 128 }, egress: LOOPBACK_EGRESS }, { reloadIntervalMs: 60_000, stopTimeoutMs: 1_000 });
    await manager.start();

    const [status] = await until(() => manager!.status(), (s) => s[0]?.lastError != null, 'an error in status()', 15_000);
    // The connector's own text named the topic (the password): the manager took it out.
    expect(status!.lastError).toMatch(/^cannot consume \*\*\* from Kafka brokers 127\.0\.0\.1:1: /);
    await until(() => lines.join(''), (text) => text.includes('kafkajs'), 'a kafkajs log line', 15_000);
    await manager.stop();
    manager = null;

    const logged = lines.join('');
    expect(logged).toContain('cannot consume *** from Kafka brokers');
    expect(logged).not.toContain(password);
    expect(JSON.stringify(status)).not.toContain(password);
  });
});
