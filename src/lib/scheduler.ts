/**
 * One scheduler for time: many deadlines behind one OS timer, as libuv keeps its timers. A
 * binary heap keyed by due time; the timer is re-armed to the earliest. Nothing blocks the
 * event loop. With the native addon the timer is a timerfd, so deadlines are met to tens of
 * microseconds; without it, Node's timers round to the millisecond.
 */
import { AbortError } from './errors.js';
import { nativeAddon } from './native.js';

/** A scheduled call; `cancel()` keeps it from running. */
export interface ScheduledCall {
  /** When it is due, in the scheduler's clock (milliseconds). */
  readonly at: number;
  cancel(): void;
}

interface Entry extends ScheduledCall {
  fn: () => void;
  seq: number;
  cancelled: boolean;
}

/** How the scheduler waits: arm(ms) fires `fire` once after about `ms`; disarm() stops it. */
export interface TimerSource {
  /** Smallest wait the source can tell apart, in milliseconds. */
  readonly resolution: number;
  init(fire: () => void): void;
  arm(delayMs: number): void;
  disarm(): void;
}

/** Node's own timers: millisecond resolution, always there. */
export function nodeTimerSource(): TimerSource {
  let timer: NodeJS.Timeout | undefined;
  let fire: () => void = () => {};
  return {
    resolution: 1,
    init(f) {
      fire = f;
    },
    arm(delayMs) {
      clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, delayMs));
    },
    disarm() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** The addon's timerfd: microsecond resolution. Undefined without the addon. */
function nativeTimerSource(): TimerSource | undefined {
  const addon = nativeAddon;
  if (!addon || typeof addon.timerInit !== 'function') return undefined;
  return {
    resolution: 0.02,
    init: (f) => addon.timerInit(f),
    arm: (delayMs) => addon.timerArm(delayMs),
    disarm: () => addon.timerDisarm(),
  };
}

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  /** The clock, in milliseconds (default `performance.now`). */
  now?: () => number;
  /** What wakes the scheduler (default: the addon's precise timer, else Node's timers). */
  timer?: TimerSource;
}

/**
 * Deadlines in a heap behind one timer. `at(time, fn)` runs `fn` once at `time` (the clock's
 * milliseconds) or as soon after as the loop allows; calls due together run in order of due
 * time, then of scheduling. A call that throws is reported as an uncaught exception, the way
 * a throwing setTimeout callback is, and does not stop the others.
 */
export class Scheduler {
  readonly now: () => number;
  /** The smallest wait the timer tells apart, in milliseconds. */
  readonly resolution: number;
  #timer: TimerSource;
  #heap: Entry[] = [];
  #seq = 0;
  /** When the timer is armed for, or undefined. */
  #armedFor: number | undefined;
  /** The timer source may be keeping the event loop alive: disarm it when nothing is due. */
  #live = false;
  #idleCheck: NodeJS.Immediate | undefined;

  constructor(options: SchedulerOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.#timer = options.timer ?? nativeTimerSource() ?? nodeTimerSource();
    this.resolution = this.#timer.resolution;
    this.#timer.init(() => this.#fire());
  }

  /** Calls scheduled and not yet run or cancelled. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `fn` once at `time` (milliseconds on {@link now}'s clock). */
  at(time: number, fn: () => void): ScheduledCall {
    const entry: Entry = {
      at: time,
      fn,
      seq: this.#seq++,
      cancelled: false,
      cancel: () => {
        if (entry.cancelled) return;
        entry.cancelled = true;
        this.#remove(entry);
      },
    };
    this.#push(entry);
    if (this.#heap[0] === entry) this.#arm();
    return entry;
  }

  /** Runs `fn` once after `ms` milliseconds. */
  after(ms: number, fn: () => void): ScheduledCall {
    return this.at(this.now() + ms, fn);
  }

  /**
   * Resolves at `time`; rejects with an {@link AbortError} when `signal` fires first.
   *
   * @throws {AbortError} `UDP_ERR_ABORTED`
   */
  sleepUntil(time: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        call.cancel();
        reject(new AbortError(undefined, { cause: signal?.reason }));
      };
      const call = this.at(time, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #arm(): void {
    const first = this.#heap[0];
    if (!first) {
      this.#armedFor = undefined;
      // Let go of the timer only if nothing is scheduled by the end of this turn: a caller
      // woken by the last deadline usually schedules the next one at once.
      if (this.#live && !this.#idleCheck) {
        this.#idleCheck = setImmediate(() => {
          this.#idleCheck = undefined;
          if (this.#heap.length === 0 && this.#live) {
            this.#live = false;
            this.#timer.disarm();
          }
        });
      }
      return;
    }
    if (this.#armedFor === first.at) return;
    this.#armedFor = first.at;
    this.#live = true;
    this.#timer.arm(first.at - this.now());
  }

  #fire(): void {
    this.#armedFor = undefined;
    // Never early: a timer that fired before the first deadline (Node's round to whole
    // milliseconds) is simply armed again.
    const now = this.now();
    let first = this.#heap[0];
    while (first && first.at <= now) {
      this.#pop();
      try {
        first.fn();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
      first = this.#heap[0];
    }
    this.#arm();
  }

  #less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    this.#up(heap.length - 1);
  }

  #pop(): Entry | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      this.#down(0);
    }
    return top;
  }

  #remove(entry: Entry): void {
    const heap = this.#heap;
    const i = heap.indexOf(entry);
    if (i < 0) return;
    const last = heap.pop() as Entry;
    if (i < heap.length) {
      heap[i] = last;
      this.#down(i);
      this.#up(i);
    }
    if (i === 0) this.#arm();
  }

  #up(i: number): void {
    const heap = this.#heap;
    const e = heap[i] as Entry;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as Entry;
      if (!this.#less(e, parent)) break;
      heap[i] = parent;
      i = p;
    }
    heap[i] = e;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const e = heap[i] as Entry;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.#less(heap[c + 1] as Entry, heap[c] as Entry)) c++;
      if (!this.#less(heap[c] as Entry, e)) break;
      heap[i] = heap[c] as Entry;
      i = c;
    }
    heap[i] = e;
  }
}

let shared: Scheduler | undefined;

/** The process's scheduler, made on first use (the addon's timer exists once per process). */
export function defaultScheduler(): Scheduler {
  shared ??= new Scheduler();
  return shared;
}
