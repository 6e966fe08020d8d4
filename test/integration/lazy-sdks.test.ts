/**
 * Broker SDKs and the embedded database are loaded only when configured: each costs memory at rest
 * (the Pub/Sub client with gRPC about 50 MB of RSS, the others 5–25 MB), which a Wharf with a
 * database URL and no broker source should not pay. Checked in a real `src/main.ts start` process
 * that records every package it resolves.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';
import { AMQP_URL } from '../harness/brokers/rabbitmq.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const SDKS = ['kafkajs', 'amqplib', '@aws-sdk/client-sqs', '@google-cloud/pubsub', '@electric-sql/pglite'];

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('postgres');
  dir = await mkdtemp(join(tmpdir(), 'wharf-lazy-'));
});
afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Starts Wharf with these sources, waits until it listens, stops it; the packages it resolved. */
async function packagesLoaded(name: string, sources: unknown[]): Promise<string[]> {
  const config = join(dir, `${name}.yaml`);
  const record = join(dir, `${name}.imports`);
  await writeFile(
    config,
    stringify({
      server: { host: '127.0.0.1', port: 0 },
      database: { url: db.url },
      data_dir: join(dir, `${name}-data`),
      encryption_key: '5b'.repeat(32),
      log: { level: 'info' },
      projects: [{ id: 'lazy', name: 'Lazy', api_keys: ['lazy_key_0123456789abcdef0123456789'], sources }],
    }),
  );
  const p = spawn(process.execPath, ['--import', './test/fixtures/record-imports.ts', 'src/main.ts', 'start', '--config', config], {
    cwd: ROOT,
    env: { ...process.env, WHARF_RECORD_IMPORTS: record },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error('wharf did not start within 30 s')), 30_000);
    void exited.then((code) => fail(new Error(`wharf exited with ${code} while starting`)));
    createInterface({ input: p.stdout! }).on('line', (line) => {
      if (line.includes('"wharf listening"')) {
        clearTimeout(timer);
        done();
      }
    });
  });
  p.kill('SIGTERM');
  expect(await exited).toBe(0);
  return (await readFile(record, 'utf8')).split('\n');
}

describe('lazy loading', () => {
  it('a Wharf with a database URL and no broker source loads no broker SDK and no PGlite', async () => {
    const loaded = await packagesLoaded('none', []);
    // The recorder works: what every start needs is there.
    expect(loaded).toEqual(expect.arrayContaining(['fastify', 'pg', 'pg-boss', 'undici']));
    expect(loaded.filter((p) => SDKS.includes(p))).toEqual([]);
  });

  it('a RabbitMQ source loads amqplib and no other SDK', async () => {
    const loaded = await packagesLoaded('rabbitmq', [
      { name: 'orders', type: 'rabbitmq', rabbitmq: { url: AMQP_URL, queue: `wharf.lazy.${process.pid}` } },
    ]);
    expect(loaded.filter((p) => SDKS.includes(p))).toEqual(['amqplib']);
  });
});
