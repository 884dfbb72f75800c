/**
 * Rate pacing for senders: how many datagrams may go now so that the average rate is exact
 * over the whole run, waiting on the scheduler between bursts, never blocking the event loop.
 */
import { throwIfAborted } from './abort.js';
import { AbortError, InvalidArgumentError } from './errors.js';
import { defaultScheduler, type ScheduledCall, type Scheduler } from './scheduler.js';

/** Options of {@link Pacer}. */
export interface PacerOptions {
  /** The most datagrams one call may allow on schedule (default 64). */
  maxBatch?: number;
  /** Where the pacer waits (default: the process's scheduler). */
  scheduler?: Scheduler;
  /**
   * The shortest wait between bursts, in milliseconds: each wake-up sends what fell due
   * meanwhile. Shorter is smoother and costs a wake-up per burst: at 10k/s, 0.1 ms took 2.2
   * times the CPU of the C blaster here, 0.5 ms 1.3-1.45 times, 1 ms 0.9 times. By default,
   * 20 datagrams' worth, between 0.1 and 0.5 ms: bursts stay small at high rates (a receiver
   * with the system's default buffer drops long ones), wake-ups few at low ones.
   */
  granularity?: number;
}

/** The default {@link PacerOptions.granularity} for `rate`: 20 datagrams' worth, 0.1-0.5 ms. */
export function defaultPacingGranularity(rate: number): number {
  return rate > 0 ? Math.min(0.5, Math.max(0.1, 20_000 / rate)) : 0.5;
}

/** The most a late pacer allows at once to catch up. */
const CATCH_UP = 64;
/** The longest a busy sender keeps the event loop from timers and received datagrams. */
const TURN_MS = 0.5;

/**
 * Paces sends at `rate` datagrams per second (0: as fast as possible). Each `take()` waits
 * until at least one datagram is due and says how many may go: the count due by now, in
 * bursts of what falls due in one granule (half a millisecond by default; Node's own timers,
 * without the addon, tick once a millisecond). Due counts come from the
 * start time, so a late wake-up never drifts the rate: the next calls catch up. Waits are
 * scheduler deadlines, and a sender that never has to wait still lets the event loop run
 * every half millisecond, so timers, replies and signals are served while it sends.
 */
export class Pacer {
  readonly rate: number;
  readonly maxBatch: number;
  #scheduler: Scheduler;
  #start: number | undefined;
  #taken = 0;
  #lastTurn = 0;
  #granularity: number;
  #lastWake = Number.NEGATIVE_INFINITY;
  #signal: AbortSignal | undefined;
  #call: ScheduledCall | undefined;
  #fail: ((err: Error) => void) | undefined;

  /** @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a negative or non-finite rate */
  constructor(rate: number, options: PacerOptions = {}) {
    if (!(Number.isFinite(rate) && rate >= 0))
      throw new InvalidArgumentError(`rate ${rate} is not a number of datagrams per second`);
    this.rate = rate;
    this.#scheduler = options.scheduler ?? defaultScheduler();
    const cap = options.maxBatch ?? 64;
    const granularity = options.granularity ?? defaultPacingGranularity(rate);
    if (!(Number.isFinite(granularity) && granularity > 0))
      throw new InvalidArgumentError(`granularity ${granularity} is not a positive number of milliseconds`);
    // A granule's worth, or what one tick of a coarser timer lets fall due.
    const tick = Math.max(granularity, this.#scheduler.resolution);
    this.#granularity = tick;
    this.maxBatch = rate === 0 ? cap : Math.max(1, Math.min(cap, Math.ceil((rate * tick) / 1000)));
  }

  /** Datagrams allowed so far. */
  get taken(): number {
    return this.#taken;
  }

  /**
   * Waits until a datagram is due; resolves to how many may go now (1 to `max`). On
   * schedule, one call per granule: what falls due meanwhile goes as one burst.
   *
   * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires
   */
  async take(max: number, signal?: AbortSignal): Promise<number> {
    throwIfAborted(signal);
    const scheduler = this.#scheduler;
    let now = scheduler.now();
    if (this.#start === undefined) {
      this.#start = now;
      this.#lastTurn = now;
    }
    const limit = Math.max(1, Math.min(max, this.maxBatch));
    if (this.rate === 0) {
      if (now - this.#lastTurn >= TURN_MS) {
        await this.#yield(signal);
        this.#lastTurn = scheduler.now();
      }
      this.#taken += limit;
      return limit;
    }
    const msPer = 1000 / this.rate;
    let due = this.#due(now, msPer);
    if (due <= 0 || (due <= limit && now < this.#lastWake + this.#granularity)) {
      // On schedule: wake no more often than once a granule, and send what fell due meanwhile.
      const dueAt = this.#start + this.#taken * msPer;
      await this.#sleepUntil(Math.max(dueAt, this.#lastWake + this.#granularity), signal);
      now = scheduler.now();
      this.#lastTurn = now;
      due = this.#due(now, msPer);
    } else if (now - this.#lastTurn >= TURN_MS) {
      // Behind schedule and catching up: still give the loop its turn.
      await this.#yield(signal);
      now = scheduler.now();
      this.#lastTurn = now;
      due = this.#due(now, msPer);
    }
    this.#lastWake = now;
    // On schedule, small bursts; behind it (a late wake-up), up to 64 at once to catch up.
    const n = Math.max(1, Math.min(due > limit ? Math.min(max, CATCH_UP) : limit, due));
    this.#taken += n;
    return n;
  }

  /** Datagrams due by `now` and not yet allowed. */
  #due(now: number, msPer: number): number {
    // (A hair of slack so that 0.6 / 0.1 counts as 6, not 5.999.)
    return Math.floor((now - (this.#start as number)) / msPer + 1e-9) + 1 - this.#taken;
  }

  /**
   * Sleeps on the scheduler until `time`. The signal gets one listener for as long as it is
   * the one passed, not one per wait: a sender may wait thousands of times a second.
   */
  #sleepUntil(time: number, signal: AbortSignal | undefined): Promise<void> {
    this.#watch(signal);
    return new Promise((resolve, reject) => {
      this.#fail = reject;
      this.#call = this.#scheduler.at(time, () => {
        this.#call = undefined;
        this.#fail = undefined;
        resolve();
      });
    });
  }

  #yield(signal: AbortSignal | undefined): Promise<void> {
    this.#watch(signal);
    return new Promise((resolve, reject) => {
      this.#fail = reject;
      setImmediate(() => {
        this.#fail = undefined;
        if (signal?.aborted) reject(new AbortError(undefined, { cause: signal.reason }));
        else resolve();
      });
    });
  }

  #watch(signal: AbortSignal | undefined): void {
    if (signal === this.#signal) return;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  #onAbort = (): void => {
    this.#call?.cancel();
    this.#call = undefined;
    const fail = this.#fail;
    this.#fail = undefined;
    fail?.(new AbortError(undefined, { cause: this.#signal?.reason }));
  };
}
