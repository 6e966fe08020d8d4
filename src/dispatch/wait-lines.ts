/**
 * Lines of waiters by key (an endpoint, a project), each in the order it came: what comes free
 * goes to the first of a line (`admit`), and a waiter not admitted within `timeoutMs` leaves it.
 * The dispatcher keeps fetched deliveries here while their endpoint's or project's share is full
 * (worker.ts), so that newer deliveries cannot take the shares they wait for.
 */
export interface WaitLines<T> {
  /** Someone waits in `key`'s line. */
  has(key: string): boolean;
  /** How many wait in `key`'s line. */
  size(key: string): number;
  /** Puts `item` at the end of `key`'s line; exactly one of `admitted` and `timedOut` is called later. */
  wait(key: string, item: T, admitted: (item: T) => void, timedOut: (item: T) => void): void;
  /** While `room()`, the first of `key`'s line is admitted (its `admitted` must take the room). */
  admit(key: string, room: () => boolean): void;
  /** Every waiter leaves at once, as if its time had run out. */
  flush(): void;
}

interface Waiter<T> {
  item: T;
  timer: NodeJS.Timeout;
  admitted: (item: T) => void;
  timedOut: (item: T) => void;
}

export function waitLines<T>(timeoutMs: number): WaitLines<T> {
  const lines = new Map<string, Waiter<T>[]>();
  const leave = (key: string, line: Waiter<T>[], w: Waiter<T>): void => {
    clearTimeout(w.timer);
    const i = line.indexOf(w);
    if (i >= 0) line.splice(i, 1);
    if (line.length === 0 && lines.get(key) === line) lines.delete(key);
  };
  return {
    has: (key) => lines.has(key),
    size: (key) => lines.get(key)?.length ?? 0,
    wait(key, item, admitted, timedOut) {
      let line = lines.get(key);
      if (!line) lines.set(key, (line = []));
      const w: Waiter<T> = {
        item,
        admitted,
        timedOut,
        timer: setTimeout(() => {
          leave(key, line, w);
          timedOut(item);
        }, timeoutMs),
      };
      line.push(w);
    },
    admit(key, room) {
      const line = lines.get(key);
      while (line && line.length > 0 && room()) {
        const w = line[0]!;
        leave(key, line, w);
        w.admitted(w.item);
      }
    },
    flush() {
      for (const [key, line] of [...lines]) {
        for (const w of [...line]) {
          leave(key, line, w);
          w.timedOut(w.item);
        }
      }
    },
  };
}
