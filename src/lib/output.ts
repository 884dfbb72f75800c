/**
 * A bounded, batching writer: many small records become few large writes, and a destination
 * that stops reading costs a counted drop instead of unbounded memory.
 */
import { writev as fsWritev } from 'node:fs';
import type { Writable } from 'node:stream';

/** Options of {@link BatchWriter}. */
export interface BatchWriterOptions {
  /** Hand the batch to the destination once it holds this many bytes (default 64 KiB). */
  flushBytes?: number;
  /**
   * The most bytes held while the destination is not taking more (default 8 MiB); records
   * past it are dropped and counted.
   */
  maxBuffered?: number;
}

/**
 * Where formatters write bytes directly: `room(n)` starts a record and returns a buffer with at
 * least `n` bytes free from `used` on; the formatter writes there and moves `used` past what it
 * wrote. One `room()` call per record.
 */
export interface ByteSink {
  room(n: number): Buffer;
  used: number;
}

/** Bytes a chunk holds at least: large writes, few allocations. */
const CHUNK = 256 * 1024;

/**
 * Batches records into large writes to a stream or a file descriptor. Records are copied (or
 * formatted in place, through {@link ByteSink}) into large byte chunks; what was written in one
 * turn of the event loop goes out in one write, or sooner once `flushBytes` are held. While the
 * destination is busy, records accumulate up to `maxBuffered` bytes, then are dropped and
 * counted. A destination error (EPIPE when the reader went away) ends the writer: later
 * records are discarded and `error` holds the cause.
 *
 * Given a file descriptor, it writes with `fs.write` on libuv's thread pool, one write in
 * flight at a time: a reader that stalls then blocks a pool thread, not the event loop, so
 * the program keeps receiving and counts what it cannot print. (Node writes to pipes and
 * files synchronously on Linux, so a Writable such as process.stdout would stall everything.)
 */
export class BatchWriter implements ByteSink {
  readonly flushBytes: number;
  readonly maxBuffered: number;
  /** Where the next byte goes in the current chunk (see {@link ByteSink}). */
  used = 0;
  #chunk: Buffer;
  /** Where the record being written began, to undo it when it must be dropped. */
  #recordStart = 0;
  #stream: Writable | undefined;
  #fd: number | undefined;
  /** Filled chunks not yet handed over. */
  #full: Buffer[] = [];
  #fullBytes = 0;
  /** Chunks whose write completed, ready for reuse. */
  #spare: Buffer[] = [];
  #busy = false;
  /** A record was dropped since the destination last took a write: it is full. */
  #overflowed = false;
  #scheduled = false;
  #dropped = 0;
  #droppedBytes = 0;
  #accepted = 0;
  #error: Error | undefined;
  #onError: ((err: Error) => void) | undefined;
  #onDrain: (() => void) | undefined;
  #idle: (() => void)[] = [];

  /** @param target a stream, or a file descriptor to write with `fs.write` */
  constructor(target: Writable | number, options: BatchWriterOptions = {}) {
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.maxBuffered = options.maxBuffered ?? 8 * 1024 * 1024;
    this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK, this.flushBytes));
    if (typeof target === 'number') this.#fd = target;
    else {
      this.#stream = target;
      target.on('error', (err: Error) => this.#fail(err));
    }
  }

  /** Records dropped because the destination was not taking more. */
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
  /** Bytes held, not yet handed to the destination. */
  get buffered(): number {
    return this.#fullBytes + this.used;
  }
  /** The destination's error, once it failed. */
  get error(): Error | undefined {
    return this.#error;
  }
  /** True while the destination is busy and `maxBuffered` bytes are held: records would drop. */
  get saturated(): boolean {
    return this.#busy && (this.#overflowed || this.buffered >= this.maxBuffered);
  }

  /** Calls `listener` once when the destination fails (EPIPE, EBADF, ...). */
  onError(listener: (err: Error) => void): void {
    this.#onError = listener;
    if (this.#error) listener(this.#error);
  }

  /** Calls `listener` each time a write completes and the destination can take more. */
  onDrain(listener: () => void): void {
    this.#onDrain = listener;
  }

  /** Counts records the caller chose not to write (because {@link saturated}). */
  countDropped(records: number, bytes = 0): void {
    this.#dropped += records;
    this.#droppedBytes += bytes;
  }

  /** A buffer with at least `n` bytes free from `used` on (see {@link ByteSink}). */
  room(n: number): Buffer {
    if (this.#chunk.length - this.used < n) {
      if (this.used > 0) {
        this.#full.push(this.#chunk.subarray(0, this.used));
        this.#fullBytes += this.used;
      }
      const spare = this.#spare.pop();
      this.#chunk =
        spare && spare.length >= n ? spare : Buffer.allocUnsafe(Math.max(CHUNK, this.flushBytes, n));
      this.used = 0;
    }
    this.#recordStart = this.used;
    return this.#chunk;
  }

  /**
   * Ends the record begun by {@link room}: counts it and sees it written in time. Returns
   * false, undoing the record, when it had to be dropped (destination failed or full).
   */
  commit(): boolean {
    if (this.#error || (this.#busy && this.buffered > this.maxBuffered)) {
      this.#dropped++;
      this.#droppedBytes += this.used - this.#recordStart;
      this.used = this.#recordStart;
      this.#overflowed = true;
      return false;
    }
    this.#accepted++;
    if (this.#busy) return true;
    if (this.buffered >= this.flushBytes) this.#flush();
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
   * Queues one record. Returns false when it was dropped: the destination failed, or it is
   * busy and `maxBuffered` bytes are already held.
   */
  write(record: string | Uint8Array): boolean {
    if (this.#error || (this.#busy && this.buffered + record.length > this.maxBuffered)) {
      this.#dropped++;
      this.#droppedBytes += record.length;
      this.#overflowed = true;
      return false;
    }
    if (typeof record === 'string') {
      const buf = this.room(record.length * 3);
      this.used += buf.write(record, this.used);
      return this.commit();
    }
    const buf = this.room(record.length);
    buf.set(record, this.used);
    this.used += record.length;
    return this.commit();
  }

  /**
   * Writes what is held and resolves once the destination has taken it all (or failed). Does
   * not end a stream. With `deadlineMs`, resolves by then at the latest, to `false` when output
   * was still held (a reader that never comes back must not keep a program from exiting).
   */
  flush(deadlineMs?: number): Promise<boolean> {
    this.#flush();
    if (this.#error || (!this.#busy && this.buffered === 0)) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idle.push(done);
      if (deadlineMs !== undefined) {
        timer = setTimeout(() => {
          const i = this.#idle.indexOf(done);
          if (i >= 0) this.#idle.splice(i, 1);
          resolve(false);
        }, deadlineMs);
      }
    });
  }

  #flush(): void {
    if (this.#busy || this.#error) return;
    this.#overflowed = false;
    if (this.buffered === 0) {
      this.#settleIdle();
      return;
    }
    if (this.used > 0) {
      this.#full.push(this.#chunk.subarray(0, this.used));
      this.#fullBytes += this.used;
      // The handed-over chunk must not change until written: continue in another.
      this.#chunk = this.#spare.pop() ?? Buffer.allocUnsafe(Math.max(CHUNK, this.flushBytes));
      this.used = 0;
    }
    const parts = this.#full;
    this.#full = [];
    this.#fullBytes = 0;
    this.#busy = true;
    if (this.#fd !== undefined) {
      this.#writeFd(parts, () => {
        this.#busy = false;
        // The chunks come back for reuse: steady output allocates nothing.
        for (const part of parts) this.#recycle(part);
        this.#onDrain?.();
        this.#flush();
      });
      return;
    }
    const stream = this.#stream as Writable;
    let ok = true;
    try {
      // Once the stream has written the last part, all the chunks can be reused.
      const recycle = () => {
        for (const part of parts) this.#recycle(part);
      };
      for (const [i, part] of parts.entries())
        ok = stream.write(part, i === parts.length - 1 ? recycle : undefined) && ok;
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (ok) {
      this.#busy = false;
      this.#settleIdle();
    } else
      stream.once('drain', () => {
        this.#busy = false;
        this.#onDrain?.();
        this.#flush();
      });
  }

  /** Keeps a written chunk for reuse, up to what `maxBuffered` could ever hold. */
  #recycle(part: Buffer): void {
    const whole = Buffer.from(part.buffer, part.byteOffset, part.buffer.byteLength - part.byteOffset);
    if (part.byteOffset === 0 && whole.length >= CHUNK && this.#spare.length * CHUNK < this.maxBuffered) {
      this.#spare.push(whole);
    }
  }

  /** Writes `parts` in order with writev, resuming after partial writes, then calls `done`. */
  #writeFd(parts: Buffer[], done: () => void): void {
    fsWritev(this.#fd as number, parts, null, (err, written) => {
      if (err) {
        // A descriptor someone made non-blocking: try again shortly.
        if (err.code === 'EAGAIN') setTimeout(() => this.#writeFd(parts, done), 1);
        else this.#fail(err);
        return;
      }
      let left = written;
      let i = 0;
      while (i < parts.length && left >= (parts[i] as Buffer).length) left -= (parts[i++] as Buffer).length;
      if (i === parts.length) {
        done();
        return;
      }
      const rest = parts.slice(i);
      rest[0] = (rest[0] as Buffer).subarray(left);
      this.#writeFd(rest, done);
    });
  }

  #settleIdle(): void {
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  #fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    this.#full = [];
    this.#fullBytes = 0;
    this.used = 0;
    this.#settleIdle();
    this.#onError?.(err);
  }
}
