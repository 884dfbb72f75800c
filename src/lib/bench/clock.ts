/**
 * The bench's clock: real time (the kernel's CLOCK_REALTIME, which stamps what the native
 * transport receives) to the microsecond. Node has real time only to the millisecond
 * (Date.now) and a finer clock that is monotonic (performance.now): the offset between them is
 * read at the instant Date.now ticks, so that the sum is real time within a few microseconds.
 */
import type { TransportKind } from '../transport.js';

export class RealtimeClock {
  /** Real time minus performance.now(), ms. */
  readonly offset: number;

  constructor() {
    let best = Number.NEGATIVE_INFINITY;
    // Three ticks (3 ms at most): at each, real time is the new millisecond, just begun.
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      let tick = before;
      let at = 0;
      while (tick === before) {
        tick = Date.now();
        at = performance.now();
      }
      best = Math.max(best, tick - at);
    }
    this.offset = best;
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
