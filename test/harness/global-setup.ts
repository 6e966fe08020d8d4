/**
 * vitest globalSetup for the integration project: makes sure every real service the tests talk
 * to is up before any test file runs. One starter per service; each checks first and starts the
 * service only when it does not answer, so it is a no-op on machines where they run already.
 * A starter may return a teardown for what it started itself.
 */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createMigratedTemplate, POSTGRES_USERS, probePostgres } from './db.ts';
import { ensureDebianPackages } from './packages.ts';
import * as kafka from './brokers/kafka.ts';
import * as pubsub from './brokers/pubsub.ts';
import * as rabbitmq from './brokers/rabbitmq.ts';
import * as sqs from './brokers/sqs.ts';

type Teardown = () => Promise<void>;
type Starter = () => Promise<Teardown | void>;

const run = promisify(execFile);

async function startPostgres(): Promise<void> {
  const first = await probePostgres();
  if ('url' in first) {
    process.env.WHARF_TEST_PG_URL = first.url;
    return;
  }

  // Debian's cluster tools; the machines have one version under /etc/postgresql.
  const versions = await readdir('/etc/postgresql').catch(() => [] as string[]);
  if (versions.length === 0) {
    throw new Error(
      `Postgres does not answer on 127.0.0.1:5432 (${first.error.message}) ` +
        'and no cluster exists under /etc/postgresql to start',
    );
  }
  const version = versions.sort().at(-1)!;
  try {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start']);
  } catch (err) {
    // "already running" also lands here; the probe below decides.
    console.error(`pg_ctlcluster ${version} main start: ${(err as Error).message.trim()}`);
  }

  const deadline = Date.now() + 30_000;
  let last = first.error;
  while (Date.now() < deadline) {
    const probe = await probePostgres();
    if ('url' in probe) {
      process.env.WHARF_TEST_PG_URL = probe.url;
      return;
    }
    last = probe.error;
    await delay(500);
  }
  throw new Error(
    `Postgres ${version} did not answer on 127.0.0.1:5432 within 30 s after ` +
      `pg_ctlcluster start (last error: ${last.message}); users tried: ${POSTGRES_USERS.join(', ')}, database test`,
  );
}

/**
 * Each starter publishes where its service answers through a WHARF_TEST_* environment variable,
 * which the test workers inherit. Brokers start once per run; tests isolate themselves by using
 * their own topics, queues and subscriptions.
 */
const starters: Record<string, Starter> = {
  'debian packages': async () => ensureDebianPackages(),
  postgres: startPostgres,
  // Test files copy it instead of each migrating a database of its own.
  'template database': createMigratedTemplate,
  rabbitmq: rabbitmq.start,
  kafka: kafka.start,
  sqs: sqs.start,
  pubsub: pubsub.start,
};

export default async function setup(): Promise<Teardown> {
  const teardowns: Teardown[] = [];
  for (const [name, start] of Object.entries(starters)) {
    try {
      const teardown = await start();
      if (teardown) teardowns.push(teardown);
    } catch (err) {
      // Stop what did start before failing the run.
      for (const t of teardowns.reverse()) await t().catch(() => undefined);
      throw new Error(`test harness: ${name} is not available: ${(err as Error).message}`, { cause: err });
    }
  }
  return async () => {
    for (const t of teardowns.reverse()) await t();
  };
}
