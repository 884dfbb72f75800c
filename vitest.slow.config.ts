import { defineConfig } from 'vitest/config';

/** The slow suites (`npm run test:slow`): the fuzzer's full run, long runs. Not in `npm test`. */
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts'],
    testTimeout: 20 * 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One file at a time: each loads the machine on its own, and its figures are reported.
    fileParallelism: false,
  },
});
