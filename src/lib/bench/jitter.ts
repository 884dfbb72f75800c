/**
 * Interarrival jitter as RFC 3550 (section 6.4.1 and appendix A.8) computes it for RTP: for
 * consecutive arrivals i and j, D = (Rj - Ri) - (Sj - Si), and J += (|D| - J) / 16. Times in
 * milliseconds; the sender's and receiver's clocks need not agree (only differences count).
 * Pure.
 */
export class JitterTracker {
  #last: { sent: number; received: number } | undefined;
  /** The running estimate, ms. */
  jitter = 0;

  add(sent: number, received: number): void {
    const last = this.#last;
    if (last !== undefined) {
      const d = received - last.received - (sent - last.sent);
      this.jitter += (Math.abs(d) - this.jitter) / 16;
      last.sent = sent;
      last.received = received;
    } else this.#last = { sent, received };
  }

  /** `n` arrivals sent at one time and received at one time (a GRO buffer of one batch). */
  addRun(sent: number, received: number, n: number): void {
    this.add(sent, received);
    // The others differ by nothing: D = 0, each as add() would do it.
    let j = this.jitter;
    for (let k = 1; k < n; k++) j += (0 - j) / 16;
    this.jitter = j;
  }
}
