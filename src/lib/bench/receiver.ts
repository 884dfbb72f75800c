/**
 * What a bench receiver measures of one stream, per interval and in total: datagrams and bytes
 * received, duplicates, reordering (RFC 4737), loss and its runs (RFC 3357), interarrival
 * jitter (RFC 3550) and one-way delay. Pure: fed each datagram's sequence number, send time
 * (the sender's clock), receive time (this clock) and size; finished with what the sender
 * says it sent. A datagram is lost only if it never arrived by then: a late one is reordered,
 * and counted in the interval it was sent in.
 */
import { type Histogram, hdr } from '../hdr.js';
import { JitterTracker } from './jitter.js';
import { ReorderTracker } from './reorder.js';
import { type LossRuns, SequenceSet } from './sequence.js';

/** One interval: arrivals by when they arrived, loss by when the datagrams were sent. */
export interface IntervalFigures {
  /** Seconds from the start of the measurement. */
  start: number;
  end: number;
  /** Arrived in this interval (duplicates included), and their bytes. */
  received: number;
  bytes: number;
  duplicates: number;
  reordered: number;
  /** Sent in this interval (from the sender's count), and of those never arrived. */
  sent: number;
  lost: number;
  lossRuns: LossRuns;
  /** RFC 3550 jitter at the end of the interval, ms. */
  jitterMs: number;
  /** One-way delay of the datagrams that arrived in it, ms (see {@link DelayFigures}). */
  delay: DelayFigures | undefined;
}

/** One-way delay, ms: absolute when the clocks agree, else above the least seen. */
export interface DelayFigures {
  min: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

/** The whole stream. */
export interface StreamFigures {
  received: number;
  bytes: number;
  duplicates: number;
  reordered: number;
  reorderExtent: { max: number; mean: number };
  sent: number;
  lost: number;
  lossRuns: LossRuns;
  jitterMs: number;
  delay: DelayFigures | undefined;
  /** Datagrams numbered past what the sender says it sent: not its own. */
  unexpected: number;
}

interface Bucket {
  received: number;
  bytes: number;
  duplicates: number;
  reordered: number;
  jitterMs: number;
  delay: DelayHistogram;
}

/** Where a stream's delay histograms measure from: the first delay seen, shared by all. */
interface DelayOrigin {
  base?: number;
}

/** An HDR histogram of µs from 1 to an hour, to `digits` significant digits. */
export const latencyHistogram = (digits: 2 | 3) =>
  hdr().build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: digits,
  });

/**
 * Delays in µs: HDR histograms of how far each is above and below the stream's first delay, so
 * that a negative delay (clocks apart) fits and small ones keep their precision. An interval's
 * keeps 2 significant digits (13 KB, where 3 take 95), the stream's 3; the one below the
 * first is made when a delay falls there.
 */
class DelayHistogram {
  #above: Histogram;
  #below: Histogram | undefined;
  #origin: DelayOrigin;
  #digits: 2 | 3;
  #sum = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = Number.NEGATIVE_INFINITY;
  count = 0;
  /**
   * Equal delays in a row, recorded once with their count: the datagrams of one GRO buffer
   * share a receive time, and those of one sender's batch a send time, so a flood's delays
   * come in runs (recording each cost a quarter of the receiver's time at 1M datagrams/s).
   */
  #runUs = 0;
  #run = 0;

  constructor(origin: DelayOrigin, digits: 2 | 3) {
    this.#origin = origin;
    this.#digits = digits;
    this.#above = latencyHistogram(digits);
  }

  add(ms: number, n = 1): void {
    this.#origin.base ??= ms;
    const us = Math.round((ms - this.#origin.base) * 1000);
    if (us !== this.#runUs || this.#run === 0) {
      this.#flush();
      this.#runUs = us;
    }
    this.#run += n;
    this.#sum += n === 1 ? ms : ms * n;
    this.count += n;
    if (ms < this.#min) this.#min = ms;
    if (ms > this.#max) this.#max = ms;
  }

  /** Records the run of equal delays held back. */
  #flush(): void {
    const n = this.#run;
    if (n === 0) return;
    this.#run = 0;
    const us = this.#runUs;
    if (us >= 0) this.#above.recordValueWithCount(us + 1, n);
    else {
      this.#below ??= latencyHistogram(this.#digits);
      this.#below.recordValueWithCount(-us, n);
    }
  }

  /** Takes in another of the same stream's (the same origin). */
  merge(other: DelayHistogram): void {
    this.#flush();
    other.#flush();
    this.#above.add(other.#above);
    if (other.#below) {
      this.#below ??= latencyHistogram(this.#digits);
      this.#below.add(other.#below);
    }
    this.#sum += other.#sum;
    this.count += other.count;
    this.#min = Math.min(this.#min, other.#min);
    this.#max = Math.max(this.#max, other.#max);
  }

  get min(): number {
    return this.#min;
  }

  /** The delay at percentile `p` (0-100), ms. */
  #at(p: number): number {
    this.#flush();
    const rank = (p / 100) * this.count;
    const below = this.#below?.totalCount ?? 0;
    const base = this.#origin.base as number;
    if (rank <= below && this.#below) {
      // Among those below the first: the largest distances come first.
      return base - this.#below.getValueAtPercentile(100 * (1 - rank / below)) / 1000;
    }
    const above = this.#above.totalCount;
    return base + (this.#above.getValueAtPercentile((100 * (rank - below)) / above) - 1) / 1000;
  }

  /** The figures, each less `base` (0 for absolute delays). */
  figures(base: number): DelayFigures | undefined {
    if (this.count === 0) return undefined;
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    const clamp = (ms: number) => Math.max(this.#min, Math.min(this.#max, ms));
    return {
      min: round(this.#min - base),
      mean: round(this.#sum / this.count - base),
      p50: round(clamp(this.#at(50)) - base),
      p99: round(clamp(this.#at(99)) - base),
      max: round(this.#max - base),
    };
  }
}

/**
 * The furthest a sequence number may be above the highest seen and still count: 2^24, a
 * link down for 16 s at 1M datagrams a second. One further is not the sender's (a corrupted or
 * forged number): counted as unexpected, kept out of everything else.
 */
const MAX_AHEAD = 1 << 24;

export class ReceiveStats {
  readonly intervalMs: number;
  #startMs: number | undefined;
  /** Whether sender and receiver share a clock: delays absolute, else above the least. */
  readonly sharedClock: boolean;
  #first: number;
  #seen = new SequenceSet();
  #reorder: ReorderTracker;
  #jitter = new JitterTracker();
  #buckets: Bucket[] = [];
  #total = { received: 0, bytes: 0, duplicates: 0 };
  #origin: DelayOrigin = {};
  #delay = new DelayHistogram(this.#origin, 3);
  /** The latest arrival, ms: the last interval ends there rather than at its full width. */
  #lastArrival = Number.NEGATIVE_INFINITY;
  #farAhead = 0;

  /**
   * @param startMs when the measurement starts, on this clock: intervals count from it. By
   *   default, from the first arrival: the sender's intervals then line up with the
   *   receiver's, whatever the control exchange took (its retries, the sender's own start).
   * @param first the first sequence number counted (those before are left out, as --omit's)
   */
  constructor(options: { startMs?: number; intervalMs: number; sharedClock: boolean; first?: number }) {
    this.#startMs = options.startMs;
    this.intervalMs = options.intervalMs;
    this.sharedClock = options.sharedClock;
    this.#first = options.first ?? 0;
    this.#reorder = new ReorderTracker(this.#first);
  }

  /** When the intervals start, on this clock (ms); until the first arrival, undefined. */
  get startMs(): number | undefined {
    return this.#startMs;
  }

  #bucket(receivedMs: number): Bucket {
    this.#startMs ??= receivedMs;
    const k = Math.max(0, Math.floor((receivedMs - this.#startMs) / this.intervalMs));
    while (this.#buckets.length <= k) {
      this.#buckets.push({
        received: 0,
        bytes: 0,
        duplicates: 0,
        reordered: 0,
        jitterMs: this.#jitter.jitter,
        delay: new DelayHistogram(this.#origin, 2),
      });
    }
    return this.#buckets[k] as Bucket;
  }

  /**
   * One datagram of the stream. Returns false for one left out: before `first`, or too far
   * above the highest seen to be the sender's.
   */
  add(seq: number, sentMs: number, receivedMs: number, size: number): boolean {
    if (seq < this.#first) return false;
    if (seq > this.#seen.highest + MAX_AHEAD && this.#seen.highest >= 0) {
      this.#farAhead++;
      return false;
    }
    const b = this.#bucket(receivedMs);
    if (receivedMs > this.#lastArrival) this.#lastArrival = receivedMs;
    b.received++;
    b.bytes += size;
    this.#total.received++;
    this.#total.bytes += size;
    if (!this.#seen.add(seq)) {
      b.duplicates++;
      this.#total.duplicates++;
      return true;
    }
    if (this.#reorder.add(seq) > 0) b.reordered++;
    this.#jitter.add(sentMs, receivedMs);
    b.jitterMs = this.#jitter.jitter;
    const delay = receivedMs - sentMs;
    b.delay.add(delay);
    this.#delay.add(delay);
    return true;
  }

  /**
   * `n` datagrams numbered `seq` on, of `size` bytes each, sent at one time and received at
   * one time: the datagrams of one GRO buffer, as `add` would take each (and through `add`,
   * one by one, when any of them is a duplicate, out of order or not counted). Returns how
   * many were counted.
   */
  addRun(seq: number, n: number, sentMs: number, receivedMs: number, size: number): number {
    const highest = this.#seen.highest;
    const plain =
      seq >= this.#first &&
      (highest < 0 || seq + n - 1 <= highest + MAX_AHEAD) &&
      this.#reorder.inOrder(seq) &&
      this.#seen.addRun(seq, n);
    if (!plain) {
      let counted = 0;
      for (let k = 0; k < n; k++) if (this.add(seq + k, sentMs, receivedMs, size)) counted++;
      return counted;
    }
    const b = this.#bucket(receivedMs);
    if (receivedMs > this.#lastArrival) this.#lastArrival = receivedMs;
    b.received += n;
    b.bytes += n * size;
    this.#total.received += n;
    this.#total.bytes += n * size;
    this.#reorder.addRun(seq, n);
    this.#jitter.addRun(sentMs, receivedMs, n);
    b.jitterMs = this.#jitter.jitter;
    const delay = receivedMs - sentMs;
    b.delay.add(delay, n);
    this.#delay.add(delay, n);
    return n;
  }

  /** Sequence numbers seen so far (duplicates once). */
  get unique(): number {
    return this.#seen.size;
  }

  /** The highest sequence number seen, or -1. */
  get highest(): number {
    return this.#seen.highest;
  }

  /**
   * The intervals, the sender's interval k holding sequence numbers boundaries[k] to
   * boundaries[k + 1] - 1, and what arrived in its time. What arrived after the sender's last
   * interval (those in flight when it stopped) belongs to that last one, which then ends with
   * the last arrival; a last interval the arrivals did not fill ends with them too.
   */
  intervals(boundaries: readonly number[]): IntervalFigures[] {
    const m = boundaries.length - 1;
    const n = m > 0 ? m : this.#buckets.length;
    const out: IntervalFigures[] = [];
    for (let k = 0; k < n; k++) {
      const last = k === n - 1;
      const bucket = last && this.#buckets.length > n ? this.#merged(k) : this.#buckets[k];
      out.push(
        this.#interval(k, bucket, boundaries[k], boundaries[k + 1], last ? this.#lastArrival : undefined),
      );
    }
    return out;
  }

  /**
   * Interval k as it stands, live: arrivals in its time, and sequence numbers from to to - 1
   * as sent in it (none if either is missing). The last, when the arrivals stopped in it, ends
   * with them.
   */
  interval(k: number, from?: number, to?: number, last = false): IntervalFigures {
    return this.#interval(k, this.#buckets[k], from, to, last ? this.#lastArrival : undefined);
  }

  /** Buckets k and after, as one. */
  #merged(k: number): Bucket {
    const all = this.#buckets.slice(k);
    const delay = new DelayHistogram(this.#origin, 2);
    for (const b of all) delay.merge(b.delay);
    const sum = (f: (b: Bucket) => number) => all.reduce((a, b) => a + f(b), 0);
    return {
      received: sum((b) => b.received),
      bytes: sum((b) => b.bytes),
      duplicates: sum((b) => b.duplicates),
      reordered: sum((b) => b.reordered),
      jitterMs: (all.at(-1) as Bucket).jitterMs,
      delay,
    };
  }

  #interval(k: number, b: Bucket | undefined, from?: number, to?: number, endAt?: number): IntervalFigures {
    const base = this.sharedClock ? 0 : this.#delay.min;
    const sent = from !== undefined && to !== undefined ? to - from : 0;
    // One walk of the range: what never arrived, and so what did.
    const lossRuns =
      sent > 0 ? this.#seen.lossRuns(from as number, to as number) : { count: 0, lost: 0, max: 0 };
    const start = (k * this.intervalMs) / 1000;
    let end = ((k + 1) * this.intervalMs) / 1000;
    // Ends with the last arrival: later when it holds those after the sender's last interval,
    // sooner when the arrivals stopped before its end.
    if (endAt !== undefined) {
      const arrived = Math.ceil(endAt - (this.#startMs ?? endAt)) / 1000;
      if (k < this.#buckets.length - 1) end = Math.max(end, arrived);
      else if (k === this.#buckets.length - 1) end = Math.max(start + 0.001, Math.min(end, arrived));
    }
    return {
      start,
      end,
      received: b?.received ?? 0,
      bytes: b?.bytes ?? 0,
      duplicates: b?.duplicates ?? 0,
      reordered: b?.reordered ?? 0,
      sent,
      lost: lossRuns.lost,
      lossRuns,
      jitterMs: round3(b?.jitterMs ?? this.#jitter.jitter),
      delay: b?.delay.figures(base),
    };
  }

  /**
   * The stream's figures once the sender says it sent datagrams `first` to `end - 1` (`first`:
   * where its omitted start ended, if it had one): lost is what of them never arrived, never
   * below 0 nor above what was sent.
   */
  figures(end: number, first = this.#first): StreamFigures {
    const sent = Math.max(0, end - first);
    const lossRuns = this.#seen.lossRuns(first, first + sent);
    const arrived = sent - lossRuns.lost;
    const base = this.sharedClock ? 0 : this.#delay.min;
    const reorder = this.#reorder;
    return {
      received: this.#total.received,
      bytes: this.#total.bytes,
      duplicates: this.#total.duplicates,
      reordered: reorder.reordered,
      reorderExtent: {
        max: reorder.maxExtent,
        mean: reorder.reordered === 0 ? 0 : round3(reorder.extentSum / reorder.reordered),
      },
      sent,
      lost: lossRuns.lost,
      lossRuns,
      jitterMs: round3(this.#jitter.jitter),
      delay: this.#delay.figures(base),
      unexpected: this.#seen.size - arrived + this.#farAhead,
    };
  }
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
