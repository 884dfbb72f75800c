/**
 * A worker's output: records are formatted in place into a chunk (as into a BatchWriter) and
 * posted to the main thread whole, once a chunk holds 64 KiB or at the end of the turn.
 */
import type { ReceiverOutput } from '../receiver.js';

/** Bytes a chunk holds before it is posted. */
const POST_BYTES = 64 * 1024;
/** The chunk formatters write into: it is kept, and what it holds is copied out to post. */
const CHUNK = 256 * 1024;

/** See the module comment. `saturated` is the main thread's word: its stdout is full. */
export class ChunkChannel implements ReceiverOutput {
  used = 0;
  #chunk = Buffer.allocUnsafeSlow(CHUNK);
  #records = 0;
  #scheduled = false;
  #paused = false;
  #onDrain: (() => void) | undefined;
  #post: (data: ArrayBuffer, records: number) => void;
  /** Records posted so far. */
  posted = 0;

  /** @param post hands a chunk over (transferring `data`) */
  constructor(post: (data: ArrayBuffer, records: number) => void) {
    this.#post = post;
  }

  /** Records formatted and not yet posted. */
  get held(): number {
    return this.#records;
  }

  get saturated(): boolean {
    return this.#paused;
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
    this.#onDrain?.();
  }

  room(n: number): Buffer {
    if (this.#chunk.length - this.used < n) {
      this.flush();
      if (this.#chunk.length < n) this.#chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK, n));
    }
    return this.#chunk;
  }

  commit(): boolean {
    this.#records++;
    if (this.used >= POST_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
    return true;
  }

  /** Posts what is held now. */
  flush(): void {
    if (this.#records === 0) return;
    const data = this.#chunk.buffer.slice(this.#chunk.byteOffset, this.#chunk.byteOffset + this.used);
    const records = this.#records;
    this.used = 0;
    this.#records = 0;
    this.posted += records;
    this.#post(data, records);
  }
}
