/**
 * The seeded fuzzer, full run: 1.2 million datagrams, the same tests as the short run in
 * `npm test` (test/cli/fuzz.test.ts), each run's figures printed. `npm run test:slow`.
 */
import { describe } from 'vitest';
import { fuzzSuite } from '../helpers/fuzz-suite.js';

describe('fuzz (full run)', () => {
  fuzzSuite({
    seed: 20261130,
    listen: { text: 200_000, json: 200_000, hex: 100_000, base64: 100_000, raw: 100_000 },
    echo: 200_000,
    proxy: 200_000,
    bench: 100_000,
    largeShare: 0.01,
    report: true,
  });
});
