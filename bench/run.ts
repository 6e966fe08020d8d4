/**
 * `npm run bench`: one run of bench/e2e.ts, whose options it takes; or, with `--report` first,
 * bench/report.ts (the same as `npm run bench:report`), which runs e2e.ts six times and prints
 * issue 15's figures beside their targets.
 */
if (process.argv[2] === '--report') {
  process.argv.splice(2, 1);
  await import('./report.ts');
} else {
  await import('./e2e.ts');
}
