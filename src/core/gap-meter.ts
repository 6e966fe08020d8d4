/**
 * Whether arrivals come densely enough that waiting `lingerMs` for company pays: at least two
 * more expected meanwhile, from an exponential average of the gaps between them. With a 5 ms
 * linger a gateway at 100/s never waits and one at 1,000/s waits up to 5 ms for about five.
 * Ingest's group commit, the dispatcher's NOTIFY wake-ups and its recorder use it; a linger of 0
 * is never dense.
 *
 * A gap counts at most four lingers: any longer gap just means quiet, and the cap lets the meter
 * turn dense again within a handful of arrivals however long the silence was.
 */
export interface GapMeter {
  arrive(at: number): void;
  dense(): boolean;
  /**
   * Milliseconds the first of a group, arrived at `firstAt` (performance.now()), may still wait
   * for company: what is left of its linger while arrivals are dense, else 0 (go now).
   */
  waitMs(firstAt: number): number;
}

export function gapMeter(lingerMs: number): GapMeter {
  const capMs = 4 * lingerMs;
  let mean = Infinity;
  let last = -Infinity;
  const dense = (): boolean => lingerMs > 0 && mean * 2 <= lingerMs;
  return {
    arrive(at) {
      const g = Math.min(at - last, capMs);
      last = at;
      mean = mean === Infinity ? g : mean * 0.7 + g * 0.3;
    },
    dense,
    waitMs: (firstAt) => (dense() ? Math.max(0, firstAt + lingerMs - performance.now()) : 0),
  };
}
