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
export function gapMeter(lingerMs: number): { arrive(at: number): void; dense(): boolean } {
  const capMs = 4 * lingerMs;
  let mean = Infinity;
  let last = -Infinity;
  return {
    arrive(at) {
      const g = Math.min(at - last, capMs);
      last = at;
      mean = mean === Infinity ? g : mean * 0.7 + g * 0.3;
    },
    dense: () => lingerMs > 0 && mean * 2 <= lingerMs,
  };
}
