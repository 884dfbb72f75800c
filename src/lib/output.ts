/**
 * A bounded, batching writer: many small records become few large writes, and a destination
 * that stops reading makes its producer wait instead of growing memory.
 */
import { fstatSync, writev as fsWritev, writevSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** Options of {@link BatchWriter}. */
export interface BatchWriterOptions {
  /** Hand the batch to the destination once it holds this many bytes (default 64 KiB). */
  flushBytes?: number;
  /**
   * Bytes held, not yet handed to the destination, at which the writer is {@link
   * BatchWriter.saturated} (default 8 MiB): its producer should stop (e.g. pause reception)
   * until {@link BatchWriter.onDrain} calls back. Records keep being accepted past it.
   */
  maxBuffered?: number;
  /**
   * The most bytes held at all (default 4 x `maxBuffered`). Past it records are dropped and
   * counted in {@link BatchWriter.dropped}: only a producer that cannot stop ever meets it.
   */
  hardLimit?: number;
  /**
   * Given a file descriptor: write it on the calling thread, as C's stdio does, rather than on
   * libuv's thread pool. Default: true for a regular file, false for anything else (a
   * terminal, a pipe, a device may block for as long as its reader pleases). A write to a
   * regular file only copies into the page cache; on a busy core, a pool thread doing it got
   * the CPU too late, and its output piled up while the caller kept reading (at a flood's
   * start: 8 MiB held, reception paused, the kernel dropping).
   */
  sync?: boolean;
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

/** Options of {@link BatchWriter.flush}. */
export interface FlushOptions {
  /** Stops waiting when it fires: the flush resolves to false and the output stays held. */
  signal?: AbortSignal | undefined;
}

/** Bytes a chunk holds at least: large writes, few allocations. */
const CHUNK = 256 * 1024;

/**
 * Batches records into large writes to a stream or a file descriptor. Records are copied (or
 * formatted in place, through {@link ByteSink}) into large byte chunks; what was written in one
 * turn of the event loop goes out in one write, or sooner once `flushBytes` are held.
 *
 * Every record is accounted for: it is {@link written} once the destination has taken all of
 * it, {@link pending} until then, or {@link dropped} (past `hardLimit`, when the destination
 * failed, or when the caller {@link abandon}ed it). `written + pending + dropped` is every
 * record ever offered. A destination error (EPIPE when the reader went away, ENOSPC) ends the
 * writer: what it held is dropped, later records are dropped, and `error` holds the cause.
 *
 * Given a file descriptor of a regular file, it writes on the calling thread (see
 * {@link BatchWriterOptions.sync}); any other descriptor with `fs.writev` on libuv's thread
 * pool, one write in flight at a time: a destination that blocks then blocks a pool thread,
 * not the event loop.
 * (Node writes to pipes and files synchronously on Linux, so a Writable such as process.stdout
 * would stall everything.)
 */
export class BatchWriter implements ByteSink {
  readonly flushBytes: number;
  readonly maxBuffered: number;
  readonly hardLimit: number;
  /** Where the next byte goes in the current chunk (see {@link ByteSink}). */
  used = 0;
  #chunk: Buffer;
  /**
   * Where the current chunk's bytes not yet handed over begin: a flush hands over what lies
   * before and the chunk goes on filling after it, so its memory is used whole.
   */
  #chunkStart = 0;
  /** Records in the current chunk since `#chunkStart`. */
  #chunkRecords = 0;
  /** Where the record being written began, to undo it when it must be dropped. */
  #recordStart = 0;
  #stream: Writable | undefined;
  #fd: number | undefined;
  /** Writes `#fd` on the calling thread (see {@link BatchWriterOptions.sync}). */
  #sync = false;
  /** Parts of chunks not yet handed over, the chunk each lies in, and the records each holds. */
  #full: Buffer[] = [];
  #fullOwners: Owner[] = [];
  #fullRecords: number[] = [];
  /**
   * Parts of each chunk not yet written: a chunk is reused once none is left and it is no
   * longer the current one. Memory written once is fast to write again; fresh memory costs a
   * page fault at its first write of each page (see {@link reserve}).
   */
  #parts = new Map<Buffer, number>();
  #fullBytes = 0;
  /** Records handed to the destination whose write has not completed. */
  #inflightRecords = 0;
  /** Chunks whose write completed, ready for reuse. */
  #spare: Buffer[] = [];
  #busy = false;
  #scheduled = false;
  #written = 0;
  #dropped = 0;
  #droppedBytes = 0;
  #error: Error | undefined;
  #ended = false;
  #onError: ((err: Error) => void) | undefined;
  #onDrain: (() => void) | undefined;
  #idle: (() => void)[] = [];

  /** @param target a stream, or a file descriptor to write with `fs.writev` */
  constructor(target: Writable | number, options: BatchWriterOptions = {}) {
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.maxBuffered = options.maxBuffered ?? 8 * 1024 * 1024;
    this.hardLimit = Math.max(options.hardLimit ?? this.maxBuffered * 4, this.maxBuffered);
    this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK, this.flushBytes));
    if (typeof target === 'number') {
      this.#fd = target;
      this.#sync = options.sync ?? isRegularFile(target);
    } else {
      this.#stream = target;
      target.on('error', (err: Error) => this.#fail(err));
    }
  }

  /** Records the destination has taken whole. */
  get written(): number {
    return this.#written;
  }
  /**
   * Makes chunks for `bytes` of output now, each written to once, so that the first burst of
   * records writes to memory the system has already given: a page of fresh memory costs a
   * page fault at its first write (20 us and more on a virtual machine), which at 200k records
   * of 1 KB a second outlasts the records themselves. Bounded by `maxBuffered`.
   */
  reserve(bytes: number): void {
    const want = Math.min(bytes, this.maxBuffered);
    const size = Math.max(CHUNK, this.flushBytes);
    this.#chunk.fill(0);
    while ((this.#spare.length + 1) * size < want) this.#spare.push(Buffer.allocUnsafe(size).fill(0));
  }

  /** Records held or being written: neither written yet nor dropped. */
  get pending(): number {
    return this.#chunkRecords + this.#fullRecords.reduce((a, b) => a + b, 0) + this.#inflightRecords;
  }
  /** Records discarded: past `hardLimit`, after the destination failed, or abandoned. */
  get dropped(): number {
    return this.#dropped;
  }
  /** Bytes of the dropped records (of those whose size was known). */
  get droppedBytes(): number {
    return this.#droppedBytes;
  }
  /** Bytes held, not yet handed to the destination. */
  get buffered(): number {
    return this.#fullBytes + this.used - this.#chunkStart;
  }
  /** The destination's error, once it failed. */
  get error(): Error | undefined {
    return this.#error;
  }
  /** True once `maxBuffered` bytes are held: the producer should wait for {@link onDrain}. */
  get saturated(): boolean {
    return this.buffered >= this.maxBuffered;
  }

  /** Calls `listener` once when the destination fails (EPIPE, ENOSPC, EBADF, ...). */
  onError(listener: (err: Error) => void): void {
    this.#onError = listener;
    if (this.#error) listener(this.#error);
  }

  /** Calls `listener` each time a write completes and the destination can take more. */
  onDrain(listener: () => void): void {
    this.#onDrain = listener;
  }

  /** A buffer with at least `n` bytes free from `used` on (see {@link ByteSink}). */
  room(n: number): Buffer {
    if (this.#chunk.length - this.used < n) this.#nextChunk(n);
    this.#recordStart = this.used;
    return this.#chunk;
  }

  /**
   * Ends the record begun by {@link room} (or `records` of them): counts it and sees it written in time. Returns
   * false, undoing the record, when it had to be dropped (destination failed or ended, or
   * `hardLimit` reached).
   */
  commit(records = 1): boolean {
    if (this.#error || this.#ended || this.buffered > this.hardLimit) {
      this.#dropped += records;
      this.#droppedBytes += this.used - this.#recordStart;
      this.used = this.#recordStart;
      return false;
    }
    this.#chunkRecords += records;
    this.#handOverSoon();
    return true;
  }

  /** Hands what is held over now when it is enough, else at the end of this turn of the loop. */
  #handOverSoon(): void {
    if (this.#busy) return;
    if (this.buffered >= this.flushBytes) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    }
  }

  /**
   * Queues one record, or `records` of them formatted elsewhere into `record`'s bytes. Returns
   * false when it was dropped (see {@link commit}).
   */
  write(record: string | Uint8Array, records = 1): boolean {
    if (typeof record === 'string') {
      const buf = this.room(record.length * 3);
      this.used += buf.write(record, this.used);
      return this.commit();
    }
    const buf = this.room(record.length);
    buf.set(record, this.used);
    this.used += record.length;
    return this.commit(records);
  }

  /**
   * Queues `records` records already laid out in `bytes`, without copying them: `bytes` must
   * not change until `done` is called, once the destination has taken them (or they were
   * dropped). For memory another thread fills, such as a worker's ring of shared memory.
   * Returns false when they were dropped (`done` has then been called).
   */
  writeShared(bytes: Uint8Array, records: number, done: () => void): boolean {
    if (this.#error || this.#ended || this.buffered + bytes.length > this.hardLimit) {
      this.#dropped += records;
      this.#droppedBytes += bytes.length;
      done();
      return false;
    }
    this.#retireChunk(); // what the chunk holds goes first
    this.#full.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    this.#fullOwners.push(done);
    this.#fullRecords.push(records);
    this.#fullBytes += bytes.length;
    this.#handOverSoon();
    return true;
  }

  /**
   * Writes what is held and resolves to true once the destination has taken all of it, however
   * long that takes (a slow reader is waited for, as any Unix filter waits). Resolves to false
   * when the destination failed (see {@link error}) or `signal` fired first; what was not
   * written is then still {@link pending} until {@link abandon}ed.
   */
  flush(options: FlushOptions = {}): Promise<boolean> {
    const { signal } = options;
    this.#flush();
    if (this.#error) return Promise.resolve(false);
    if (!this.#busy && this.pending === 0) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => {
        const i = this.#idle.indexOf(done);
        if (i >= 0) this.#idle.splice(i, 1);
        resolve(false);
      };
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.#error === undefined);
      };
      this.#idle.push(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Gives up on everything not yet written: counts it in {@link dropped} and drops every later
   * record too. For a program that must exit while its reader is stalled.
   *
   * @returns how many records were abandoned
   */
  abandon(): number {
    const n = this.#error ? 0 : this.pending;
    if (!this.#error) this.#discardHeld();
    this.#ended = true;
    this.#settleIdle();
    return n;
  }

  /** Queues the current chunk's bytes since `#chunkStart` as a part; the chunk goes on after them. */
  #retireChunk(): void {
    const chunk = this.#chunk;
    if (this.used > this.#chunkStart) {
      this.#full.push(chunk.subarray(this.#chunkStart, this.used));
      this.#fullOwners.push(chunk);
      this.#fullRecords.push(this.#chunkRecords);
      this.#fullBytes += this.used - this.#chunkStart;
      this.#parts.set(chunk, (this.#parts.get(chunk) ?? 0) + 1);
    }
    this.#chunkRecords = 0;
    this.#chunkStart = this.used;
  }

  /** The current chunk has less than `n` bytes free: queues it and goes on in another. */
  #nextChunk(n: number): void {
    this.#retireChunk();
    const old = this.#chunk;
    const spare = this.#spare.pop();
    this.#chunk =
      spare && spare.length >= n ? spare : Buffer.allocUnsafe(Math.max(CHUNK, this.flushBytes, n));
    this.used = 0;
    this.#chunkStart = 0;
    if (!this.#parts.has(old)) this.#keep(old);
  }

  /** A part of `chunk` was written (or let go): the chunk is reused once none is left. */
  #partDone(chunk: Owner): void {
    if (typeof chunk === 'function') {
      chunk(); // a part lent by writeShared: its owner may reuse its bytes
      return;
    }
    const left = (this.#parts.get(chunk) ?? 1) - 1;
    if (left > 0) this.#parts.set(chunk, left);
    else {
      this.#parts.delete(chunk);
      if (chunk !== this.#chunk) this.#keep(chunk);
    }
  }

  #flush(): void {
    if (this.#busy || this.#error || this.#ended) return;
    if (this.buffered === 0) {
      if (this.pending === 0) this.#settleIdle();
      return;
    }
    // What is handed over must not change until written: the chunk goes on after it.
    this.#retireChunk();
    const parts = this.#full;
    const owners = this.#fullOwners;
    const records = this.#fullRecords;
    this.#full = [];
    this.#fullOwners = [];
    this.#fullRecords = [];
    this.#fullBytes = 0;
    const handed = records.reduce((a, b) => a + b, 0);
    // A stream may still be writing earlier parts (it emits 'drain' before their callbacks).
    this.#inflightRecords += handed;
    if (this.#sync) {
      this.#writeSync(parts, owners, handed);
      return;
    }
    this.#busy = true;
    if (this.#fd !== undefined) {
      this.#writeFd(parts, () => {
        this.#busy = false;
        this.#taken(owners, handed);
        this.#flush();
      });
      return;
    }
    const stream = this.#stream as Writable;
    let ok = true;
    try {
      for (const [i, part] of parts.entries()) {
        const n = records[i] as number;
        ok =
          stream.write(part, (err) => {
            if (err || this.#error) return;
            this.#inflightRecords -= n;
            this.#written += n;
            this.#partDone(owners[i] as Owner);
            if (!this.#busy && this.pending === 0) this.#settleIdle();
          }) && ok;
      }
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (ok) {
      this.#busy = false;
      if (this.buffered > 0) this.#flush();
    } else
      stream.once('drain', () => {
        this.#busy = false;
        this.#onDrain?.();
        this.#flush();
      });
  }

  /**
   * Keeps a chunk nothing refers to any more for reuse, up to what `hardLimit` could ever hold:
   * output that fills to its limit again and again (a destination slower than the records)
   * then writes to memory already mapped, rather than to fresh chunks, each page a fault.
   */
  #keep(chunk: Buffer): void {
    if (chunk.length >= CHUNK && this.#spare.length * CHUNK < this.hardLimit) this.#spare.push(chunk);
  }

  /** Writes `parts` now, on this thread, and accounts for them. */
  #writeSync(parts: Buffer[], owners: Owner[], records: number): void {
    try {
      for (let rest = parts; rest.length > 0; ) rest = unwritten(rest, writevSync(this.#fd as number, rest));
    } catch (err) {
      this.#fail(err as Error); // what was in hand counts as dropped, as after a failed async write
      return;
    }
    this.#taken(owners, records);
    if (this.pending === 0) this.#settleIdle();
  }

  /** The destination took `records` records, in parts lying in `owners`: counted, chunks reused. */
  #taken(owners: Owner[], records: number): void {
    this.#written += records;
    this.#inflightRecords -= records;
    // The chunks come back for reuse: steady output allocates nothing.
    for (const owner of owners) this.#partDone(owner);
    this.#onDrain?.();
  }

  /** Writes `parts` in order with writev, resuming after partial writes, then calls `done`. */
  #writeFd(parts: Buffer[], done: () => void): void {
    fsWritev(this.#fd as number, parts, null, (err, written) => {
      if (this.#ended) return;
      if (err) {
        // A descriptor someone made non-blocking: try again shortly.
        if (err.code === 'EAGAIN') setTimeout(() => this.#writeFd(parts, done), 1);
        else this.#fail(err);
        return;
      }
      const rest = unwritten(parts, written);
      if (rest.length === 0) done();
      else this.#writeFd(rest, done);
    });
  }

  #settleIdle(): void {
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Counts everything held or in flight as dropped and lets go of it. */
  #discardHeld(): void {
    this.#dropped += this.pending;
    this.#droppedBytes += this.buffered;
    for (const owner of this.#fullOwners) this.#partDone(owner);
    this.#full = [];
    this.#fullOwners = [];
    this.#fullRecords = [];
    this.#fullBytes = 0;
    this.#chunkRecords = 0;
    this.#inflightRecords = 0;
    this.used = this.#chunkStart;
  }

  #fail(err: Error): void {
    if (this.#error || this.#ended) return;
    this.#discardHeld();
    this.#error = err;
    this.#settleIdle();
    this.#onError?.(err);
  }
}

/** What of `parts` a write that took `written` bytes of them left: none, or the rest in order. */
function unwritten(parts: Buffer[], written: number): Buffer[] {
  let left = written;
  let i = 0;
  while (i < parts.length && left >= (parts[i] as Buffer).length) left -= (parts[i++] as Buffer).length;
  const rest = parts.slice(i);
  if (rest.length > 0) rest[0] = (rest[0] as Buffer).subarray(left);
  return rest;
}

/** What a queued part lies in: a chunk of the writer's, or the callback of a part lent to it. */
type Owner = Buffer | (() => void);

/** Whether `fd` is a regular file (false when it cannot be told). */
function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}
