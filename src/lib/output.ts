/**
 * A bounded, batching writer: many small records become few large writes, and a destination
 * that stops reading costs a counted drop instead of unbounded memory.
 */
import { write as fsWrite } from 'node:fs';
import type { Writable } from 'node:stream';

/** Options of {@link BatchWriter}. */
export interface BatchWriterOptions {
  /** Hand the batch to the stream once it holds this many bytes (default 64 KiB). */
  flushBytes?: number;
  /**
   * The most bytes held while the stream is not draining (default 8 MiB); records past it
   * are dropped and counted.
   */
  maxBuffered?: number;
}

/**
 * Batches records (strings or bytes) into large writes to a stream or a file descriptor. Records written in the
 * same turn of the event loop go out together; the batch is written when it reaches
 * `flushBytes` or when the turn ends. While the stream asks to wait (`write()` returned
 * false), records accumulate up to `maxBuffered` bytes, then are dropped and counted.
 * A stream error (EPIPE when the reader went away) ends the writer: later records are
 * discarded and `error` holds the cause.
 *
 * Given a file descriptor, it writes with `fs.write` on libuv's thread pool, one write in
 * flight at a time: a reader that stalls then blocks a pool thread, not the event loop, so
 * the program keeps receiving and counts what it cannot print. (Node writes to pipes and
 * files synchronously on Linux, so a Writable such as process.stdout would stall everything.)
 */
export class BatchWriter {
  readonly flushBytes: number;
  readonly maxBuffered: number;
  #stream: Writable | undefined;
  #fd: number | undefined;
  #pending: (string | Uint8Array)[] = [];
  #pendingBytes = 0;
  #waitingForDrain = false;
  #scheduled = false;
  #dropped = 0;
  #droppedBytes = 0;
  #accepted = 0;
  #error: Error | undefined;
  #onError: ((err: Error) => void) | undefined;
  #idle: (() => void)[] = [];

  /** @param target a stream, or a file descriptor to write with `fs.write` */
  constructor(target: Writable | number, options: BatchWriterOptions = {}) {
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.maxBuffered = options.maxBuffered ?? 8 * 1024 * 1024;
    if (typeof target === 'number') this.#fd = target;
    else {
      this.#stream = target;
      target.on('error', (err: Error) => this.#fail(err));
    }
  }

  /** True while the destination is not taking more and `maxBuffered` bytes are held. */
  get saturated(): boolean {
    return this.#waitingForDrain && this.#pendingBytes >= this.maxBuffered;
  }

  /** Counts records the caller chose not to write (because {@link saturated}). */
  countDropped(records: number, bytes = 0): void {
    this.#dropped += records;
    this.#droppedBytes += bytes;
  }

  /** Records dropped because the destination was not reading. */
  get dropped(): number {
    return this.#dropped;
  }
  /** Bytes of the dropped records. */
  get droppedBytes(): number {
    return this.#droppedBytes;
  }
  /** Records accepted for writing (not dropped). */
  get accepted(): number {
    return this.#accepted;
  }
  /** Bytes held, not yet handed to the stream. */
  get buffered(): number {
    return this.#pendingBytes;
  }
  /** The stream's error, once it failed. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Calls `listener` once when the stream fails (EPIPE, EBADF, ...). */
  onError(listener: (err: Error) => void): void {
    this.#onError = listener;
    if (this.#error) listener(this.#error);
  }

  /**
   * Queues one record. Returns false when it was dropped: the destination failed, or it is
   * not reading and `maxBuffered` bytes are already held.
   */
  write(record: string | Uint8Array): boolean {
    if (this.#error) return false;
    // A string's UTF-8 size is at least its length; the estimate only bounds memory.
    const size = record.length;
    if (this.#waitingForDrain && this.#pendingBytes + size > this.maxBuffered) {
      this.#dropped++;
      this.#droppedBytes += size;
      return false;
    }
    this.#pending.push(record);
    this.#pendingBytes += size;
    this.#accepted++;
    if (this.#waitingForDrain) return true;
    if (this.#pendingBytes >= this.flushBytes) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    }
    return true;
  }

  /**
   * Writes what is held and resolves once the stream has taken it all (or failed). Does not
   * end the stream.
   */
  flush(): Promise<void> {
    this.#flush();
    if (this.#error || (!this.#waitingForDrain && this.#pending.length === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #flush(): void {
    if (this.#waitingForDrain || this.#error) return;
    if (this.#pending.length === 0) {
      this.#settleIdle();
      return;
    }
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    const chunk = batch.every((r) => typeof r === 'string')
      ? (batch as string[]).join('')
      : Buffer.concat(batch.map((r) => (typeof r === 'string' ? Buffer.from(r) : r)));
    if (this.#fd !== undefined) {
      this.#waitingForDrain = true;
      this.#writeFd(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, 0);
      return;
    }
    const stream = this.#stream as Writable;
    let ok: boolean;
    try {
      ok = stream.write(chunk);
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (!ok) {
      this.#waitingForDrain = true;
      stream.once('drain', () => {
        this.#waitingForDrain = false;
        this.#flush();
      });
      return;
    }
    if (this.#pending.length === 0) this.#settleIdle();
  }

  /** Writes `buf` from `offset` on, then whatever accumulated meanwhile. */
  #writeFd(buf: Buffer, offset: number): void {
    fsWrite(this.#fd as number, buf, offset, buf.length - offset, null, (err, written) => {
      if (err) {
        // A descriptor someone made non-blocking: try again shortly.
        if (err.code === 'EAGAIN') setTimeout(() => this.#writeFd(buf, offset), 1);
        else this.#fail(err);
        return;
      }
      if (offset + written < buf.length) {
        this.#writeFd(buf, offset + written);
        return;
      }
      this.#waitingForDrain = false;
      this.#flush();
    });
  }

  #settleIdle(): void {
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#settleIdle();
    this.#onError?.(err);
  }
}
