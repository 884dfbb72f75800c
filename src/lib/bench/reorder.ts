/**
 * Reordering as RFC 4737 defines it: a datagram is reordered when its sequence number is
 * below the next one expected (one more than the highest so far), and its extent is how many
 * datagrams arrived between the first one with a higher number and it (section 4.2). Feed it
 * each datagram once, duplicates left out, in arrival order. Pure.
 */

/** Datagrams back from the newest that the extent can reach (beyond, it is at least this). */
const WINDOW = 1 << 20;

export class ReorderTracker {
  /** Arrival indices and numbers of the datagrams that raised the highest number, in order. */
  #seqs: number[] = [];
  #at: number[] = [];
  #head = 0;
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
      this.#seqs.push(seq);
      this.#at.push(i);
      if (this.#seqs.length - this.#head > WINDOW) this.#head++;
      if (this.#head > WINDOW) {
        this.#seqs = this.#seqs.slice(this.#head);
        this.#at = this.#at.slice(this.#head);
        this.#head = 0;
      }
      return 0;
    }
    // The first to arrive with a higher number raised the highest: the earliest such record.
    let lo = this.#head;
    let hi = this.#seqs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#seqs[mid] as number) > seq) hi = mid;
      else lo = mid + 1;
    }
    const extent = i - (this.#at[lo] as number);
    this.reordered++;
    this.extentSum += extent;
    if (extent > this.maxExtent) this.maxExtent = extent;
    return extent;
  }
}
