/**
 * Runs Wharf alone in its own process for bench/e2e.ts: `node bench/lib/wharf-child.ts CONFIG ROLE`.
 * Started with fork(), it reports `{ type: 'ready', url }` over IPC once the API listens, and
 * stops gracefully (then exits, so a --cpu-prof profile is written) on `{ type: 'stop' }`,
 * SIGTERM, SIGINT or a lost parent.
 */
import pino from 'pino';
import { createApp, type Role } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { logProcessWarnings } from '../../src/logger.ts';

const [file, role = 'all'] = process.argv.slice(2);
if (!file || !process.send) {
  console.error('usage: fork(bench/lib/wharf-child.ts, [CONFIG_FILE, ROLE]) with an IPC channel');
  process.exit(2);
}

const { config } = loadConfig({ file, env: {} });
const logger = pino({ level: config.log.level });
// As src/main.ts: Node's warnings go to the log (silent unless asked), not loose onto the bench's output.
logProcessWarnings(logger);
const app = createApp({ config, configFile: file, logger, role: role as Role });

let stopping = false;
const stop = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => {
    console.error('wharf-child: stop took over 60 s; exiting');
    process.exit(1);
  }, 60_000);
  timer.unref();
  try {
    await app.stop();
  } catch (err) {
    console.error('wharf-child: stop failed', err);
    code = 1;
  }
  process.exit(code);
};

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'stop') void stop(0);
});
process.on('disconnect', () => void stop(1));
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));

try {
  await app.start();
  process.send({ type: 'ready', url: app.url, pid: process.pid });
} catch (err) {
  console.error('wharf-child: start failed', err);
  await stop(1);
}
