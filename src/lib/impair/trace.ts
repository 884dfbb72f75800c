/**
 * Traces of measured links, replayed.
 *
 * - {@link LinkTrace}: Mahimahi's `mm-link` format (ravinet/mahimahi, src/frontend/link_queue.cc):
 *   one delivery opportunity per line, at that many milliseconds from the start, repeating
 *   with the last line's time as the period. An opportunity carries 1504 bytes (Mahimahi's
 *   1500-byte packet and its 4-byte TUN header), byte by byte: small datagrams share one, a
 *   large one spans several and leaves with its last byte; what an opportunity finds no
 *   datagram for is wasted, and a datagram arriving in millisecond t only uses later ones.
 * - {@link PathTrace}: a measured path, `time delay loss` per line: from that time on, datagrams
 *   take that delay and are lost with that probability; the last line holds after the end.
 */
import { InvalidArgumentError } from '../errors.js';

/** Bytes one opportunity carries: Mahimahi's PACKET_SIZE. */
export const OPPORTUNITY_BYTES = 1504;

/** Mahimahi's per-packet TUN header, counted as its link counts it. */
const TUN_HEADER = 4;

export class LinkTrace {
  readonly times: readonly number[];
  readonly period: number;
  /** The opportunity next to use: its index in `times`, the periods gone, the bytes used of it. */
  #index = 0;
  #base = 0;
  #used = 0;

  /** @throws {InvalidArgumentError} on a line that is not a time, times that go back, or a last time of 0 */
  constructor(text: string, name = 'trace') {
    const times: number[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      const t = line.trim();
      if (t === '') continue;
      if (!/^\d+$/.test(t))
        throw new InvalidArgumentError(
          `${name}, line ${i + 1}: '${t}' is not a whole number of milliseconds`,
        );
      const ms = Number(t);
      if (times.length > 0 && ms < (times.at(-1) as number)) {
        throw new InvalidArgumentError(
          `${name}, line ${i + 1}: ${ms} comes before ${times.at(-1)}: times must not go back`,
        );
      }
      times.push(ms);
    }
    if (times.length === 0 || (times.at(-1) as number) <= 0) {
      throw new InvalidArgumentError(`${name} has no opportunity after 0 ms (its last time is its period)`);
    }
    this.times = times;
    this.period = times.at(-1) as number;
  }

  #time(): number {
    return this.#base + (this.times[this.#index] as number);
  }

  #next(): void {
    this.#used = 0;
    if (++this.#index === this.times.length) {
      this.#index = 0;
      this.#base += this.period;
    }
  }

  /**
   * When a datagram of `size` bytes (its IP packet) entering the link at `at` ms leaves it, the
   * datagrams before it queued ahead (FIFO). Advances the link.
   */
  depart(at: number, size: number): number {
    const ms = Math.floor(at);
    // Opportunities up to this millisecond went by while nothing waited: wasted.
    if (this.#time() <= ms) {
      const skip = Math.floor((ms - this.#time()) / this.period);
      this.#base += skip * this.period;
      while (this.#time() <= ms) this.#next();
    }
    let need = size + TUN_HEADER;
    for (;;) {
      const use = Math.min(need, OPPORTUNITY_BYTES - this.#used);
      need -= use;
      this.#used += use;
      const t = this.#time();
      if (this.#used === OPPORTUNITY_BYTES) this.#next();
      if (need === 0) return t;
    }
  }
}

/** One line of a path trace: from `time` on, `delay` ms and `loss` (a fraction). */
interface PathPoint {
  time: number;
  delay: number;
  loss: number;
}

export class PathTrace {
  readonly points: readonly PathPoint[];

  /**
   * `time delay loss` per line (milliseconds, milliseconds, percent: `2%` or `2`, as --loss),
   * separated by spaces, tabs or commas; `#` lines and blank ones skipped; times in order.
   *
   * @throws {InvalidArgumentError} naming the line
   */
  constructor(text: string, name = 'trace') {
    const points: PathPoint[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      const t = line.trim();
      if (t === '' || t.startsWith('#')) continue;
      const words = t.split(/[\s,]+/);
      const where = `${name}, line ${i + 1}`;
      if (words.length !== 3) throw new InvalidArgumentError(`${where}: '${t}' is not 'time delay loss'`);
      const [time, delay] = words.slice(0, 2).map(Number) as [number, number];
      const lossText = words[2] as string;
      // Percent, with or without the sign, as tc and --loss read it.
      const loss = Number(lossText.endsWith('%') ? lossText.slice(0, -1) : lossText) / 100;
      if (!(time >= 0) || !(delay >= 0) || !(loss >= 0 && loss <= 1)) {
        throw new InvalidArgumentError(
          `${where}: '${t}' needs a time and a delay of 0 or more and a loss of 0-100%`,
        );
      }
      if (points.length > 0 && time < (points.at(-1) as PathPoint).time) {
        throw new InvalidArgumentError(`${where}: times must not go back`);
      }
      points.push({ time, delay, loss });
    }
    if (points.length === 0) throw new InvalidArgumentError(`${name} has no line`);
    this.points = points;
  }

  /** The delay and loss in force `elapsed` ms after the start (the first line's before it starts). */
  at(elapsed: number): { delay: number; loss: number } {
    let lo = 0;
    let hi = this.points.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.points[mid] as PathPoint).time <= elapsed) lo = mid;
      else hi = mid - 1;
    }
    return this.points[lo] as PathPoint;
  }
}
