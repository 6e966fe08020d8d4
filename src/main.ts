#!/usr/bin/env -S node --max-semi-space-size=16 --heap-growing-percent=50
import { parseArgs } from 'node:util';
import { createApp, type Role } from './app.ts';
import { loadConfig } from './config/load.ts';
import { ConfigError } from './core/errors.ts';
import { VERSION } from './core/version.ts';
import { createLogger, logProcessWarnings } from './logger.ts';
import { migrate } from './store/migrate.ts';
import { createPool } from './store/pool.ts';

const USAGE = `usage: wharf <start|migrate|check-config> [--config FILE] [--role all|api|ingest|dispatch]

  start          run Wharf (default)
  migrate        apply database migrations and exit
  check-config   validate the config file and exit
  --config FILE  config file (default: $WHARF_CONFIG or config/wharf.yaml)
  --role ROLE    all (default), api (HTTP only), ingest (broker sources only)
                 or dispatch (deliveries only)`;


async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        role: { type: 'string', default: 'all' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = args.positionals[0] ?? 'start';
  const role = args.values.role as Role;
  if (!['start', 'migrate', 'check-config'].includes(command) || !['all', 'api', 'ingest', 'dispatch'].includes(role)) {
    console.error(USAGE);
    return 2;
  }

  let loaded;
  try {
    loaded = loadConfig({ file: args.values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`invalid config: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const { config, file } = loaded;

  if (command === 'check-config') {
    const endpoints = config.projects.reduce((n, p) => n + p.endpoints.length, 0);
    const sources = config.projects.reduce((n, p) => n + p.sources.length, 0);
    process.stdout.write(`${file}: OK (${config.projects.length} project(s), ${endpoints} endpoint(s), ${sources} source(s))\n`);
    return 0;
  }

  const logger = createLogger(config.log.level);
  logProcessWarnings(logger);

  if (command === 'migrate') {
    const embedded = config.database.url ? null : await (await import('./store/embedded.ts')).startEmbeddedPostgres({ dataDir: config.data_dir });
    const pool = createPool(config.database.url || embedded!.url, { max: 2 });
    try {
      const { applied } = await migrate(pool);
      logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
    } finally {
      await pool.end();
      await embedded?.stop();
    }
    return 0;
  }

  const app = createApp({ config, configFile: file, logger, role });
  let signals = 0;
  const done = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      logger.info({ signal }, 'shutting down: finishing in-flight deliveries (signal again to force)');
      app.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // SIGHUP re-reads the config file and applies its projects, endpoints and sources (sources
  // start, restart or stop as needed); other settings need a restart. A bad file changes nothing.
  process.on('SIGHUP', () => {
    try {
      const next = loadConfig({ file: args.values.config });
      app.reload(next.config).then(
        ({ generatedKeys }) => {
          printKeys(generatedKeys);
          logger.info({ file: next.file }, 'config reloaded');
        },
        (err: unknown) => logger.error({ err }, 'config reload failed; the previous config stays in effect'),
      );
    } catch (err) {
      logger.error({ error: (err as Error).message }, 'config reload refused; the previous config stays in effect');
    }
  });

  try {
    await app.start();
  } catch (err) {
    if (err instanceof ConfigError) console.error(`invalid config: ${err.message}`);
    else logger.fatal({ err }, 'wharf failed to start');
    await app.stop().catch(() => undefined);
    return 1;
  }
  printKeys(app.generatedKeys);
  return done;
}

function printKeys(keys: { projectId: string; key: string }[]): void {
  for (const { projectId, key } of keys) {
    // Shown once, outside the JSON log stream; only its hash is stored.
    process.stdout.write(
      `\nGenerated API key for project "${projectId}" (shown once; set WHARF_API_KEY to choose your own):\n\n  ${key}\n\n`,
    );
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
