import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that run alone, one after the other, once every other file is done: the RabbitMQ
 * conformance suite restarts the shared broker (every connection drops), and the hostile-input
 * suites hold the event loop to 100 ms of wall clock, which test files busy beside them on the
 * same two cores would stretch.
 */
const ALONE = ['test/integration/connectors/rabbitmq.test.ts', 'test/integration/hostile-regex.test.ts', 'test/integration/ingress-validation.test.ts'];

const integration = {
  globalSetup: ['test/harness/global-setup.ts'],
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    // Integration files spend most of their time waiting on Postgres, brokers, child processes
    // and timers, not on the CPU: vitest's default on two cores (one worker) ran them one after
    // the other with the machine mostly idle. Four at once keep both cores busy.
    maxWorkers: 4,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...ALONE],
          ...integration,
        },
      },
      {
        test: {
          name: 'alone',
          include: ALONE,
          ...integration,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      // The chaos suite kills Wharf and restarts its own Postgres for about two minutes, loading
      // both cores: `npm run test:chaos` (which sets WHARF_CHAOS=1) runs it alone, `npm test` not.
      ...(process.env.WHARF_CHAOS === '1'
        ? [
            {
              test: {
                name: 'chaos',
                include: ['test/chaos/**/*.test.ts'],
                testTimeout: 180_000,
                hookTimeout: 90_000,
              },
            },
          ]
        : []),
    ],
  },
});
