/**
 * The V8 heap flags Wharf's server runs with. They must be given on node's command line (V8 sizes
 * its heap when the process starts; `--heap-growing-percent` is not allowed in NODE_OPTIONS), so
 * they are written out where Wharf is started: the Dockerfile's ENTRYPOINT, package.json's `start`
 * and `wharf` scripts and src/main.ts's shebang. test/unit/node-flags.test.ts keeps those equal to
 * this list, and the benchmarks start their Wharf child with it.
 *
 * Why (issue 15, measured with `npm run bench -- --mode max`, docs/cost-per-webhook.md, "Memory"): on a
 * machine with a lot of memory V8 lets the young generation grow to 64 MiB per semi-space and the
 * old generation to about four times its live size before a full collection. Wharf's live heap
 * under load is ~40 MiB, but its peak RSS reached 350–370 MiB.
 * - `--max-semi-space-size=16`: a young generation of at most 32 MiB per semi-space (twice the
 *   flag without pointer compression) instead of 64. 8 saved another ~20 MiB but doubled the
 *   number of scavenges.
 * - `--heap-growing-percent=50`: the next full collection when the old generation has grown by half.
 * Both only make collections more frequent; the heap itself is not capped, so a larger live set
 * (a big backlog, large payloads) still fits.
 */
export const NODE_FLAGS = ['--max-semi-space-size=16', '--heap-growing-percent=50'] as const;
