import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/lib/**/*.test.ts', 'test/cli/**/*.test.ts'],
    testTimeout: 15_000,
    hookTimeout: 15_000,
    pool: 'forks',
    // Two files at a time even on two cores (vitest's default there is one): most tests wait on
    // the processes they spawn, and the first pass takes 180 s rather than 250.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
