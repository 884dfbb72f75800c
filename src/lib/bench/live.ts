/**
 * Live intervals at a receiver: at each interval's end, the highest sequence number seen + 1
 * stands for where the sender's next interval begins, and what has not arrived yet below it
 * counts as lost. The final report replaces these with the sender's own boundaries.
 */
import type { IntervalFigures, ReceiveStats } from './receiver.js';

/**
 * Calls emit with interval k at the end of each: the intervals of `stats` (from its first
 * arrival), or, until one came, from delayMs from now (delayMs: the omitted start). `now` is
 * the clock of the arrival times. Returns what stops it: given where the sender's last
 * interval ended (one past its last sequence number), it emits the interval in progress
 * first, if anything arrived in its time. The timers never hold the process.
 */
export function liveIntervals(
  stats: ReceiveStats,
  delayMs: number,
  intervalMs: number,
  emit: (interval: IntervalFigures) => void,
  now: () => number = Date.now,
): (end?: number) => void {
  const boundaries: number[] = [];
  const start = now() + delayMs;
  let timer: NodeJS.Timeout | undefined;
  // The next end of an interval, on the stats' own time line once it has one.
  const next = () => {
    const at = (stats.startMs ?? start) + boundaries.length * intervalMs;
    // A millisecond late: Node's timers may fire a little before the arrival clock's time.
    timer = setTimeout(tick, Math.max(0, at - now() + 1)).unref();
  };
  const tick = () => {
    boundaries.push(stats.highest + 1);
    const k = boundaries.length - 2;
    if (k >= 0) emit(stats.interval(k, boundaries[k], boundaries[k + 1]));
    next();
  };
  timer = setTimeout(() => {
    boundaries.push(stats.highest + 1);
    next();
  }, delayMs).unref();
  return (end?: number) => {
    clearTimeout(timer);
    if (end === undefined || boundaries.length === 0) return;
    boundaries.push(end);
    const k = boundaries.length - 2;
    // None arrived in its time: its few came in the one before (the report counts them there).
    const last = stats.interval(k, boundaries[k], end, true);
    if (last.received > 0) emit(last);
    boundaries.length = 0;
  };
}
