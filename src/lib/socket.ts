/**
 * The datagram socket: bind, connect, promise `send`, `for await` reception through a bounded
 * queue, counters as getters, idempotent `close()` and `Symbol.asyncDispose`.
 */
import * as dgram from 'node:dgram';
import { raceAbort, throwIfAborted } from './abort.js';
import { type Endpoint, type IpFamily, ipFamily, maxPayload, parsePort, resolveHost } from './address.js';
import {
  AbortError,
  fromSystemError,
  InvalidArgumentError,
  MessageTooLargeError,
  SocketClosedError,
  SocketStateError,
  TimeoutError,
  type UdpError,
} from './errors.js';
import { BoundedQueue } from './queue.js';

/** A received datagram. */
export interface Datagram {
  /** The payload, exactly as received; may be empty. */
  data: Buffer;
  /** Who sent it. */
  from: Endpoint;
  /** When it was received: milliseconds since the epoch, with sub-millisecond precision. */
  receivedAt: number;
}

/** The socket's lifecycle, in order. */
export type SocketState = 'unbound' | 'binding' | 'bound' | 'closing' | 'closed';

/** The socket type: IPv4 or IPv6. */
export type SocketType = 'udp4' | 'udp6';

/** Options of {@link UdpSocket}. */
export interface UdpSocketOptions {
  /** `udp4` (default) or `udp6`. */
  type?: SocketType;
  /** For `udp6`: receive IPv6 only, not IPv4-mapped traffic too (IPV6_V6ONLY). */
  ipv6Only?: boolean;
  /** Allow binding an address another socket has bound (SO_REUSEADDR), as multicast needs. */
  reuseAddr?: boolean;
  /** SO_RCVBUF to ask for, in bytes; the kernel may grant another size. */
  recvBufferSize?: number;
  /** SO_SNDBUF to ask for, in bytes. */
  sendBufferSize?: number;
  /**
   * The most received datagrams held for a slow consumer (default 1024). Datagrams arriving
   * while the queue is full are dropped and counted in {@link UdpSocket.droppedByQueue}, since
   * a UDP socket cannot pause its sender.
   */
  highWaterMark?: number;
}

/** Options of {@link UdpSocket.bind}. */
export interface BindOptions {
  /** Local port; 0 (default) lets the system pick one, readable with `address()`. */
  port?: number;
  /** Local address or host name; default `0.0.0.0` for `udp4`, `::` for `udp6`. */
  address?: string;
  signal?: AbortSignal;
}

/** Options of {@link UdpSocket.messages}. */
export interface MessagesOptions {
  /** Ends the iteration with an {@link AbortError} when it fires. */
  signal?: AbortSignal;
  /**
   * Ends the iteration normally after this many milliseconds without a datagram, counted from
   * the call and restarted by each datagram received.
   */
  idleTimeout?: number;
}

/** Options of {@link UdpSocket.receive}. */
export interface ReceiveOptions {
  signal?: AbortSignal;
  /** Rejects with a {@link TimeoutError} after this many milliseconds without a datagram. */
  timeout?: number;
}

/** The default of {@link UdpSocketOptions.highWaterMark}. */
export const DEFAULT_HIGH_WATER_MARK = 1024;

/** How long `close()` waits for sends still in flight before closing anyway. */
const CLOSE_DEADLINE_MS = 1000;

type Waiter = {
  resolve: (msg: Datagram | undefined) => void;
  reject: (err: UdpError) => void;
};

/**
 * A UDP socket over `node:dgram`.
 *
 * ```ts
 * await using socket = await openUdpSocket({ address: '127.0.0.1', port: 0 });
 * for await (const msg of socket) console.log(msg.data.toString(), msg.from);
 * ```
 */
export class UdpSocket implements AsyncIterable<Datagram>, AsyncDisposable {
  /** `udp4` or `udp6`. */
  readonly type: SocketType;
  /** The address family of the socket. */
  readonly family: IpFamily;
  /** The most datagrams held for the consumer; see {@link UdpSocketOptions.highWaterMark}. */
  readonly highWaterMark: number;

  #state: SocketState = 'unbound';
  #socket: dgram.Socket;
  #queue: BoundedQueue<Datagram>;
  #waiters: Waiter[] = [];
  #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  #remote: Endpoint | undefined;
  #lastReceivedAt = 0;
  #packetsReceived = 0;
  #bytesReceived = 0;
  #packetsSent = 0;
  #bytesSent = 0;
  #droppedByQueue = 0;
  #sendErrors = 0;
  #receiveErrors = 0;

  /**
   * Creates an unbound socket. Most callers want {@link openUdpSocket}, which also binds.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad option
   */
  constructor(options: UdpSocketOptions = {}) {
    const type = options.type ?? 'udp4';
    if (type !== 'udp4' && type !== 'udp6') {
      throw new InvalidArgumentError(`socket type '${String(type)}' is not one of udp4, udp6`);
    }
    const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    if (!Number.isInteger(hwm) || hwm < 1) {
      throw new InvalidArgumentError(`highWaterMark ${hwm} is not a positive integer`);
    }
    for (const key of ['recvBufferSize', 'sendBufferSize'] as const) {
      const size = options[key];
      if (size !== undefined && (!Number.isInteger(size) || size < 1)) {
        throw new InvalidArgumentError(`${key} ${size} is not a positive integer`);
      }
    }
    this.type = type;
    this.family = type === 'udp6' ? 'IPv6' : 'IPv4';
    this.highWaterMark = hwm;
    this.#queue = new BoundedQueue(hwm);
    this.#socket = dgram.createSocket({
      type,
      ipv6Only: options.ipv6Only ?? false,
      reuseAddr: options.reuseAddr ?? false,
      ...(options.recvBufferSize !== undefined && { recvBufferSize: options.recvBufferSize }),
      ...(options.sendBufferSize !== undefined && { sendBufferSize: options.sendBufferSize }),
    });
    this.#socket.on('message', (data, rinfo) => this.#onMessage(data, rinfo));
    // After bind, errors come from receiving (ICMP errors on a connected socket): a counted
    // warning, never a crash.
    this.#socket.on('error', () => {
      if (this.#state === 'bound') this.#receiveErrors++;
    });
  }

  /** Where the socket is in its lifecycle. */
  get state(): SocketState {
    return this.#state;
  }
  /** Datagrams received from the network, including those the queue dropped. */
  get packetsReceived(): number {
    return this.#packetsReceived;
  }
  /** Payload bytes received, including those the queue dropped. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }
  /** Datagrams the kernel accepted for sending. */
  get packetsSent(): number {
    return this.#packetsSent;
  }
  /** Payload bytes the kernel accepted for sending. */
  get bytesSent(): number {
    return this.#bytesSent;
  }
  /** Datagrams dropped because the queue was full: the consumer was slower than the network. */
  get droppedByQueue(): number {
    return this.#droppedByQueue;
  }
  /** Sends the kernel refused. */
  get sendErrors(): number {
    return this.#sendErrors;
  }
  /** Errors reported while receiving, such as ICMP port unreachable on a connected socket. */
  get receiveErrors(): number {
    return this.#receiveErrors;
  }
  /** Datagrams waiting in the queue for the consumer. */
  get queued(): number {
    return this.#queue.length;
  }

  /** SO_RCVBUF as the kernel granted it, in bytes. */
  get recvBufferSize(): number {
    this.#assertBound('read the receive buffer size of');
    return this.#socket.getRecvBufferSize();
  }

  /** SO_SNDBUF as the kernel granted it, in bytes. */
  get sendBufferSize(): number {
    this.#assertBound('read the send buffer size of');
    return this.#socket.getSendBufferSize();
  }

  /**
   * Binds the socket to a local address and port and starts receiving.
   *
   * @returns the bound address, with the port the system picked when `port` was 0
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad port or an address of the wrong family
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when already bound
   * @throws {AddressInUseError} `UDP_ERR_ADDR_IN_USE`, {@link PermissionDeniedError}
   *   `UDP_ERR_PERMISSION_DENIED`, {@link AddressNotAvailableError} `UDP_ERR_ADDR_NOT_AVAILABLE`,
   *   {@link ResolveError} `UDP_ERR_RESOLVE`; a failed bind leaves the socket closed
   */
  async bind(options: BindOptions = {}): Promise<Endpoint> {
    const port = parsePort(options.port ?? 0);
    const { signal } = options;
    throwIfAborted(signal);
    if (this.#state === 'closing' || this.#state === 'closed') throw new SocketClosedError();
    if (this.#state !== 'unbound') throw new SocketStateError(`the socket is already ${this.#state}`);
    this.#state = 'binding';
    try {
      const host = options.address ?? (this.type === 'udp6' ? '::' : '0.0.0.0');
      const { address } = await resolveHost(host, { family: this.family, signal });
      const bound = new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(fromSystemError(err, 'bind', { address, port }));
        this.#socket.once('error', onError);
        this.#socket.bind({ port, address, exclusive: true }, () => {
          this.#socket.off('error', onError);
          resolve();
        });
      });
      await (signal ? raceAbort(bound, signal) : bound);
    } catch (err) {
      this.#state = 'closed';
      this.#closing = this.#closeHandle();
      throw err;
    }
    if (this.#state === 'binding') this.#state = 'bound';
    return this.address();
  }

  /**
   * Connects the socket to one peer: `send` then needs no destination, and only that peer's
   * datagrams are received. Binds to any address first when unbound.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad port (0 included)
   * @throws {ResolveError} `UDP_ERR_RESOLVE` when `host` does not resolve
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when already connected
   */
  async connect(port: number, host?: string, options: { signal?: AbortSignal } = {}): Promise<Endpoint> {
    const dest = checkDestinationPort(port);
    if (this.#remote)
      throw new SocketStateError(`the socket is already connected to ${this.#remote.address}`);
    if (this.#state === 'unbound') await this.bind({ ...(options.signal && { signal: options.signal }) });
    this.#assertBound('connect');
    const { address } = await resolveHost(host ?? this.#loopback(), {
      family: this.family,
      signal: options.signal,
    });
    await new Promise<void>((resolve, reject) => {
      this.#socket.connect(dest, address, (err?: Error) => {
        if (err) reject(fromSystemError(err, 'connect', { address, port: dest }));
        else resolve();
      });
    });
    this.#remote = { address, port: dest, family: this.family };
    return this.#remote;
  }

  /**
   * The bound local address.
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when not bound
   */
  address(): Endpoint {
    this.#assertBound('read the address of');
    const { address, port, family } = this.#socket.address();
    return { address, port, family: family === 'IPv6' ? 'IPv6' : 'IPv4' };
  }

  /** The connected peer, or `undefined` when not connected. */
  remoteAddress(): Endpoint | undefined {
    return this.#remote;
  }

  /**
   * Sends one datagram. Resolves once the kernel has accepted it; that is no proof of delivery.
   * An unbound socket is bound to any address and a free port first.
   *
   * @param data the payload: bytes, or a string sent as UTF-8; empty is allowed
   * @param port the destination port; omitted on a connected socket
   * @param host the destination address or host name; default loopback
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad payload or destination
   * @throws {MessageTooLargeError} `UDP_ERR_MSG_TOO_LARGE` over 65507 bytes (IPv4) or 65527 (IPv6)
   * @throws {SocketClosedError} `UDP_ERR_CLOSED` when the socket is closing or closed
   */
  async send(data: Uint8Array | string, port?: number, host?: string): Promise<void> {
    const payload = toPayload(data);
    checkSize(payload.length, this.family);
    if (this.#state === 'closing' || this.#state === 'closed') throw new SocketClosedError();
    let dest: { port: number; address: string } | undefined;
    if (this.#remote) {
      if (port !== undefined || host !== undefined) {
        throw new InvalidArgumentError('a connected socket sends only to its peer; give no port or host');
      }
    } else {
      if (port === undefined) throw new InvalidArgumentError('send needs a destination port');
      const address = host ?? this.#loopback();
      const family = ipFamily(address);
      if (family !== undefined && family !== this.family) {
        throw new InvalidArgumentError(
          `cannot send to ${family} address ${address} from a ${this.type} socket`,
        );
      }
      dest = { port: checkDestinationPort(port), address };
    }
    if (this.#state === 'unbound') await this.bind();
    else if (this.#state === 'binding') throw new SocketStateError('the socket is still binding');
    const sent = new Promise<void>((resolve, reject) => {
      const done = (err: Error | null) => {
        if (err) {
          this.#sendErrors++;
          reject(fromSystemError(err, 'send', dest ?? this.#remote));
          return;
        }
        this.#packetsSent++;
        this.#bytesSent += payload.length;
        resolve();
      };
      if (dest) this.#socket.send(payload, dest.port, dest.address, done);
      else this.#socket.send(payload, done);
    });
    this.#inflight.add(sent);
    try {
      await sent;
    } finally {
      this.#inflight.delete(sent);
    }
  }

  /**
   * The received datagrams, oldest first, as an async iterator. It ends when the socket closes
   * (after yielding what was queued) or after `idleTimeout` ms of silence, and throws an
   * {@link AbortError} when `signal` fires. Leaving the loop early does not close the socket.
   */
  messages(options: MessagesOptions = {}): AsyncIterableIterator<Datagram> {
    const { signal, idleTimeout } = options;
    if (idleTimeout !== undefined && !(Number.isFinite(idleTimeout) && idleTimeout > 0)) {
      throw new InvalidArgumentError(`idleTimeout ${idleTimeout} is not a positive number of milliseconds`);
    }
    let finished = false;
    const since = performance.now();
    const finish = () => {
      finished = true;
    };
    const iterator: AsyncIterableIterator<Datagram> = {
      next: async () => {
        if (finished) return { done: true, value: undefined };
        const timeout =
          idleTimeout === undefined
            ? undefined
            : idleTimeout - (performance.now() - Math.max(since, this.#lastReceivedAt));
        try {
          const msg = await this.#next(signal, timeout, false);
          if (msg === undefined) {
            finish();
            return { done: true, value: undefined };
          }
          return { done: false, value: msg };
        } catch (err) {
          finish();
          throw err;
        }
      },
      return: async () => {
        finish();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Same as {@link UdpSocket.messages} with no options. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Datagram> {
    return this.messages();
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
    const msg = await this.#next(signal, timeout, true);
    if (msg === undefined) throw new SocketClosedError();
    return msg;
  }

  /**
   * Closes the socket: new sends are refused, sends in flight get up to a second to finish,
   * then the socket is released. Iterators end after yielding what was queued. Safe to call
   * any number of times; every call returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#state = 'closing';
    this.#closing = (async () => {
      if (this.#inflight.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled(this.#inflight),
          new Promise((resolve) => {
            timer = setTimeout(resolve, CLOSE_DEADLINE_MS);
          }),
        ]);
        clearTimeout(timer);
      }
      await this.#closeHandle();
    })();
    // Waiters get nothing more: the queue is empty whenever someone waits.
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
    return this.#closing;
  }

  /** Closes the socket; lets `await using socket = ...` release it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #closeHandle(): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        this.#socket.close(() => {
          this.#state = 'closed';
          resolve();
        });
      } catch {
        this.#state = 'closed';
        resolve();
      }
    });
  }

  #onMessage(data: Buffer, rinfo: dgram.RemoteInfo): void {
    const now = performance.now();
    this.#lastReceivedAt = now;
    this.#packetsReceived++;
    this.#bytesReceived += data.length;
    // rinfo already holds address, port and family; reuse it rather than copy per datagram.
    const msg: Datagram = { data, from: rinfo as Endpoint, receivedAt: performance.timeOrigin + now };
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(msg);
    else if (!this.#queue.push(msg)) this.#droppedByQueue++;
  }

  /**
   * The next datagram, or `undefined` when the socket closes (or, unless `timeoutThrows`,
   * when `timeout` elapses).
   */
  #next(
    signal: AbortSignal | undefined,
    timeout: number | undefined,
    timeoutThrows: boolean,
  ): Promise<Datagram | undefined> {
    throwIfAborted(signal);
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#state === 'closing' || this.#state === 'closed') return Promise.resolve(undefined);
    if (timeout !== undefined && timeout <= 0) {
      return timeoutThrows ? Promise.reject(this.#timeoutError(0)) : Promise.resolve(undefined);
    }
    return new Promise<Datagram | undefined>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        resolve: (msg) => {
          cleanup();
          resolve(msg);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      };
      const remove = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
      };
      const onAbort = () => {
        remove();
        waiter.reject(new AbortError(undefined, { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => {
          remove();
          if (timeoutThrows) waiter.reject(this.#timeoutError(timeout));
          else waiter.resolve(undefined);
        }, timeout);
      }
      this.#waiters.push(waiter);
    });
  }

  #timeoutError(ms: number): TimeoutError {
    return new TimeoutError(`no datagram received within ${Math.round(ms)} ms`);
  }

  #loopback(): string {
    return this.type === 'udp6' ? '::1' : '127.0.0.1';
  }

  #assertBound(what: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') throw new SocketClosedError();
    if (this.#state !== 'bound') throw new SocketStateError(`cannot ${what} a socket that is not bound`);
  }
}

/** Options of {@link openUdpSocket}: the socket's options and where to bind. */
export interface OpenOptions extends UdpSocketOptions, BindOptions {}

/**
 * Creates a socket and binds it. The type follows the address when not given: an IPv6 literal
 * or a name that resolves to IPv6 makes a `udp6` socket.
 *
 * @throws the errors of {@link UdpSocket.bind}
 */
export async function openUdpSocket(options: OpenOptions = {}): Promise<UdpSocket> {
  const { port, address, signal, ...socketOptions } = options;
  let type = socketOptions.type;
  let bindAddress = address;
  if (type === undefined && address !== undefined) {
    const resolved = await resolveHost(address, { signal });
    type = resolved.family === 'IPv6' ? 'udp6' : 'udp4';
    bindAddress = resolved.address;
  }
  const socket = new UdpSocket({ ...socketOptions, ...(type && { type }) });
  await socket.bind({
    ...(port !== undefined && { port }),
    ...(bindAddress !== undefined && { address: bindAddress }),
    ...(signal && { signal }),
  });
  return socket;
}

function toPayload(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  throw new InvalidArgumentError(`data must be a Uint8Array or a string, got ${typeof data}`);
}

/**
 * Checks a payload size against the limit of `family`.
 *
 * @throws {MessageTooLargeError} `UDP_ERR_MSG_TOO_LARGE` naming the size and the limit
 */
export function checkSize(size: number, family: IpFamily): void {
  const limit = maxPayload(family);
  if (size > limit) {
    throw new MessageTooLargeError(
      `message of ${size} bytes is over the ${limit}-byte limit of UDP over ${family}`,
      size,
      limit,
    );
  }
}

function checkDestinationPort(port: number): number {
  const dest = parsePort(port, 'destination port');
  if (dest === 0) throw new InvalidArgumentError('destination port 0 is not valid (1-65535)');
  return dest;
}
