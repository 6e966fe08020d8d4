/**
 * Wharf's V8 heap flags (src/node-flags.ts) are written out wherever Wharf is started, since they
 * only work on node's command line: these places must carry exactly that list.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/node-flags.ts';

const REPO = join(import.meta.dirname, '../..');
const read = (file: string): string => readFileSync(join(REPO, file), 'utf8');

/** The flags node is given in a command line: the words after `node` that start with `--`. */
function flagsOf(words: string[]): string[] {
  const rest = words.slice(words.indexOf('node') + 1);
  const end = rest.findIndex((w) => !w.startsWith('--'));
  return end === -1 ? rest : rest.slice(0, end);
}

describe('node flags', () => {
  it('the Dockerfile ENTRYPOINT runs node with them', () => {
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])$/m.exec(read('Dockerfile'));
    expect(flagsOf(JSON.parse(entrypoint![1]!) as string[])).toEqual([...NODE_FLAGS]);
  });

  it("package.json's start and wharf scripts run node with them", () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'wharf']) expect(flagsOf(scripts[name]!.split(/\s+/)), name).toEqual([...NODE_FLAGS]);
  });

  it("src/main.ts's shebang runs node with them", () => {
    const shebang = read('src/main.ts').split('\n')[0]!;
    expect(shebang.startsWith('#!/usr/bin/env -S ')).toBe(true);
    expect(flagsOf(shebang.split(/\s+/))).toEqual([...NODE_FLAGS]);
  });

  it('node takes them: the young generation stays capped under allocation', () => {
    // Short-lived garbage makes V8 grow the young generation to its limit (64 MiB without the flag).
    const script =
      'let keep = []; for (let i = 0; i < 3e6; i++) { keep.push({ a: i, b: "x" + i }); if (keep.length > 20000) keep = []; }' +
      'console.log(require("v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size)';
    const size = (flags: readonly string[]): number => Number(execFileSync(process.execPath, [...flags, '-e', script]).toString());
    expect(size([])).toBeGreaterThan(32 * 1024 * 1024);
    expect(size(NODE_FLAGS)).toBeLessThanOrEqual(32 * 1024 * 1024);
  });
});
