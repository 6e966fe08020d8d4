/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof` or bench/e2e.ts --cpu-prof DIR):
 * self time by function and by module/package, and inclusive time of chosen functions.
 *
 *   node bench/prof-summary.ts PROFILE.cpuprofile [--top 30] [--inclusive name,name]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, inclusive: { type: 'string', default: '' } },
});
const file = positionals[0];
if (!file) {
  console.error('usage: node bench/prof-summary.ts PROFILE.cpuprofile [--top N] [--inclusive fnA,fnB]');
  process.exit(2);
}
const top = Number(values.top);
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const selfUs = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}
const totalUs = prof.endTime - prof.startTime;

function moduleOf(url: string): string {
  if (!url) return '(native/vm)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}
const label = (n: ProfileNode): string =>
  `${n.callFrame.functionName || '(anonymous)'} ${moduleOf(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const fnSelf = new Map<string, number>();
const modSelf = new Map<string, number>();
let busy = 0;
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  const name = n.callFrame.functionName;
  if (name !== '(idle)' && name !== '(program)') busy += us;
  fnSelf.set(label(n), (fnSelf.get(label(n)) ?? 0) + us);
  const mod = name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : moduleOf(n.callFrame.url);
  modSelf.set(mod, (modSelf.get(mod) ?? 0) + us);
}

const ms = (us: number): string => (us / 1000).toFixed(0).padStart(7);
const pct = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
console.log(`profile ${file}: ${(totalUs / 1e6).toFixed(2)} s wall, ${(busy / 1e6).toFixed(2)} s busy (not idle/program); % of busy`);
console.log('\nself time by module');
for (const [m, us] of [...modSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(us)} ms ${pct(us)}  ${m}`);
console.log('\nself time by function');
for (const [f, us] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(us)} ms ${pct(us)}  ${f}`);

const wanted = values.inclusive.split(',').filter(Boolean);
if (wanted.length > 0) {
  console.log('\ninclusive time (samples with the function anywhere on the stack)');
  const hits = new Map<string, number>(wanted.map((w) => [w, 0]));
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      for (const w of wanted) {
        if (!seen.has(w) && (n.callFrame.functionName === w || label(n).includes(w))) {
          seen.add(w);
          hits.set(w, hits.get(w)! + us);
        }
      }
    }
  }
  for (const [w, us] of hits) console.log(`${ms(us)} ms ${pct(us)}  ${w}`);
}
