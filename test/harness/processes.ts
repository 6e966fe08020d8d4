/** Wharf processes a test starts beside (or instead of) its in-process app, each from a config file. */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Role } from '../../src/app.ts';

const ROOT = resolve(import.meta.dirname, '../..');

export interface WharfProcess {
  proc: ChildProcess;
  /** Where its HTTP server listens (from its "wharf listening" line); null for the dispatch role, which serves nothing. */
  url: string | null;
  /** Everything it wrote so far, stdout lines and stderr chunks. */
  logs: string[];
  /**
   * SIGTERM, then waits for the exit (at once if it has exited or was killed already); a graceful
   * stop that hangs (the test failed somewhere) gets a SIGKILL after 20 s, not to hold up cleanup.
   */
  stop(): Promise<void>;
  /** SIGKILL, as an OOM killer or a lost machine would; resolves once the process is gone. */
  kill(): Promise<void>;
}

export interface WharfProcessOptions {
  /** `--role` (default all). */
  role?: Role;
  /** Added to this process's environment (WHARF_* overrides beat the file). */
  env?: NodeJS.ProcessEnv;
  /** Also given everything it writes, as it comes (stdout line by line), e.g. for a log file. */
  output?: (text: string) => void;
}

/**
 * A real Wharf (`src/main.ts start`) in a child process, resolved once it logged that it started.
 * Its log level is info unless `env` says otherwise: the start lines are info.
 */
export async function startWharfProcess(configFile: string, options: WharfProcessOptions = {}): Promise<WharfProcess> {
  const role = options.role ?? 'all';
  const proc = spawn(process.execPath, ['src/main.ts', 'start', '--config', configFile, '--role', role], {
    cwd: ROOT,
    env: { ...process.env, WHARF_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let url: string | null = null;
  proc.stderr!.on('data', (c: Buffer) => {
    logs.push(c.toString());
    options.output?.(c.toString());
  });
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      // Not left running behind a test that gave up on it.
      proc.kill('SIGKILL');
      fail(new Error(`${role} process did not start:\n${logs.join('\n')}`));
    }, 30_000);
    proc.once('exit', (code, signal) => fail(new Error(`${role} process exited with ${code ?? signal}:\n${logs.join('\n')}`)));
    // Read to the end whatever the test does: a pipe nobody drains would block the child's logger.
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(line);
      options.output?.(`${line}\n`);
      if (line.includes('"wharf listening"')) url = (JSON.parse(line) as { url: string }).url;
      if (line.includes('"wharf listening"') || line.includes('"wharf started"')) {
        clearTimeout(timer);
        done();
      }
    });
  });
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  };
  return {
    proc,
    url,
    logs,
    async stop() {
      const force = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await end('SIGTERM');
      clearTimeout(force);
    },
    kill: () => end('SIGKILL'),
  };
}

/** A second Wharf, delivery workers only, from the same config file (and so the same database). */
export async function startDispatchProcess(configFile: string): Promise<ChildProcess> {
  return (await startWharfProcess(configFile, { role: 'dispatch' })).proc;
}
