/**
 * The bench's clock: real time (the kernel's CLOCK_REALTIME, which stamps what the native
 * transport receives) to the microsecond. Node has real time only to the millisecond
 * (Date.now) and a finer clock that is monotonic (performance.now): the offset between them is
 * read at the instant Date.now ticks, so that the sum is real time within a few microseconds.
 */
import type { TransportKind } from '../transport.js';

/** Ticks of Date.now the offset is read at, at most (a millisecond each). */
const MAX_TICKS = 10;
/** An interval this narrow is good enough: no need to wait for more ticks. */
const GOOD_WIDTH_MS = 0.002;

export class RealtimeClock {
  /** Real time minus performance.now(), ms. */
  readonly offset: number;

  /** Half the width of the interval the offset was read in, ms: how far off it may be. */
  readonly uncertainty: number;

  /**
   * Reads the offset at up to {@link MAX_TICKS} ticks of Date.now (a millisecond each), keeping
   * the one read in the narrowest interval: each is bracketed by performance.now() before the
   * last call that saw the old millisecond and after the first that saw the new one. A thread
   * preempted in between (a busy machine, a process starting up) widens that interval, and its
   * reading is passed over; taking the first tick as it came left the offset off by a
   * preemption, 200-250 µs at times, added whole to every round trip timed against it.
   */
  constructor() {
    let best = 0;
    let width = Number.POSITIVE_INFINITY;
    for (let i = 0; i < MAX_TICKS && width > GOOD_WIDTH_MS; i++) {
      const before = Date.now();
      let tick = before;
      let prevStart = performance.now();
      let start = prevStart;
      let end = prevStart;
      while (tick === before) {
        prevStart = start;
        start = performance.now();
        tick = Date.now();
        end = performance.now();
      }
      // The millisecond began after the previous call started and before this one ended.
      if (end - prevStart < width) {
        width = end - prevStart;
        best = tick - (prevStart + end) / 2;
      }
    }
    this.offset = best;
    this.uncertainty = width / 2;
  }

  /** Real time now, ms since the epoch. */
  now(): number {
    return performance.now() + this.offset;
  }

  /**
   * A datagram's receive time in real time: the native transport's is the kernel's already;
   * node:dgram's is performance.timeOrigin + performance.now() at delivery.
   */
  received(receivedAt: number, transport: TransportKind): number {
    return transport === 'native' ? receivedAt : receivedAt - performance.timeOrigin + this.offset;
  }
}
