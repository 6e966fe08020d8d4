/** Wharf processes a test starts beside its in-process app, from the same config file. */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '../..');

/** A second Wharf, delivery workers only, from the same config file (and so the same database). */
export async function startDispatchProcess(configFile: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['src/main.ts', 'start', '--config', configFile, '--role', 'dispatch'], {
    cwd: ROOT,
    env: { ...process.env, WHARF_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`dispatch process did not start:\n${logs.join('')}`)), 30_000);
    proc.once('exit', (code) => fail(new Error(`dispatch process exited with ${code}:\n${logs.join('')}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      logs.push(line);
      if (line.includes('"wharf started"')) {
        clearTimeout(timer);
        done();
      }
    });
  });
  return proc;
}

