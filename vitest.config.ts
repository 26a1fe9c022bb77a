import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // one temporary folder for the run, which tests' own folders leave unchanged (see the file)
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at a time even on two cores (vitest's default there is one): most of an
    // end-to-end test is waiting on the command it runs, on cron or on a server.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // In CI, a JSON report too, from which .ci/run prints its closing count.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.test-results/vitest.json' },
  },
});
