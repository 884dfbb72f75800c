/**
 * The seeded fuzzer, short run: 49k datagrams (the full run, 1.2 million, is
 * test/slow/fuzz.test.ts). Datagrams of every shape (0 to 65507 bytes; random bytes, valid and
 * invalid UTF-8, ANSI CSI, OSC and DCS sequences, C1 controls, bidi and zero-width characters)
 * to `listen` in every format, `echo` and `proxy`; bench-shaped ones (cut short, malformed,
 * replayed, of another session) to `bench server` beside a run. Each record of output is
 * checked as it streams against the payload it came from (test/helpers/fuzz.ts).
 */
import { describe } from 'vitest';
import { fuzzSuite } from '../helpers/fuzz-suite.js';

describe('fuzz (short run)', () => {
  fuzzSuite({
    seed: 20261129,
    listen: { text: 8000, json: 8000, hex: 3000, base64: 3000, raw: 3000 },
    echo: 8000,
    proxy: 8000,
    bench: 8000,
    largeShare: 0.005,
  });
});
