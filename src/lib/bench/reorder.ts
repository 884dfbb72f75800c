/**
 * Reordering as RFC 4737 defines it: a datagram is reordered when its sequence number is
 * below the next one expected (one more than the highest so far), and its extent is how many
 * datagrams arrived between the first one with a higher number and it (section 4.2). Feed it
 * each datagram once, duplicates left out, in arrival order. Pure.
 */

/**
 * Runs of in-order arrivals back from the newest that the extent can reach (beyond, it is at
 * least as far as the oldest kept): 2^20 runs, each at least one datagram.
 */
const WINDOW = 1 << 20;

export class ReorderTracker {
  /**
   * The datagrams that raised the highest number, oldest first, as runs of consecutive numbers
   * (a flood in order is one run), each kept as its first number, that one's arrival index and
   * the run's length: a late datagram cannot fall inside a run (it would be a duplicate), so
   * the earliest higher arrival is always a run's first. A ring of typed arrays that doubles up
   * to WINDOW, then forgets the oldest (20 MB at most, and nothing allocated per datagram).
   */
  #seqs = new Float64Array(1024);
  #at = new Float64Array(1024);
  #lens = new Float64Array(1024);
  #start = 0;
  #length = 0;
  #arrivals = 0;
  #next = 0;
  /** Reordered datagrams. */
  reordered = 0;
  /** The largest extent seen. */
  maxExtent = 0;
  /** Extents summed, for their mean. */
  extentSum = 0;

  /** @param first the first sequence number expected (RFC 4737's NextExp at the start) */
  constructor(first = 0) {
    this.#next = first;
  }

  /** Takes the next arrival; returns its extent when it is reordered, else 0. */
  add(seq: number): number {
    const i = this.#arrivals++;
    if (seq >= this.#next) {
      this.#next = seq + 1;
      this.#push(seq, i);
      return 0;
    }
    // The first to arrive with a higher number raised the highest: the first of the earliest
    // run that starts higher (no run holds seq itself: it would be a duplicate).
    const mask = this.#seqs.length - 1;
    let lo = 0;
    let hi = this.#length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#seqs[(this.#start + mid) & mask] as number) > seq) hi = mid;
      else lo = mid + 1;
    }
    const extent = i - (this.#at[(this.#start + lo) & mask] as number);
    this.reordered++;
    this.extentSum += extent;
    if (extent > this.maxExtent) this.maxExtent = extent;
    return extent;
  }

  /** Whether an arrival numbered `seq` would be in order now. */
  inOrder(seq: number): boolean {
    return seq >= this.#next;
  }

  /**
   * Takes `n` arrivals numbered `seq` to `seq + n - 1`, in that order, when they are all in
   * order (`seq` at least the next expected): true. Otherwise nothing is taken and false
   * says so (take them one at a time).
   */
  addRun(seq: number, n: number): boolean {
    if (seq < this.#next || n < 1) return false;
    const i = this.#arrivals;
    this.#arrivals += n;
    this.#next = seq + n;
    this.#push(seq, i);
    // The rest of the run extends the record just made (or the one it joined).
    const last = (this.#start + this.#length - 1) & (this.#seqs.length - 1);
    this.#lens[last] = (this.#lens[last] as number) + n - 1;
    return true;
  }

  #push(seq: number, at: number): void {
    let capacity = this.#seqs.length;
    if (this.#length > 0) {
      const last = (this.#start + this.#length - 1) & (capacity - 1);
      const len = this.#lens[last] as number;
      if ((this.#seqs[last] as number) + len === seq) {
        this.#lens[last] = len + 1;
        return;
      }
    }
    if (this.#length === capacity) {
      if (capacity < WINDOW) {
        // Twice the room, the records in order from 0.
        const seqs = new Float64Array(capacity * 2);
        const ats = new Float64Array(capacity * 2);
        const lens = new Float64Array(capacity * 2);
        for (let j = 0; j < this.#length; j++) {
          seqs[j] = this.#seqs[(this.#start + j) & (capacity - 1)] as number;
          ats[j] = this.#at[(this.#start + j) & (capacity - 1)] as number;
          lens[j] = this.#lens[(this.#start + j) & (capacity - 1)] as number;
        }
        this.#seqs = seqs;
        this.#at = ats;
        this.#lens = lens;
        this.#start = 0;
        capacity *= 2;
      } else {
        // Full: the oldest goes.
        this.#start = (this.#start + 1) & (capacity - 1);
        this.#length--;
      }
    }
    const j = (this.#start + this.#length) & (capacity - 1);
    this.#seqs[j] = seq;
    this.#at[j] = at;
    this.#lens[j] = 1;
    this.#length++;
  }
}
