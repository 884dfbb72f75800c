/**
 * The fuzzer's tests, one per verb and format, for a run of the given sizes: the short run in
 * `npm test` and the full one in test/slow/ are the same tests.
 */
import { expect, it } from 'vitest';
import { type Format, fuzzBenchServer, fuzzEcho, fuzzListen, fuzzProxy } from './fuzz-run.js';

export interface FuzzSizes {
  seed: number;
  /** Datagrams for listen, per format. */
  listen: Record<Format, number>;
  echo: number;
  proxy: number;
  bench: number;
  /** The share of datagrams within 16 bytes of 65507. */
  largeShare: number;
  /** Print each run's figures (the full run's report). */
  report?: boolean;
}

/** Milliseconds a run of `n` datagrams may take: generous, the machine may be busy. */
const budget = (n: number) => 30_000 + n * 2;

const MB = 1024 * 1024;

export function fuzzSuite(s: FuzzSizes): void {
  const say = (what: string, figures: Record<string, unknown>) => {
    if (s.report) console.log(`fuzz ${what}: ${JSON.stringify(figures)}`);
  };
  let k = 0;
  for (const [format, n] of Object.entries(s.listen) as [Format, number][]) {
    const seed = s.seed + k++;
    it(
      `listen -f ${format}: ${n} datagrams, each record safe and giving back its payload`,
      async () => {
        const r = await fuzzListen(format, n, seed, s.largeShare);
        say(`listen -f ${format}`, {
          n,
          mb: (r.bytes / MB).toFixed(1),
          ms: Math.round(r.ms),
          rssMb: (r.peakRss / MB).toFixed(1),
        });
        expect(r.error).toBeUndefined();
        expect(r.datagrams).toBe(n);
        expect(r.code, r.stderr).toBe(0);
        // Nothing but the start line: no warning, no trace.
        expect(r.stderr).toMatch(/^Listening on 127\.0\.0\.1:\d+\n$/);
      },
      budget(n),
    );
  }

  it(
    `echo: ${s.echo} datagrams, each answered with its own bytes and logged as json`,
    async () => {
      const n = s.echo;
      const r = await fuzzEcho(n, s.seed + 10, s.largeShare);
      say('echo', {
        n,
        mb: (r.bytes / MB).toFixed(1),
        ms: Math.round(r.ms),
        rssMb: (r.peakRss / MB).toFixed(1),
      });
      expect(r.error).toBeUndefined();
      expect(r.datagrams, 'answered, still serving').toBe(n);
      expect(r.logged).toBe(n);
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(new RegExp(`received=${n} .*answered ${n}|received ${n}.*answered ${n}`, 's'));
    },
    budget(s.echo),
  );

  it(
    `proxy: ${s.proxy} datagrams each way, byte for byte, every one in its log`,
    async () => {
      const n = s.proxy;
      const r = await fuzzProxy(n, s.seed + 11, s.largeShare);
      say('proxy', {
        n,
        mb: (r.bytes / MB).toFixed(1),
        ms: Math.round(r.ms),
        rssMb: (r.peakRss / MB).toFixed(1),
      });
      expect(r.error).toBeUndefined();
      expect(r.datagrams, 'relayed both ways, still serving').toBe(n);
      expect(r.code, r.stderr).toBe(130);
      expect(r.counters).toMatchObject({
        up_received: n,
        up_forwarded: n,
        down_received: n,
        down_forwarded: n,
        up_drops_kernel: 0,
        down_drops_kernel: 0,
      });
      expect(r.logError).toBeUndefined();
      expect(r.logLines).toBe(2 * n);
    },
    budget(s.proxy),
  );

  it(
    `bench server: ${s.bench} bench-shaped datagrams each counted as foreign or garbled, the run beside exact`,
    async () => {
      const n = s.bench;
      const r = await fuzzBenchServer(n, s.seed + 12);
      say('bench server', {
        n,
        ...r.expected,
        ms: Math.round(r.ms),
        rssMb: (r.peakRss / MB).toFixed(1),
        run: r.run,
      });
      expect(r.code, r.stderr).toBe(130);
      expect(r.counted).toEqual(r.expected);
      expect(r.expected.foreign).toBeGreaterThan(n / 4);
      expect(r.expected.garbled).toBeGreaterThan(n / 4);
      expect(r.run).toMatchObject({ lost: 0, duplicates: 0, garbled: 0 });
      expect(r.run.received).toBe(r.run.sent);
    },
    budget(s.bench) * 2,
  );
}
