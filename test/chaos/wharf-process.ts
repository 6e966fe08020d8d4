/**
 * Wharf as a user runs it (`node src/main.ts start --config …`, test/harness/processes.ts), in a
 * child process the chaos test kills with SIGKILL and starts again on the same config file, port
 * and database.
 */
import { createWriteStream } from 'node:fs';
import { startWharfProcess, type WharfProcess as Child } from '../harness/processes.ts';

export interface WharfProcess {
  /** Starts a new process; resolves once it listens. */
  start(): Promise<void>;
  /** SIGKILL, as an OOM killer or a lost machine would; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful stop); resolves once the process is gone, and closes the log. */
  stop(): Promise<void>;
}

/** `logFile` collects every process's stdout and stderr, one after the other, for a failed run's reader. */
export function wharfProcess(configFile: string, logFile: string): WharfProcess {
  const log = createWriteStream(logFile, { flags: 'a' });
  let child: Child | null = null;
  let starts = 0;

  return {
    async start() {
      if (child) throw new Error('wharf is already running');
      starts += 1;
      log.write(`\n===== start ${starts} at ${new Date().toISOString()} =====\n`);
      try {
        child = await startWharfProcess(configFile, { output: (text) => log.write(text) });
      } catch (err) {
        // The message quotes the whole log; the file has it already.
        throw new Error(`wharf did not start (log: ${logFile})`, { cause: err });
      }
    },
    async kill() {
      await child?.kill();
      child = null;
    },
    async stop() {
      await child?.stop();
      child = null;
      await new Promise<void>((r) => log.end(r));
    },
  };
}
