/**
 * Which sequence numbers of a stream have arrived: a bitmap in chunks, made as numbers are
 * seen, so that memory follows what was sent (one bit a datagram) and a duplicate is known
 * however late it comes. Pure.
 */

/** Sequence numbers per chunk: 2^16 bits, 8 KiB. */
const CHUNK_BITS = 1 << 16;
const WORDS = CHUNK_BITS / 32;

/** A loss run: consecutive sequence numbers that never arrived (RFC 3357's loss burst). */
export interface LossRuns {
  /** How many runs. */
  count: number;
  /** Datagrams lost in them, in all. */
  lost: number;
  /** The longest run. */
  max: number;
}

/** The set of sequence numbers seen. Numbers are integers from 0 up to 2^53 - 1. */
export class SequenceSet {
  #chunks = new Map<number, Uint32Array>();
  /** The chunks' numbers in order, so that a walk skips the gaps between them at once. */
  #order: number[] = [];
  #size = 0;
  #highest = -1;

  /** Distinct numbers seen. */
  get size(): number {
    return this.#size;
  }

  /** The highest number seen, or -1. */
  get highest(): number {
    return this.#highest;
  }

  /** Adds `seq`: true when it is new, false when it was seen before (a duplicate). */
  add(seq: number): boolean {
    const chunk = Math.floor(seq / CHUNK_BITS);
    let words = this.#chunks.get(chunk);
    if (words === undefined) {
      words = new Uint32Array(WORDS);
      this.#chunks.set(chunk, words);
      const order = this.#order;
      if (order.length === 0 || chunk > (order.at(-1) as number)) order.push(chunk);
      else order.splice(this.#firstAtOrAfter(chunk), 0, chunk);
    }
    const bit = seq - chunk * CHUNK_BITS;
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    const w = words[word] as number;
    if ((w & mask) !== 0) return false;
    words[word] = w | mask;
    this.#size++;
    if (seq > this.#highest) this.#highest = seq;
    return true;
  }

  /**
   * Adds `seq` to `seq + n - 1` when none of them was seen: true. When one was, nothing is
   * added and false says so (take them one at a time to know which are duplicates).
   */
  addRun(seq: number, n: number): boolean {
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < n; ) {
        const at = seq + k;
        const chunk = Math.floor(at / CHUNK_BITS);
        const span = Math.min(n - k, (chunk + 1) * CHUNK_BITS - at);
        const words = this.#chunks.get(chunk);
        if (pass === 0) {
          if (words !== undefined) {
            for (let bit = at - chunk * CHUNK_BITS, end = bit + span; bit < end; bit++) {
              if (((words[bit >>> 5] as number) & (1 << (bit & 31))) !== 0) return false;
            }
          }
        } else if (span > 0) {
          this.add(at); // makes the chunk when new
          const w = this.#chunks.get(chunk) as Uint32Array;
          for (
            let bit = at - chunk * CHUNK_BITS + 1, end = at - chunk * CHUNK_BITS + span;
            bit < end;
            bit++
          ) {
            w[bit >>> 5] = (w[bit >>> 5] as number) | (1 << (bit & 31));
          }
          this.#size += span - 1;
          if (at + span - 1 > this.#highest) this.#highest = at + span - 1;
        }
        k += span;
      }
    }
    return true;
  }

  /** Where in #order the first chunk at or after `chunk` is. */
  #firstAtOrAfter(chunk: number): number {
    const order = this.#order;
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((order[mid] as number) < chunk) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first number of the next chunk made at or after `chunk`, at most `to`. */
  #nextMade(chunk: number, to: number): number {
    const next = this.#order[this.#firstAtOrAfter(chunk)];
    return next === undefined ? to : Math.min(to, next * CHUNK_BITS);
  }

  has(seq: number): boolean {
    const chunk = Math.floor(seq / CHUNK_BITS);
    const words = this.#chunks.get(chunk);
    if (words === undefined) return false;
    const bit = seq - chunk * CHUNK_BITS;
    return ((words[bit >>> 5] as number) & (1 << (bit & 31))) !== 0;
  }

  /** How many of `from` to `to - 1` were seen: those not in a loss run. */
  countIn(from: number, to: number): number {
    const lo = Math.max(0, from);
    return to > lo ? to - lo - this.lossRuns(lo, to).lost : 0;
  }

  /** The runs of numbers not seen among `from` to `to - 1`. */
  lossRuns(from: number, to: number): LossRuns {
    const runs: LossRuns = { count: 0, lost: 0, max: 0 };
    let run = 0;
    const close = () => {
      if (run === 0) return;
      runs.count++;
      runs.lost += run;
      if (run > runs.max) runs.max = run;
      run = 0;
    };
    for (let seq = Math.max(0, from); seq < to; ) {
      const chunk = Math.floor(seq / CHUNK_BITS);
      const end = Math.min(to, (chunk + 1) * CHUNK_BITS);
      const words = this.#chunks.get(chunk);
      if (words === undefined) {
        // Nothing seen up to the next chunk made: one run across the gap, however long.
        const next = this.#nextMade(chunk, to);
        run += next - seq;
        seq = next;
        continue;
      }
      for (; seq < end; seq++) {
        const bit = seq - chunk * CHUNK_BITS;
        const w = words[bit >>> 5] as number;
        // A whole word seen, or a whole word missing, at once.
        if ((bit & 31) === 0 && seq + 32 <= end && (w === 0xffffffff || w === 0)) {
          if (w === 0) run += 32;
          else close();
          seq += 31;
          continue;
        }
        if ((w & (1 << (bit & 31))) !== 0) close();
        else run++;
      }
    }
    close();
    return runs;
  }
}
