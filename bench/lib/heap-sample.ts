/**
 * Diagnostic preload for the Wharf child (bench/e2e.ts --heap-sample FILE): V8's sampling heap
 * profiler from the child's start to its exit, counting objects already collected as well, so the
 * profile shows what was allocated, and where, rather than what is still held. Written to
 * $WHARF_BENCH_HEAP_SAMPLE as a .heapprofile (Chrome DevTools reads it; `node
 * bench/heap-summary.ts FILE` lists the top allocation sites). It covers the whole child, start-up
 * and warm-up included: compare runs made alike.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.WHARF_BENCH_HEAP_SAMPLE;
if (out) {
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  // A sample every 16 KiB allocated on average; the two flags keep samples of collected objects.
  session.post('HeapProfiler.startSampling', {
    samplingInterval: 16_384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as { samplingInterval: number });
  // An in-process session answers synchronously, so the profile is written before the exit.
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (err) console.error('heap-sample: stopSampling failed', err);
      else writeFileSync(out, JSON.stringify(result.profile));
    });
  });
}
