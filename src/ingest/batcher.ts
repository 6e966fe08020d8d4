import type { EventInput } from '../core/types.ts';
import { gapMeter } from '../core/gap-meter.ts';
import { ingestEvents, type IngestDeps, type IngestOutcome } from './persist.ts';

export interface IngestBatcherOptions {
  /** Most events in one transaction. */
  maxBatch: number;
  /** Transactions in flight at once (each holds a pool connection). */
  maxInFlight: number;
  /**
   * Milliseconds an event may wait for others before its transaction starts, while they arrive
   * densely enough to be worth waiting for (`gapMeter`). 0: never wait. A quiet gateway commits
   * each event at once.
   */
  lingerMs?: number;
}

export interface IngestBatcher {
  /** Resolves once the event is committed (or known a duplicate, or rejected). */
  submit(input: EventInput): Promise<IngestOutcome>;
}

interface Pending {
  input: EventInput;
  /** performance.now() when it was submitted. */
  at: number;
  resolve: (o: IngestOutcome) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for events that arrive one per request. An event waits while earlier transactions
 * are in flight and, while events come densely, up to `lingerMs` for company; so a quiet gateway
 * commits each at once, and a busy one commits many per transaction instead of paying a
 * transaction (five round trips, a pg-boss job, a fetch, a dispatch group) per request or two.
 */
export function createIngestBatcher(deps: IngestDeps, options: IngestBatcherOptions): IngestBatcher {
  const queue: Pending[] = [];
  let inFlight = 0;
  const gaps = gapMeter(options.lingerMs ?? 0);
  let lingering: NodeJS.Timeout | null = null;

  /**
   * Starts what the free slots can take, unless the oldest waiting event may still wait for
   * company: events come densely (`gapMeter`) and it arrived less than lingerMs ago. Then a timer comes back
   * when its wait is up, so no event waits longer than lingerMs for the others.
   */
  const flush = (): void => {
    if (lingering) {
      clearTimeout(lingering);
      lingering = null;
    }
    if (queue.length > 0 && queue.length < options.maxBatch && inFlight < options.maxInFlight) {
      const left = gaps.waitMs(queue[0]!.at);
      if (left > 0) {
        lingering = setTimeout(flush, left);
        return;
      }
    }
    while (inFlight < options.maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch);
      inFlight += 1;
      void run(batch).finally(() => {
        inFlight -= 1;
        flush();
      });
    }
  };

  const run = async (batch: Pending[]): Promise<void> => {
    try {
      const outcomes = await ingestEvents(deps, batch.map((p) => p.input));
      batch.forEach((p, i) => p.resolve(outcomes[i]!));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One event must not fail its neighbours: try each alone, so only the guilty one fails.
      await Promise.all(
        batch.map(async (p) => {
          try {
            const [o] = await ingestEvents(deps, [p.input]);
            p.resolve(o!);
          } catch (e) {
            p.reject(e);
          }
        }),
      );
    }
  };

  return {
    submit(input) {
      return new Promise<IngestOutcome>((resolve, reject) => {
        const at = performance.now();
        queue.push({ input, at, resolve, reject });
        gaps.arrive(at);
        if (!lingering || queue.length >= options.maxBatch) flush();
      });
    },
  };
}
