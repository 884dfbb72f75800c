/**
 * Rate pacing for senders: how many datagrams may go now so that the average rate is exact
 * over the whole run, without bursts beyond a tenth of a millisecond's worth.
 */
import { throwIfAborted } from './abort.js';
import { InvalidArgumentError } from './errors.js';

/** Options of {@link Pacer}. */
export interface PacerOptions {
  /** The most datagrams one call may allow (default 64). */
  maxBatch?: number;
  /** Milliseconds: the clock, for tests (default `performance.now`). */
  now?: () => number;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** The most a late pacer sends at once to catch up. */
const CATCH_UP = 64;

/** Blocks the thread for `ms` (sub-millisecond precision; no event loop turn). */
function blockFor(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Paces sends at `rate` datagrams per second (0: as fast as possible). Each `take()` waits
 * until at least one datagram is due and says how many may go: the count due by now, at most
 * a tenth of a millisecond's worth. Due counts come from the start time, so sleep jitter never
 * drifts the rate. Long waits sleep on a timer; the last fraction of a millisecond is waited
 * precisely. Either way the event loop gets a turn at least every 10 ms, so signals and
 * timers still run in a tight send loop.
 */
export class Pacer {
  readonly rate: number;
  readonly maxBatch: number;
  #now: () => number;
  #start: number | undefined;
  #taken = 0;
  #lastTurn = 0;

  /** @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a negative or non-finite rate */
  constructor(rate: number, options: PacerOptions = {}) {
    if (!(Number.isFinite(rate) && rate >= 0))
      throw new InvalidArgumentError(`rate ${rate} is not a number of datagrams per second`);
    this.rate = rate;
    const cap = options.maxBatch ?? 64;
    this.maxBatch = rate === 0 ? cap : Math.max(1, Math.min(cap, Math.ceil(rate / 10_000)));
    this.#now = options.now ?? (() => performance.now());
  }

  /** Datagrams allowed so far. */
  get taken(): number {
    return this.#taken;
  }

  /**
   * Waits until a datagram is due; resolves to how many may go now (1 to `max`).
   *
   * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires
   */
  async take(max: number, signal?: AbortSignal): Promise<number> {
    let now = this.#now();
    if (this.#start === undefined) {
      this.#start = now;
      this.#lastTurn = now;
    }
    if (now - this.#lastTurn >= 10) {
      await new Promise((resolve) => setImmediate(resolve));
      now = this.#now();
      this.#lastTurn = now;
    }
    throwIfAborted(signal);
    const limit = Math.max(1, Math.min(max, this.maxBatch));
    if (this.rate === 0) {
      this.#taken += limit;
      return limit;
    }
    const msPer = 1000 / this.rate;
    // When the next datagram is due.
    const dueAt = this.#start + this.#taken * msPer;
    let wait = dueAt - now;
    if (wait > 2) {
      await new Promise((resolve) => setTimeout(resolve, wait - 1));
      this.#lastTurn = this.#now();
      throwIfAborted(signal);
      wait = dueAt - this.#now();
    }
    if (wait > 0.2) blockFor(wait - 0.1);
    while (this.#now() < dueAt) {
      // Spin out the last tenth of a millisecond: sleeps are not that precise.
    }
    now = this.#now();
    const due = Math.floor((now - this.#start) / msPer) + 1 - this.#taken;
    // On schedule, small bursts; behind it (a slow turn), up to 64 at once to catch up.
    const n = Math.max(1, Math.min(due > limit ? Math.min(max, CATCH_UP) : limit, due));
    this.#taken += n;
    return n;
  }
}
