import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Watches this process's event loop while a test feeds Wharf hostile input (issue 12: no single
 * tenant input may block the loop for more than 100 ms). Start it just before the input, call
 * `stop()` after the answer: it gives the longest delay seen, in milliseconds.
 */
export interface LoopWatch {
  stop(): number;
}

export const MAX_LOOP_BLOCK_MS = 100;

export function watchEventLoop(resolutionMs = 10): LoopWatch {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  return {
    stop() {
      h.disable();
      // The histogram counts the whole interval including the resolution itself.
      return Math.max(0, h.max / 1e6 - resolutionMs);
    },
  };
}
