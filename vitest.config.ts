import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
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
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
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
