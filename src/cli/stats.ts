/** Counters people read: periodic `--stats` lines and the summary at exit, on stderr. */
import type { Writable } from 'node:stream';

/** One reading of a command's counters. */
export type Counters = Record<string, number | undefined>;

/** `key=value` pairs; counters the system cannot tell are left out. */
export function formatCounters(counters: Counters): string {
  return Object.entries(counters)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/**
 * Prints `<prefix>: t=<seconds> <counters> pps=<per second>` every `intervalMs` until
 * stopped; `pps` is the change of `rateOf` over the interval.
 *
 * @returns a function that stops the reports
 */
export function startStats(
  stderr: Writable,
  prefix: string,
  intervalMs: number,
  read: () => Counters,
  rateOf: string,
): () => void {
  const started = performance.now();
  let last = started;
  let lastCount = read()[rateOf] ?? 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const counters = read();
    const count = counters[rateOf] ?? 0;
    const rate = Math.round(((count - lastCount) * 1000) / (now - last));
    last = now;
    lastCount = count;
    stderr.write(
      `${prefix}: t=${((now - started) / 1000).toFixed(1)}s ${formatCounters(counters)} pps=${rate}\n`,
    );
  }, intervalMs);
  return () => clearInterval(timer);
}
