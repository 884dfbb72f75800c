/**
 * Live intervals at a receiver: at each interval's end, the highest sequence number seen + 1
 * stands for where the sender's next interval begins, and what has not arrived yet below it
 * counts as lost. The final report replaces these with the sender's own boundaries.
 */
import type { IntervalFigures, ReceiveStats } from './receiver.js';

/**
 * Calls emit with interval k at the end of each, the first ending delayMs + intervalMs from
 * now (delayMs: the omitted start). Returns what stops it: given where the sender's last
 * interval ended (one past its last sequence number), it emits the interval in progress
 * first. The timers never hold the process.
 */
export function liveIntervals(
  stats: ReceiveStats,
  delayMs: number,
  intervalMs: number,
  emit: (interval: IntervalFigures) => void,
): (end?: number) => void {
  const boundaries: number[] = [];
  let ticker: NodeJS.Timeout | undefined;
  const tick = () => {
    boundaries.push(stats.highest + 1);
    const k = boundaries.length - 2;
    if (k >= 0) emit(stats.interval(k, boundaries[k], boundaries[k + 1]));
  };
  const first = setTimeout(() => {
    tick();
    ticker = setInterval(tick, intervalMs).unref();
  }, delayMs).unref();
  return (end?: number) => {
    clearTimeout(first);
    clearInterval(ticker);
    if (end === undefined || boundaries.length === 0) return;
    boundaries.push(end);
    const k = boundaries.length - 2;
    emit(stats.interval(k, boundaries[k], end, true));
    boundaries.length = 0;
  };
}
