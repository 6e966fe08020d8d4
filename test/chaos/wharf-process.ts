/**
 * Wharf as a user runs it (`node src/main.ts start --config …`), in a child process the chaos test
 * kills with SIGKILL and starts again on the same config file, port and database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '../..');

export interface WharfProcess {
  /** Starts a new process; resolves once it listens. */
  start(): Promise<void>;
  /** SIGKILL, as an OOM killer or a lost machine would; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful stop); resolves once the process is gone. */
  stop(): Promise<void>;
  /** Whether a process is up now. */
  readonly running: boolean;
  /** How many processes were started. */
  readonly starts: number;
}

/** `logFile` collects every process's stdout and stderr, one after the other, for a failed run's reader. */
export function wharfProcess(configFile: string, logFile: string): WharfProcess {
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  let proc: ChildProcess | null = null;
  let starts = 0;

  const gone = (p: ChildProcess): Promise<void> =>
    p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    if (!p) return;
    const exited = gone(p);
    p.kill(signal);
    await exited;
    proc = null;
  };

  return {
    async start() {
      if (proc) throw new Error('wharf is already running');
      starts += 1;
      log.write(`\n===== start ${starts} at ${new Date().toISOString()} =====\n`);
      const p = spawn(process.execPath, ['src/main.ts', 'start', '--config', configFile], {
        cwd: ROOT,
        env: { ...process.env, WHARF_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc = p;
      p.stderr!.on('data', (c: Buffer) => log.write(c));
      await new Promise<void>((done, fail) => {
        const timer = setTimeout(() => fail(new Error(`wharf did not start within 30 s (log: ${logFile})`)), 30_000);
        p.once('exit', (code, signal) => {
          clearTimeout(timer);
          fail(new Error(`wharf exited with ${code ?? signal} while starting (log: ${logFile})`));
        });
        createInterface({ input: p.stdout! }).on('line', (line) => {
          log.write(`${line}\n`);
          if (line.includes('"wharf listening"')) {
            clearTimeout(timer);
            done();
          }
        });
      });
      // From here an exit is the test's doing (or a crash the test finds by its effects).
      p.removeAllListeners('exit');
    },
    kill: () => end('SIGKILL'),
    stop: async () => {
      // A graceful stop that hangs (the test failed somewhere) must not hold up the cleanup.
      const p = proc;
      const force = setTimeout(() => p?.kill('SIGKILL'), 20_000);
      await end('SIGTERM');
      clearTimeout(force);
      await new Promise<void>((r) => log.end(r));
    },
    get running() {
      return proc !== null && proc.exitCode === null && proc.signalCode === null;
    },
    get starts() {
      return starts;
    },
  };
}
