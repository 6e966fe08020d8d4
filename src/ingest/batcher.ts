import type { EventInput } from '../core/types.ts';
import { ingestEvents, type IngestDeps, type IngestOutcome } from './persist.ts';

export interface IngestBatcherOptions {
  /** Most events in one transaction. */
  maxBatch: number;
  /** Transactions in flight at once (each holds a pool connection). */
  maxInFlight: number;
}

export interface IngestBatcher {
  /** Resolves once the event is committed (or known a duplicate, or rejected). */
  submit(input: EventInput): Promise<IngestOutcome>;
}

interface Pending {
  input: EventInput;
  resolve: (o: IngestOutcome) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for events that arrive one per request. An event waits only while earlier
 * transactions are in flight, so an idle gateway commits each at once, and a busy one commits
 * many per transaction instead of paying a commit per request.
 */
export function createIngestBatcher(deps: IngestDeps, options: IngestBatcherOptions): IngestBatcher {
  const queue: Pending[] = [];
  let inFlight = 0;

  const flush = (): void => {
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
        queue.push({ input, resolve, reject });
        flush();
      });
    },
  };
}
