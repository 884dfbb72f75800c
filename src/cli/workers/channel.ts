/**
 * A worker's output: records are formatted in place into a ring of shared memory, and each
 * run of whole records (a segment) is announced to the main thread in a small message; the
 * main thread copies it out and says so, and the space is reused. Posting the bytes themselves
 * cost far more: a fresh 64 KiB ArrayBuffer per post, transferred, took 250-350 µs on the
 * 2-core test machine (page faults and the transfer), the whole budget of 200k datagrams/s; a
 * small message takes about 3 µs. When the ring is full (the main thread far behind),
 * records go into a buffer of their own that is posted as a copy: slow, never lost.
 */
import type { ReceiverOutput } from '../receiver.js';
import type { WorkerMessage } from './protocol.js';

/** Bytes a segment holds before it is announced, unless the turn ends first. */
const SEGMENT_BYTES = 64 * 1024;
/** The spill buffer's least size. */
const SPILL = 256 * 1024;

/** See the module comment. `saturated` is the main thread's word, or a ring three-quarters full. */
export class RingChannel implements ReceiverOutput {
  used = 0;
  readonly #ring: Buffer;
  /** Where the segment being formatted began. */
  #start = 0;
  #records = 0;
  /** Segments announced and not yet copied out, oldest first. */
  #segments: { start: number; end: number }[] = [];
  #outstanding = 0;
  /** Records go here while the ring has no room; undefined otherwise. */
  #spill: Buffer | undefined;
  /** Where writing resumes in the ring once the spill is posted. */
  #ringAt = 0;
  #scheduled = false;
  #paused = false;
  #onDrain: (() => void) | undefined;
  #post: (message: WorkerMessage) => void;

  /**
   * @param ring the shared memory the main thread reads segments from
   * @param post hands a message to the main thread
   */
  constructor(ring: SharedArrayBuffer, post: (message: WorkerMessage) => void) {
    this.#ring = Buffer.from(ring);
    this.#post = post;
  }

  /** The main thread says freed space a quarter of the ring at a time: full past 3/4 out. */
  get saturated(): boolean {
    return this.#paused || this.#outstanding + this.used - this.#start > (this.#ring.length * 3) / 4;
  }

  onDrain(listener: () => void): void {
    this.#onDrain = listener;
  }

  /** The main thread's stdout is full: stop taking datagrams. */
  pause(): void {
    this.#paused = true;
  }

  /** It can take more. */
  resume(): void {
    this.#paused = false;
    if (!this.saturated) this.#onDrain?.();
  }

  /** The main thread has copied out the oldest `count` segments: their space is free. */
  release(count: number): void {
    for (const s of this.#segments.splice(0, count)) this.#outstanding -= s.end - s.start;
    if (!this.saturated) this.#onDrain?.();
  }

  room(n: number): Buffer {
    if (this.#spill !== undefined) {
      if (this.#spill.length - this.used >= n) return this.#spill;
      this.flush();
    }
    if (this.used + n <= this.#limit()) return this.#ring;
    this.flush();
    // Wrap to the start when what is still out lies beyond the room needed there.
    const oldest = this.#segments[0];
    if (oldest === undefined) {
      this.used = 0;
      this.#start = 0;
      if (n <= this.#ring.length) return this.#ring;
    } else if (oldest.start <= this.used && n < oldest.start) {
      this.used = 0;
      this.#start = 0;
      return this.#ring;
    }
    this.#ringAt = this.used;
    this.#spill = Buffer.allocUnsafe(Math.max(SPILL, n));
    this.used = 0;
    this.#start = 0;
    return this.#spill;
  }

  commit(): boolean {
    this.#records++;
    if (this.used - this.#start >= SEGMENT_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
    return true;
  }

  /** Announces (or, spilled, posts) what is held now. */
  flush(): void {
    const spill = this.#spill;
    if (spill !== undefined) {
      if (this.#records > 0) {
        // A copy: the message owns its bytes.
        this.#post({ type: 'out', data: spill.subarray(0, this.used), records: this.#records });
      }
      this.#spill = undefined;
      this.#records = 0;
      this.used = this.#ringAt;
      this.#start = this.#ringAt;
      return;
    }
    if (this.#records === 0) return;
    const segment = { start: this.#start, end: this.used };
    this.#segments.push(segment);
    this.#outstanding += segment.end - segment.start;
    this.#post({ type: 'segment', start: segment.start, end: segment.end, records: this.#records });
    this.#start = this.used;
    this.#records = 0;
  }

  /** Where the current segment must end: the oldest segment still out, when it lies ahead. */
  #limit(): number {
    const oldest = this.#segments[0];
    return oldest !== undefined && oldest.start >= this.#start ? oldest.start : this.#ring.length;
  }
}
