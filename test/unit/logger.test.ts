import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';

describe('logger', () => {
  it('writes JSON with credentials redacted wherever they appear', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info({ req: { headers: { authorization: 'Bearer wharf_topsecret', host: 'x' } } }, 'request');
    log.info({ endpoint: { id: 'acme', secret: 'whsec_c2VjcmV0', url: 'https://acme.example' } }, 'endpoint');
    log.info({ auth: { header_value: 'key-123', password: 'hunter2' } }, 'auth');
    log.debug({ secret: 'not-at-this-level' }, 'hidden');
    expect(lines).toHaveLength(3);
    const all = lines.join('');
    for (const secret of ['wharf_topsecret', 'whsec_c2VjcmV0', 'key-123', 'hunter2']) expect(all).not.toContain(secret);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ msg: 'request', service: 'wharf', req: { headers: { authorization: '[redacted]', host: 'x' } } });
    expect(JSON.parse(lines[1]!).endpoint).toEqual({ id: 'acme', secret: '[redacted]', url: 'https://acme.example' });
  });
});

describe('process warnings', () => {
  /** Runs `lines` in a Node process whose warnings go to Wharf's logger; its stdout as log lines. */
  function warningsOf(lines: string[]): { level: number; warning: string; code?: string; msg: string }[] {
    const script = [
      `import { createLogger, logProcessWarnings } from ${JSON.stringify(new URL('../../src/logger.ts', import.meta.url).href)};`,
      `import { createRequire } from 'node:module';`,
      `logProcessWarnings(createLogger('info'));`,
      ...lines,
      `setTimeout(() => {}, 20);`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    return run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }

  it('are log lines, not text on stderr', () => {
    const lines = warningsOf([`setTimeout(() => {}, -5);`, `process.emitWarning('an old API', { type: 'DeprecationWarning', code: 'DEP0999' });`]);
    expect(lines.map((l) => [l.level, l.warning, l.code, l.msg])).toEqual([
      [40, 'TimeoutNegativeWarning', undefined, '-5 is a negative number.\nTimeout duration was set to 1.'],
      [40, 'DeprecationWarning', 'DEP0999', 'an old API'],
    ]);
  });

  it('leave out kafkajs\'s negative timer on Node 24 (kafkajs#1751)', () => {
    // A module at a kafkajs path that arms a timer as kafkajs 2.2.4's request queue does. Node
    // warns of a negative timer once a process, so this needs a process of its own.
    const dir = mkdtempSync(join(tmpdir(), 'wharf-warnings-'));
    try {
      mkdirSync(join(dir, 'node_modules', 'kafkajs'), { recursive: true });
      writeFileSync(join(dir, 'node_modules', 'kafkajs', 'queue.cjs'), 'exports.schedule = () => setTimeout(() => {}, 0 - Date.now());\n');
      const lines = warningsOf([
        `createRequire(${JSON.stringify(join(dir, 'x.cjs'))})('kafkajs/queue.cjs').schedule();`,
        `process.emitWarning('after it', { type: 'DeprecationWarning', code: 'DEP0999' });`,
      ]);
      expect(lines.map((l) => [l.warning, l.msg])).toEqual([['DeprecationWarning', 'after it']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
