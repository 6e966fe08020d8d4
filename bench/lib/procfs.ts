/** Linux /proc readers: memory of one process, CPU time of processes and of the machine. */
import { readFileSync, readdirSync } from 'node:fs';

/** VmRSS and VmHWM (peak RSS, kept by the kernel) in bytes, or null when the process is gone. */
export function procMemory(pid: number): { rss: number; hwm: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
      return m ? Number(m[1]) * 1024 : 0;
    };
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux that matters

/** The fields of /proc/PID/stat after `(comm)` (which may itself hold spaces), or null when it is gone. */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Which CPU time: user and system together, or user (the process's own code) alone. */
export type CpuPart = 'all' | 'user';

/** utime + stime (or utime alone) of one process in ms, or null when it is gone. */
export function procCpuMs(pid: number, part: CpuPart = 'all'): number | null {
  const f = statFields(pid);
  return f ? (Number(f[11]) + (part === 'all' ? Number(f[12]) : 0)) * TICK_MS : null;
}

/**
 * cutime + cstime of one process in ms: the CPU of its children that have exited and been reaped
 * (a postmaster's: backends that disconnected, autovacuum workers that finished), which no live
 * process's own figure holds any more. Null when it is gone.
 */
export function exitedChildrenCpuMs(pid: number): number | null {
  const f = statFields(pid);
  return f ? (Number(f[13]) + Number(f[14])) * TICK_MS : null;
}

/** The pid of the oldest process named `comm` whose parent is not also `comm` (a postmaster), or null. */
export function rootProcess(comm: string): number | null {
  let best: { pid: number; start: number } | null = null;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== comm) continue;
    } catch {
      continue;
    }
    const f = statFields(Number(name));
    if (!f) continue;
    const parent = Number(f[1]);
    let parentComm = '';
    try {
      parentComm = readFileSync(`/proc/${parent}/comm`, 'utf8').trim();
    } catch {
      // the parent is gone or hidden
    }
    if (parentComm === comm) continue;
    const start = Number(f[19]);
    if (!best || start < best.start) best = { pid: Number(name), start };
  }
  return best?.pid ?? null;
}

/**
 * CPU ms of every process named `comm` by pid (e.g. all postgres backends and helpers); with
 * `title`, only those whose command line (a postgres backend's process title: "postgres: 15/main:
 * user database host state") holds it; `part` as procCpuMs.
 */
export function cpuByComm(comm: string, title?: string, part: CpuPart = 'all'): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== comm) continue;
      if (title !== undefined && !readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(title)) continue;
    } catch {
      continue;
    }
    const ms = procCpuMs(Number(name), part);
    if (ms !== null) out.set(Number(name), ms);
  }
  return out;
}

/** CPU ms used since `before` by processes named as in it; processes born since count from zero. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

/** Machine-wide busy and total CPU ms (all cores) from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) * TICK_MS, total: total * TICK_MS };
}
