/**
 * The recent gap between arrivals (an exponential average). Waiting `linger` for company pays
 * only when at least two more are expected meanwhile, so with a 5 ms linger a gateway at 100/s
 * never waits and one at 1,000/s waits up to 5 ms for about five. Ingest's group commit, the
 * dispatcher's NOTIFY wake-ups and its recorder use it.
 *
 * A gap counts at most `capMs` (make it a few lingers): any longer gap just means quiet, and the
 * cap lets the meter turn dense again within a handful of arrivals however long the silence was.
 */
export function gapMeter(capMs: number): { add(gapMs: number): void; dense(lingerMs: number): boolean } {
  let mean = Infinity;
  return {
    add(gapMs) {
      const g = Math.min(gapMs, capMs);
      mean = mean === Infinity ? g : mean * 0.7 + g * 0.3;
    },
    dense: (lingerMs) => mean * 2 <= lingerMs,
  };
}
