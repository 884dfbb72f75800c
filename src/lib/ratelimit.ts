/**
 * Per-source rate limiting for servers that answer: a token bucket per source in a table of
 * bounded size, so that a flood of spoofed sources costs bounded memory. A source is forgotten
 * only once its bucket has refilled, when remembering it no longer changes anything (a new
 * bucket starts full too): so no flood of other sources can hand one source a fresh burst, and
 * each is answered at most `burst` at once and `rate` a second, however many sources there
 * are. When the table is full of sources that still count against their limit, a new source
 * is refused until the least recently seen has refilled, as a NAT refuses a new flow when its
 * table is full rather than push out a live one.
 */
import { InvalidArgumentError } from './errors.js';

/** Options of {@link SourceRateLimiter}. */
export interface SourceRateLimiterOptions {
  /** Answers per second per source. */
  rate: number;
  /** The most answers one source may have at once after a quiet spell (default: `rate`, at least 1). */
  burst?: number;
  /**
   * The most sources remembered (default 4096). A flood of more than `maxSources x rate` new
   * sources a second (each sending once) keeps it full of sources that still count, and new
   * ones are refused until one has refilled.
   */
  maxSources?: number;
  /** The clock, in milliseconds (default `performance.now`). */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceRateLimiter {
  readonly rate: number;
  readonly burst: number;
  readonly maxSources: number;
  #now: () => number;
  #buckets = new Map<string, Bucket>();
  #limited = 0;
  #evicted = 0;
  #refusedNew = 0;

  /** @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a rate, burst or size that is not positive */
  constructor(options: SourceRateLimiterOptions) {
    const { rate } = options;
    if (!(Number.isFinite(rate) && rate > 0)) {
      throw new InvalidArgumentError(`rate ${rate} is not a positive number of answers per second`);
    }
    const burst = options.burst ?? Math.max(1, rate);
    if (!(Number.isFinite(burst) && burst >= 1)) {
      throw new InvalidArgumentError(`burst ${burst} is not a number of answers of at least 1`);
    }
    const maxSources = options.maxSources ?? 4096;
    if (!(Number.isSafeInteger(maxSources) && maxSources > 0)) {
      throw new InvalidArgumentError(`maxSources ${maxSources} is not a positive integer`);
    }
    this.rate = rate;
    this.burst = burst;
    this.maxSources = maxSources;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Sources remembered now (never more than `maxSources`). */
  get sources(): number {
    return this.#buckets.size;
  }
  /** Calls of {@link take} refused so far. */
  get limited(): number {
    return this.#limited;
  }
  /** Sources forgotten to make room for others (each with its bucket full again). */
  get evicted(): number {
    return this.#evicted;
  }
  /**
   * Calls of {@link take} from a new source refused because the table was full and its least
   * recently seen source had not refilled yet (counted in {@link limited} too).
   */
  get refusedNew(): number {
    return this.#refusedNew;
  }

  /** The tokens `bucket` holds at `now`: what it had, refilled at the rate, at most a burst. */
  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.rate) / 1000);
  }

  /** True when `source` may have one more answer now (and takes it); false when over its rate. */
  take(source: string): boolean {
    const now = this.#now();
    const buckets = this.#buckets;
    let bucket = buckets.get(source);
    if (bucket === undefined) {
      if (buckets.size >= this.maxSources) {
        // The least recently seen: a Map iterates in insertion order, and a seen source is
        // moved to the end below. Forgotten only with its bucket full again: one that still
        // counts, forgotten, would come back full, and a flood of others would reset it at will.
        const [oldest, old] = buckets.entries().next().value as [string, Bucket];
        if (this.#refilled(old, now) < this.burst - 1e-9) {
          this.#refusedNew++;
          this.#limited++;
          return false;
        }
        buckets.delete(oldest);
        this.#evicted++;
      }
      bucket = { tokens: this.burst, at: now };
    } else {
      buckets.delete(source);
      bucket.tokens = this.#refilled(bucket, now);
      bucket.at = now;
    }
    buckets.set(source, bucket);
    // (A hair of slack: ten refills of 0.1 make 1, not 0.9999999.)
    if (bucket.tokens >= 1 - 1e-9) {
      bucket.tokens -= 1;
      return true;
    }
    this.#limited++;
    return false;
  }
}
