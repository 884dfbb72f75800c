/**
 * The receiving side of a socket: one way in for received datagrams (`deliver`), handed to a
 * running `consume()` handler or kept in a bounded queue for `messages()`, `batches()` and
 * `receive()`, with the counters of what came in and what the queue dropped.
 */
import { throwIfAborted } from './abort.js';
import type { Endpoint } from './address.js';
import { type ReceivedBatch, SingleBatch } from './batch.js';
import {
  AbortError,
  InvalidArgumentError,
  SocketClosedError,
  SocketStateError,
  TimeoutError,
} from './errors.js';
import { BoundedQueue } from './queue.js';
import type { Arrival } from './transport.js';

/** A received datagram. */
export interface Datagram {
  /** The payload, exactly as received; may be empty. */
  data: Buffer;
  /** Who sent it. */
  from: Endpoint;
  /** When it was received: milliseconds since the epoch, with sub-millisecond precision. */
  receivedAt: number;
  /**
   * The address it was sent to (the destination in its IP header): one of this host's
   * addresses, a broadcast address or a multicast group. With {@link
   * UdpSocketOptions.metadata} on the native transport; absent otherwise.
   */
  to?: string;
  /** The interface it came in on, by name. Like `to`. */
  interface?: string;
  /** Its TTL (IPv4) or hop limit (IPv6) on arrival. Like `to`. */
  ttl?: number;
  /** Where it arrived, as one shared object (internal: `reply()` and the formatters read it). */
  [ARRIVAL]?: Arrival | undefined;
}

/** The key of a datagram's {@link Arrival}: internal, for `UdpSocket.reply` and the formats. */
export const ARRIVAL: unique symbol = Symbol('udpkit.arrival');

/** Options of {@link Inbox.messages}. */
export interface MessagesOptions {
  /** Ends the iteration with an {@link AbortError} when it fires. */
  signal?: AbortSignal;
  /**
   * Ends the iteration normally after this many milliseconds without a datagram, counted from
   * the call and restarted by each datagram received.
   */
  idleTimeout?: number;
}

/** Options of {@link Inbox.consume}. */
export interface ConsumeOptions extends MessagesOptions {
  /**
   * Take this many datagrams, then resolve. The socket reads no more than that from the
   * kernel: the rest wait in its receive buffer, not in udpkit, until `UdpSocket.resume()`.
   */
  limit?: number;
}

/** Options of {@link Inbox.receive}. */
export interface ReceiveOptions {
  signal?: AbortSignal;
  /** Rejects with a {@link TimeoutError} after this many milliseconds without a datagram. */
  timeout?: number;
}

/** Someone waiting for the queue to fill: woken once, then they look again. */
type Waiter = () => void;

/**
 * The handler of a running {@link Inbox.consume} and how to end it; `batch` takes whole
 * batches when the consumer asked for them ({@link Inbox.consumeBatches}).
 */
type Consumer = {
  handler: (msg: Datagram) => unknown;
  end: (err?: unknown) => void;
  limited: boolean;
  batch?: (batch: ReceivedBatch) => unknown;
};

/** Why a wait ended. */
type WaitResult = 'ready' | 'timeout';

/** What the inbox needs of its socket. */
export interface InboxControl {
  /** True once the socket is closing or closed: waiting for more is over. */
  isClosed(): boolean;
  /** Reads at most `n` more datagrams from the kernel; undefined lifts the limit. */
  readLimit(n: number | undefined): void;
  /** Raises a read limit in force by `n`: datagrams read and denied do not count. */
  readMore(n: number): void;
}

/** The received datagrams of one socket and the ways to take them. */
export class Inbox {
  /** The most datagrams held for the consumer. */
  readonly highWaterMark: number;
  #control: InboxControl;
  #queue: BoundedQueue<Datagram>;
  #waiters: Waiter[] = [];
  #consumer: Consumer | undefined;
  #lastReceivedAt = 0;
  /** When the batch being handed over arrived (performance.now()), read once per batch. */
  #batchAt = 0;
  /** Reception paused by the consumer: not silence. */
  #paused = false;
  #resumedAt = 0;
  #packetsReceived = 0;
  #bytesReceived = 0;
  #droppedByQueue = 0;
  #denied = 0;
  #accept: ((from: Endpoint) => boolean) | undefined;

  constructor(
    highWaterMark: number,
    control: InboxControl,
    accept: ((from: Endpoint) => boolean) | undefined = undefined,
  ) {
    this.highWaterMark = highWaterMark;
    this.#control = control;
    this.#accept = accept;
    this.#queue = new BoundedQueue(highWaterMark);
  }

  /** Datagrams received, including those the queue dropped. */
  get packetsReceived(): number {
    return this.#packetsReceived;
  }
  /** Payload bytes received, including those the queue dropped. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }
  /** Datagrams dropped because the queue was full. */
  get droppedByQueue(): number {
    return this.#droppedByQueue;
  }
  /** Datagrams refused by the `accept` predicate: counted, never delivered. */
  get denied(): number {
    return this.#denied;
  }
  /** Datagrams waiting in the queue. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Reception is paused (or resumes): idle timeouts do not run meanwhile. */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    if (!paused) this.#resumedAt = performance.now();
  }

  /** Milliseconds without a datagram since `since`; 0 while paused (waiting is not silence). */
  #quietFor(since: number): number {
    if (this.#paused) return 0;
    return performance.now() - Math.max(since, this.#lastReceivedAt, this.#resumedAt);
  }

  /**
   * The received datagrams, oldest first, as an async iterator. It ends when the socket closes
   * (after yielding what was queued) or after `idleTimeout` ms of silence, and throws an
   * {@link AbortError} when `signal` fires. Leaving the loop early does not close the socket.
   */
  messages(options: MessagesOptions = {}): AsyncIterableIterator<Datagram> {
    return this.#iterate(options, () => this.#queue.shift() as Datagram);
  }

  /**
   * Like {@link Inbox.messages}, but yields everything queued at once, as an array of one
   * or more datagrams: one await per batch rather than per datagram, for consumers that must
   * keep up with a flood.
   */
  batches(options: MessagesOptions = {}): AsyncIterableIterator<Datagram[]> {
    return this.#iterate(options, () => {
      const batch: Datagram[] = [];
      for (let msg = this.#queue.shift(); msg !== undefined; msg = this.#queue.shift()) batch.push(msg);
      return batch;
    });
  }

  /**
   * Hands each datagram to `handler` as it arrives, with no queue and no await per datagram:
   * the fastest way to take a flood. `msg.data` is valid only during the call (the native
   * transport reuses its receive buffer); copy what you keep. Datagrams already queued go
   * first. Resolves when `handler` returns `false`, after `idleTimeout` ms of silence, or when
   * the socket closes; rejects with an {@link AbortError} when `signal` fires, or with what
   * `handler` threw. One consumer at a time; the queue and iterators wait meanwhile.
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when another consume() is running
   */
  consume(handler: (msg: Datagram) => unknown, options: ConsumeOptions = {}): Promise<void> {
    const { signal, idleTimeout, limit } = options;
    try {
      checkIdleTimeout(idleTimeout);
      if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) {
        throw new InvalidArgumentError(`limit ${limit} is not a positive integer`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#consumer) return Promise.reject(new SocketStateError('another consume() is already running'));
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      let stopIdle: (() => void) | undefined;
      const since = performance.now();
      let left = limit ?? Number.POSITIVE_INFINITY;
      const end = (err?: unknown) => {
        if (this.#consumer !== consumer) return;
        this.#consumer = undefined;
        stopIdle?.();
        signal?.removeEventListener('abort', onAbort);
        // Ended before the limit (a signal, a silence): the socket reads freely again. At the
        // limit it stays stopped, the rest left in the kernel, until resume().
        if (limit !== undefined && left > 0) this.#control.readLimit(undefined);
        if (err === undefined) resolve();
        else reject(err);
      };
      const consumer: Consumer = {
        handler:
          limit === undefined
            ? handler
            : (msg) => {
                left--;
                const more = handler(msg);
                return left > 0 && more;
              },
        end,
        limited: limit !== undefined,
      };
      const onAbort = () => end(new AbortError(undefined, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (idleTimeout !== undefined) stopIdle = this.#whenIdle(idleTimeout, since, () => end());
      this.#consumer = consumer;
      for (
        let msg = this.#queue.shift();
        msg !== undefined && this.#consumer === consumer;
        msg = this.#queue.shift()
      ) {
        this.#deliver(consumer, msg);
      }
      // Read no more from the kernel than the consumer still wants.
      if (this.#consumer === consumer && limit !== undefined) this.#control.readLimit(left);
      if (this.#control.isClosed()) end();
    });
  }

  /**
   * Like {@link Inbox.consume}, `handler` taking the datagrams in batches, as the native
   * transport reads them (one datagram at a time from node:dgram and from the queue): a
   * flood's datagrams are then read in place, with no object made per datagram. No `limit`.
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when another consume() is running
   */
  consumeBatches(
    handler: (batch: ReceivedBatch) => unknown,
    options: Omit<ConsumeOptions, 'limit'> = {},
  ): Promise<void> {
    const single = new SingleBatch();
    const running = this.consume((msg) => handler(single.of(msg)), options);
    // consume() set its consumer up at once (when it could start): it takes batches too.
    if (this.#consumer) this.#consumer.batch = handler;
    return running;
  }

  /**
   * A batch from the transport, whole, for a batch consumer: true when taken (counted and
   * handed over), false when it must come one datagram at a time (no batch consumer, or an
   * `accept` filter that decides per sender).
   */
  takeBatch(batch: ReceivedBatch): boolean {
    const consumer = this.#consumer;
    if (consumer?.batch === undefined || this.#accept !== undefined) return false;
    const n = batch.count;
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += batch.length(i);
    this.#packetsReceived += n;
    this.#bytesReceived += bytes;
    this.#lastReceivedAt = this.#batchAt;
    let more: unknown;
    try {
      more = consumer.batch(batch);
    } catch (err) {
      consumer.end(err);
      return true;
    }
    this.#settle(consumer, more);
    return true;
  }

  #deliver(consumer: Consumer, msg: Datagram): void {
    let more: unknown;
    try {
      more = consumer.handler(msg);
    } catch (err) {
      consumer.end(err);
      return;
    }
    this.#settle(consumer, more);
  }

  /** What a consumer's handler returned: a `false` or a rejected promise ends the consume(). */
  #settle(consumer: Consumer, more: unknown): void {
    if (more === false) consumer.end();
    // A handler that returns a promise: its rejection ends the consume(), never unhandled.
    else if (typeof (more as PromiseLike<unknown> | undefined)?.then === 'function') {
      (more as Promise<unknown>).then(undefined, (err: unknown) => consumer.end(err));
    }
  }

  #iterate<T>(options: MessagesOptions, take: () => T): AsyncIterableIterator<T> {
    const { signal, idleTimeout } = options;
    checkIdleTimeout(idleTimeout);
    let finished = false;
    const since = performance.now();
    const done = { done: true, value: undefined } as const;
    const iterator: AsyncIterableIterator<T> = {
      next: async () => {
        for (;;) {
          if (finished) return done;
          throwIfAborted(signal);
          if (this.#queue.length > 0) return { done: false, value: take() };
          if (this.#control.isClosed()) {
            finished = true;
            return done;
          }
          const idle =
            idleTimeout === undefined
              ? undefined
              : (fire: () => void) => this.#whenIdle(idleTimeout, since, fire);
          try {
            if ((await this.#wait(signal, idle)) === 'timeout') {
              finished = true;
              return done;
            }
          } catch (err) {
            finished = true;
            throw err;
          }
        }
      },
      return: async () => {
        finished = true;
        return done;
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /**
   * The next datagram.
   *
   * @throws {TimeoutError} `UDP_ERR_TIMEOUT` when none arrives within `timeout` ms
   * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires first
   * @throws {SocketClosedError} `UDP_ERR_CLOSED` when the socket closes with nothing queued
   */
  async receive(options: ReceiveOptions = {}): Promise<Datagram> {
    const { signal, timeout } = options;
    if (timeout !== undefined && !(Number.isFinite(timeout) && timeout >= 0)) {
      throw new InvalidArgumentError(`timeout ${timeout} is not a non-negative number of milliseconds`);
    }
    const deadline = timeout === undefined ? undefined : performance.now() + timeout;
    for (;;) {
      throwIfAborted(signal);
      const msg = this.#queue.shift();
      if (msg) return msg;
      if (this.#control.isClosed()) throw new SocketClosedError();
      const left = deadline === undefined ? 0 : deadline - performance.now();
      const expire =
        deadline === undefined
          ? undefined
          : (fire: () => void) => {
              const timer = setTimeout(fire, left);
              return () => clearTimeout(timer);
            };
      if (deadline !== undefined && left <= 0) throw this.#timeoutError(timeout as number);
      if ((await this.#wait(signal, expire)) === 'timeout') throw this.#timeoutError(timeout as number);
    }
  }

  /**
   * Takes one datagram from the transport: to the running consumer, else into the queue (or,
   * past `highWaterMark`, counted as dropped). `borrowed` bytes are copied before queueing.
   */
  /** The transport is about to hand over a batch: its time, read once for all of them. */
  batchStarted(): void {
    this.#batchAt = performance.now();
  }

  deliver(
    data: Buffer,
    from: Endpoint,
    receivedAt: number,
    borrowed: boolean,
    arrival: Arrival | undefined,
    ttl: number | undefined,
  ): void {
    this.#packetsReceived++;
    this.#bytesReceived += data.length;
    const consumer = this.#consumer;
    if (this.#accept !== undefined && !this.#accept(from)) {
      // Denied: counted, and it neither counts against a consume() limit nor breaks a
      // silence (a refused sender cannot keep an idle timeout from firing).
      this.#denied++;
      if (consumer?.limited) this.#control.readMore(1);
      return;
    }
    this.#lastReceivedAt = this.#batchAt;
    if (consumer) {
      this.#deliver(consumer, datagram(data, from, receivedAt, arrival, ttl));
      return;
    }
    if (this.#queue.length === this.highWaterMark) {
      this.#droppedByQueue++;
      return;
    }
    // Queued datagrams outlive the transport's buffer: copy borrowed bytes.
    this.#queue.push(datagram(borrowed ? Buffer.from(data) : data, from, receivedAt, arrival, ttl));
    if (this.#waiters.length > 0) this.#wake();
  }

  /** Wakes every waiter, and ends a running consume(): the socket is closing. */
  close(): void {
    this.#wake();
    this.#consumer?.end();
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }

  /**
   * Runs `fire` once `idleTimeout` ms pass with no datagram since `since` (time paused is not
   * silence): the one idle timeout of consume() and the iterators. Returns its cancel.
   */
  #whenIdle(idleTimeout: number, since: number, fire: () => void): () => void {
    let timer: NodeJS.Timeout;
    const check = () => {
      const quiet = this.#quietFor(since);
      if (quiet >= idleTimeout) fire();
      else timer = setTimeout(check, idleTimeout - quiet);
    };
    timer = setTimeout(check, Math.max(0, idleTimeout - this.#quietFor(since)));
    return () => clearTimeout(timer);
  }

  /**
   * Resolves `ready` once a datagram is queued or the socket closes, `timeout` when `expire`
   * fires (it arms a timer and returns its cancel); rejects with an {@link AbortError} when
   * `signal` fires.
   */
  #wait(
    signal: AbortSignal | undefined,
    expire: ((fire: () => void) => () => void) | undefined,
  ): Promise<WaitResult> {
    return new Promise<WaitResult>((resolve, reject) => {
      let cancel: (() => void) | undefined;
      const settle = (fn: () => void) => {
        cancel?.();
        signal?.removeEventListener('abort', onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        fn();
      };
      const waiter: Waiter = () => settle(() => resolve('ready'));
      const onAbort = () => settle(() => reject(new AbortError(undefined, { cause: signal?.reason })));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      if (expire) cancel = expire(() => settle(() => resolve('timeout')));
    });
  }

  #timeoutError(ms: number): TimeoutError {
    return new TimeoutError(`no datagram received within ${Math.round(ms)} ms`);
  }
}

function checkIdleTimeout(idleTimeout: number | undefined): void {
  if (idleTimeout !== undefined && !(Number.isFinite(idleTimeout) && idleTimeout > 0)) {
    throw new InvalidArgumentError(`idleTimeout ${idleTimeout} is not a positive number of milliseconds`);
  }
}

/** A datagram, with where it arrived when the transport said. */
function datagram(
  data: Buffer,
  from: Endpoint,
  receivedAt: number,
  arrival: Arrival | undefined,
  ttl: number | undefined,
): Datagram {
  if (arrival === undefined && ttl === undefined) return { data, from, receivedAt };
  return {
    data,
    from,
    receivedAt,
    to: arrival?.to,
    interface: arrival?.interface,
    ttl,
    [ARRIVAL]: arrival,
  };
}
