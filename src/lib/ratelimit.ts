/**
 * Per-source rate limiting for servers that answer: a token bucket per source in a table of
 * bounded size, so that a flood of spoofed sources costs bounded memory. A source the table
 * has forgotten (the least recently seen go first) starts again with a full bucket: with
 * `maxSources` buckets of `burst` tokens, no more than `maxSources x burst` answers can go
 * out beyond the rate, however many sources there are.
 */
import { InvalidArgumentError } from './errors.js';

/** Options of {@link SourceRateLimiter}. */
export interface SourceRateLimiterOptions {
  /** Answers per second per source. */
  rate: number;
  /** The most answers one source may have at once after a quiet spell (default: `rate`, at least 1). */
  burst?: number;
  /** The most sources remembered (default 4096). */
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
  /** Sources forgotten to make room for others. */
  get evicted(): number {
    return this.#evicted;
  }

  /** True when `source` may have one more answer now (and takes it); false when over its rate. */
  take(source: string): boolean {
    const now = this.#now();
    const buckets = this.#buckets;
    let bucket = buckets.get(source);
    if (bucket === undefined) {
      if (buckets.size >= this.maxSources) {
        // The least recently seen: a Map iterates in insertion order, and a seen source is
        // moved to the end below.
        buckets.delete(buckets.keys().next().value as string);
        this.#evicted++;
      }
      bucket = { tokens: this.burst, at: now };
    } else {
      buckets.delete(source);
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.rate) / 1000);
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
