import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/lib/**/*.test.ts', 'test/cli/**/*.test.ts'],
    testTimeout: 15_000,
    hookTimeout: 15_000,
    pool: 'forks',
  },
});
