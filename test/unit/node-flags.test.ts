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

  it('node takes them: they lower the young generation\'s limit', () => {
    // V8 counts three semi-spaces in its heap_size_limit, so the limit shows the young generation's
    // cap without depending on when V8 chooses to grow it. (An earlier version measured new_space
    // after a burst of allocation: with the CPU contended V8 grew it only to 32 MiB without the
    // flag either, and the test failed in CI.) Node refuses a flag it does not know, or an illegal
    // value, with exit code 9, which fails execFileSync.
    const limit = (flags: readonly string[]): number =>
      Number(execFileSync(process.execPath, [...flags, '-p', 'require("v8").getHeapStatistics().heap_size_limit']).toString());
    const semi = Number(/^--max-semi-space-size=(\d+)$/.exec(NODE_FLAGS.find((f) => f.startsWith('--max-semi-space-size='))!)![1]);
    // What is read follows the young generation's cap: it rises with a larger semi-space flag.
    expect(limit([`--max-semi-space-size=${semi * 4}`])).toBeGreaterThan(limit(NODE_FLAGS));
    // And Wharf's flags lower it from node's default on this machine.
    expect(limit(NODE_FLAGS)).toBeLessThan(limit([]));
  });
});
