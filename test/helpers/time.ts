/** Virtual time for the scheduler: the clock moves only when the scheduler waits. */
import type { TimerSource } from '../../src/lib/index.js';

/** A clock and a timer source on it: each wait jumps the clock to the deadline, in a macrotask. */
export function virtualTime(start = 0) {
  let t = start;
  let fire: () => void = () => {};
  let pending: number | undefined;
  const timer: TimerSource = {
    resolution: 0.001,
    init(f) {
      fire = f;
    },
    arm(delayMs) {
      pending = t + Math.max(0, delayMs);
      setImmediate(() => {
        if (pending === undefined) return;
        t = Math.max(t, pending);
        pending = undefined;
        fire();
      });
    },
    disarm() {
      pending = undefined;
    },
  };
  return {
    now: () => t,
    timer,
    /** Moves the clock on by `ms` without waking anything. */
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Waits until `predicate` holds, polling every 5 ms, for at most `ms`; throws past it. */
export async function until(predicate: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
