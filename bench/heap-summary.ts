/**
 * The top allocation sites of a .heapprofile (bench/e2e.ts --heap-sample): bytes sampled by
 * function with its two callers, and by package or file.
 *
 *   node bench/heap-summary.ts FILE [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children?: Node[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
const file = positionals[0];
if (!file) {
  console.error('usage: node bench/heap-summary.ts FILE [--top N]');
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(file, 'utf8')) as { head: Node };

const where = (url: string): string => url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1').replace(/^file:\/\/.*?\/(src|bench|connectors)\//, '$1/');
const name = (n: Node): string => `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url) || '(native)'}:${n.callFrame.lineNumber + 1}`;
const sites = new Map<string, number>();
const modules = new Map<string, number>();
let total = 0;
const walk = (n: Node, callers: string[]): void => {
  const here = [name(n), ...callers].slice(0, 3);
  if (n.selfSize > 0) {
    total += n.selfSize;
    sites.set(here.join(' < '), (sites.get(here.join(' < ')) ?? 0) + n.selfSize);
    const m = where(n.callFrame.url) || '(native)';
    modules.set(m, (modules.get(m) ?? 0) + n.selfSize);
  }
  for (const c of n.children ?? []) walk(c, here);
};
walk(profile.head, []);

const mb = (b: number): string => `${(b / 1e6).toFixed(1).padStart(8)} MB ${((100 * b) / total).toFixed(1).padStart(5)} %`;
console.log(`${file}: ${(total / 1e6).toFixed(1)} MB sampled\n\nby package or file`);
for (const [m, b] of [...modules].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${mb(b)}  ${m}`);
console.log('\nby function < caller < caller');
for (const [s, b] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${mb(b)}  ${s}`);
