/**
 * The datagram socket: its lifecycle (bind, connect, close, `Symbol.asyncDispose`), with
 * counters as getters. Sending is its {@link Sender} (sender.ts), receiving its {@link Inbox}
 * (inbox.ts).
 */

export type { ConsumeOptions, Datagram, MessagesOptions, ReceiveOptions } from './inbox.js';

import { raceAbort, throwIfAborted } from './abort.js';
import {
  type Endpoint,
  type IpFamily,
  ipFamily,
  type LookupFunction,
  parsePort,
  resolveHost,
} from './address.js';
import type { ReceivedBatch } from './batch.js';
import {
  fromSystemError,
  InvalidArgumentError,
  NotSupportedError,
  SocketClosedError,
  SocketStateError,
  type UdpError,
} from './errors.js';
import {
  ARRIVAL,
  type ConsumeOptions,
  type Datagram,
  Inbox,
  type MessagesOptions,
  type ReceiveOptions,
} from './inbox.js';
import { isMulticast, resolveInterface } from './interfaces.js';
import { nativeUnavailableReason, type SocketOptionName } from './native.js';
import { checkDestinationPort, type OutgoingDatagram, Sender } from './sender.js';
import {
  createTransport,
  type Offloads,
  type RingStats,
  type Transport,
  type TransportKind,
} from './transport.js';

export { checkSize, type OutgoingDatagram } from './sender.js';

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
  /**
   * Native transport: join a group of sockets bound to the same address and port
   * (SO_REUSEPORT); the kernel spreads arriving datagrams over the group, one sender (address
   * and port) always to the same socket, unless {@link UdpSocket.steerByCpu} says otherwise.
   * Every socket of the group must ask for it. One per worker thread spreads reception over
   * cores. node:dgram in Node 20 has no such option: {@link UdpSocket.bind} then throws a
   * {@link NotSupportedError}.
   */
  reusePort?: boolean;
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
  /**
   * What moves the datagrams: `native` (the recvmmsg/sendmmsg addon), `dgram` (node:dgram),
   * or `auto` (default): native when the addon is built and loads, else dgram.
   */
  transport?: TransportKind | 'auto';
  /**
   * Native transport: under load, read what queued up once a millisecond instead of waking
   * per datagram (default false). Receive times stay exact (kernel timestamps), and each
   * wake-up reads at most 1024 datagrams, so a flooded socket leaves the loop to the others;
   * for a consumer of floods, such as `udpkit listen`, where CPU matters more than a
   * millisecond of latency.
   */
  coalesce?: boolean;
  /**
   * Native transport: send runs of equal-size datagrams (a batch from `sendPacked`, `send
   * --count`) as one buffer that the kernel cuts into datagrams (UDP GSO, UDP_SEGMENT):
   * one trip through the stack for up to 64 datagrams. Default true. Off where the kernel
   * lacks it or `UDPKIT_GSO=0` is set; checked, not assumed: the first send a route refuses
   * (no checksum offload, a segment over its MTU) turns it off for the socket and goes
   * again, one datagram per message, with nothing lost.
   */
  gso?: boolean;
  /**
   * Native transport: let the kernel hand over many datagrams of one sender in one buffer
   * (UDP GRO), split again, in order and with their own lengths, before any consumer sees
   * them. Loopback senders using GSO then cost one receive per 64 datagrams. Default false:
   * one read may then hold more datagrams than a `consume` limit asks for, and the extra ones
   * wait in the queue. Off where the kernel lacks it or `UDPKIT_GSO=0` is set.
   */
  gro?: boolean;
  /**
   * Native transport: a thread of the addon reads the socket into a bounded ring (8 MB of
   * payload, 32768 datagrams), and JavaScript takes batches from it, so that a garbage
   * collection, the compiler or a slow write does not leave the kernel's buffer to overflow.
   * Full, the ring stops taking until JavaScript frees room (counted in
   * {@link UdpSocket.receiveRing}); nothing it read is dropped. Pause and read limits stop the
   * thread as they stop reading. Default false; ignored on node:dgram.
   */
  receiveThread?: boolean;
  /**
   * Decides per sender whether a received datagram is taken (true) or denied: a denied one is
   * counted in {@link UdpSocket.denied} and reaches no consumer, queue or limit, and does not
   * break a silence. E.g. `(from) => acl.allows(from.address)` with an {@link AccessList}.
   */
  accept?: ((from: Endpoint) => boolean) | undefined;
  /**
   * Ask the kernel where each datagram arrived: its destination address (`to`), interface and
   * TTL, on every {@link Datagram}, and {@link UdpSocket.reply} answers from the address it
   * was sent to (IP_PKTINFO / IPV6_RECVPKTINFO). Native transport only: on node:dgram the
   * fields stay absent and {@link UdpSocket.metadata} says false. Default false.
   */
  metadata?: boolean;
  /**
   * Ties the socket to one interface, by name or one of its addresses, before it binds: it
   * receives only what arrives there and sends only through it, whatever the routing table
   * says (SO_BINDTODEVICE, as `ping -I` does). Native transport only: `bind()` throws a
   * {@link NotSupportedError} on node:dgram.
   */
  interface?: string | undefined;
  /**
   * Resolves host names instead of `dns.lookup`, with its signature (as node:dgram's `lookup`
   * option); IP literals never reach it. For tests, and for resolvers of your own.
   */
  lookup?: LookupFunction | undefined;
}

/** Options of {@link UdpSocket.bind}. */
export interface BindOptions {
  /** Local port; 0 (default) lets the system pick one, readable with `address()`. */
  port?: number;
  /** Local address or host name; default `0.0.0.0` for `udp4`, `::` for `udp6`. */
  address?: string;
  signal?: AbortSignal;
}

/** The default of {@link UdpSocketOptions.highWaterMark}. */
export const DEFAULT_HIGH_WATER_MARK = 1024;

/** How long `close()` waits for sends still in flight before closing anyway. */
const CLOSE_DEADLINE_MS = 1000;

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
  /**
   * Whether received datagrams carry `to`, `interface` and `ttl`, and replies leave from the
   * address each request was sent to: {@link UdpSocketOptions.metadata} asked on the native
   * transport.
   */
  readonly metadata: boolean;

  #state: SocketState = 'unbound';
  #transport: Transport;
  #inbox: Inbox;
  #closing: Promise<void> | undefined;
  #remote: Endpoint | undefined;
  #sender: Sender;
  #receiveErrors = 0;
  #errorListeners = new Set<(err: UdpError) => void>();
  #pendingBufferSizes: { receive: number | undefined; send: number | undefined };
  #lookup: LookupFunction | undefined;
  #interface: string | undefined;
  /** Settles when a bind in progress has succeeded or failed. */
  #binding: Promise<void> = Promise.resolve();

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
    this.#inbox = new Inbox(
      hwm,
      {
        isClosed: () => this.#state === 'closing' || this.#state === 'closed',
        readLimit: (n) => {
          if (this.#state === 'bound') this.#transport.readLimit(n);
        },
        readMore: (n) => {
          if (this.#state === 'bound') this.#transport.readMore(n);
        },
      },
      options.accept,
    );
    this.#pendingBufferSizes = { receive: options.recvBufferSize, send: options.sendBufferSize };
    this.#lookup = options.lookup;
    this.#interface = options.interface;
    this.#transport = this.#openTransport(options);
    this.metadata = options.metadata === true && this.#transport.receiveMetadata(true);
    this.#sender = new Sender(
      {
        family: this.family,
        type,
        bound: () => this.#state === 'bound',
        closed: () => this.#state === 'closing' || this.#state === 'closed',
        remote: () => this.#remote,
        ready: () => this.#ready(),
        resolve: (host) => this.#resolve(host),
      },
      this.#transport,
    );
  }

  #openTransport(options: UdpSocketOptions): Transport {
    try {
      return createTransport(
        options.transport ?? 'auto',
        {
          family: this.family,
          ipv6Only: options.ipv6Only ?? false,
          reuseAddr: options.reuseAddr ?? false,
          reusePort: options.reusePort ?? false,
          coalesce: options.coalesce ?? false,
          gso: options.gso ?? true,
          gro: options.gro ?? false,
          receiveThread: options.receiveThread ?? false,
        },
        {
          datagram: (data, from, receivedAt, borrowed, arrival, ttl) =>
            this.#inbox.deliver(data, from, receivedAt, borrowed, arrival, ttl),
          batch: () => this.#inbox.batchStarted(),
          takeBatch: (batch) => this.#inbox.takeBatch(batch),
          // After bind, errors come from receiving (ICMP errors on a connected socket): a
          // counted warning, never a crash.
          receiveError: (code) => {
            this.#receiveErrors++;
            if (this.#errorListeners.size > 0) {
              const err = fromSystemError(
                Object.assign(new Error(code), { code, syscall: 'recvmsg' }),
                'receive from',
                this.#remote,
              );
              for (const listener of this.#errorListeners) listener(err);
            }
          },
        },
      );
    } catch (err) {
      // Out of descriptors (EMFILE) and the like: a coded error, as node:dgram's bind gives.
      throw fromSystemError(err, 'open a socket');
    }
  }

  /** `native` (batched recvmmsg/sendmmsg) or `dgram` (node:dgram): what this socket runs on. */
  get transport(): TransportKind {
    return this.#transport.kind;
  }

  /** Where the socket is in its lifecycle. */
  get state(): SocketState {
    return this.#state;
  }
  /**
   * Datagrams received from the network: what consumers took, plus {@link droppedByQueue},
   * {@link queued} and {@link denied}.
   */
  get packetsReceived(): number {
    return this.#inbox.packetsReceived;
  }
  /** Payload bytes received, including those the queue dropped. */
  get bytesReceived(): number {
    return this.#inbox.bytesReceived;
  }
  /** Datagrams the kernel accepted for sending. */
  get packetsSent(): number {
    return this.#sender.packetsSent;
  }
  /** Payload bytes the kernel accepted for sending. */
  get bytesSent(): number {
    return this.#sender.bytesSent;
  }
  /**
   * Datagrams dropped because the queue was full: the consumer was slower than the network.
   * {@link packetsReceived} is always what consumers took, plus this, plus {@link queued}.
   */
  get droppedByQueue(): number {
    return this.#inbox.droppedByQueue;
  }
  /** Sends the kernel refused. */
  get sendErrors(): number {
    return this.#sender.sendErrors;
  }
  /**
   * Calls `listener` with each error the receive path meets (counted in
   * {@link receiveErrors} either way), as a coded error: on a connected socket, a
   * {@link ConnectionRefusedError} naming the peer when it answered ICMP port unreachable.
   * Returns a function that stops the calls.
   */
  onReceiveError(listener: (err: UdpError) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /** Errors reported while receiving, such as ICMP port unreachable on a connected socket. */
  get receiveErrors(): number {
    return this.#receiveErrors;
  }
  /**
   * Send calls still waiting on the kernel, as node:dgram's `getSendQueueCount()`: with the
   * native transport, those that met a full send buffer (EAGAIN) and wait for room, holding
   * their own copy of the data; with node:dgram, every send until its callback.
   */
  get sendQueueCount(): number {
    return this.#sender.inflight;
  }
  /** Datagrams the `accept` option refused (included in {@link packetsReceived}). */
  get denied(): number {
    return this.#inbox.denied;
  }
  /** Datagrams waiting in the queue for the consumer. */
  get queued(): number {
    return this.#inbox.queued;
  }

  /** SO_RCVBUF as the kernel granted it, in bytes (Linux counts its overhead, doubling it). */
  get recvBufferSize(): number {
    this.#assertBound('read the receive buffer size of');
    return this.#transport.bufferSize('receive');
  }

  /** SO_SNDBUF as the kernel granted it, in bytes. */
  get sendBufferSize(): number {
    this.#assertBound('read the send buffer size of');
    return this.#transport.bufferSize('send');
  }

  /**
   * Allows sending to broadcast addresses (SO_BROADCAST): a subnet's (`10.0.0.255`) or
   * 255.255.255.255. Without it the kernel refuses them (`PermissionDeniedError`).
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when not bound
   */
  setBroadcast(on: boolean): void {
    this.#setOption('broadcast', on ? 1 : 0, 'set SO_BROADCAST on');
  }

  /**
   * The hop limit of unicast datagrams sent from here (IP_TTL, IPV6_UNICAST_HOPS), 1-255.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` outside 1-255
   */
  setTTL(hops: number): void {
    this.#setOption('ttl', checkHops(hops), 'set the TTL of');
  }

  /** The hop limit of multicast datagrams sent from here (IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS), 0-255. */
  setMulticastTTL(hops: number): void {
    this.#setOption('multicastTtl', checkHops(hops, 0), 'set the multicast TTL of');
  }

  /** Whether multicast sent from here is also delivered to this host's own members (default on). */
  setMulticastLoopback(on: boolean): void {
    this.#setOption('multicastLoop', on ? 1 : 0, 'set multicast loopback on');
  }

  /**
   * Joins a multicast group (any source), on `iface` (a name or one of its addresses) or on
   * the interface the routing table picks for the group. Repeatable, one group at a time.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` when `group` is not a multicast
   *   address of the socket's family, or no interface is `iface`
   */
  addMembership(group: string, iface?: string): void {
    this.#membership(true, group, undefined, iface);
  }

  /** Leaves a group joined with {@link addMembership}. */
  dropMembership(group: string, iface?: string): void {
    this.#membership(false, group, undefined, iface);
  }

  /** Joins a group for datagrams from `source` only (source-specific multicast, 232.0.0.0/8, ff3x::). */
  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#membership(true, group, source, iface);
  }

  /** Leaves a group joined with {@link addSourceSpecificMembership}. */
  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    this.#membership(false, group, source, iface);
  }

  /** Sends multicast out of `iface` (a name or one of its addresses) rather than the routed one. */
  setMulticastInterface(iface: string): void {
    this.#assertBound('configure');
    const ref = resolveInterface(iface, this.family);
    try {
      this.#transport.multicastInterface(ref);
    } catch (err) {
      throw fromSystemError(err, `send multicast out of ${ref.name} from`);
    }
  }

  #tieToInterface(iface: string): void {
    const ref = resolveInterface(iface, this.family);
    let done: boolean;
    try {
      done = this.#transport.bindToDevice(ref);
    } catch (err) {
      throw fromSystemError(err, `tie the socket to ${ref.name}`);
    }
    if (!done) {
      const why = nativeUnavailableReason === undefined ? '' : ` (${nativeUnavailableReason})`;
      throw new NotSupportedError(
        `tying a socket to an interface (${ref.name}) needs the native transport${why}`,
      );
    }
  }

  #membership(join: boolean, group: string, source: string | undefined, iface: string | undefined): void {
    this.#assertBound('configure');
    if (ipFamily(group) !== this.family || !isMulticast(group, this.family)) {
      throw new InvalidArgumentError(`${group} is not an ${this.family} multicast group`);
    }
    if (source !== undefined && ipFamily(source) !== this.family) {
      throw new InvalidArgumentError(`source ${source} is not an ${this.family} address`);
    }
    const ref = iface === undefined ? undefined : resolveInterface(iface, this.family);
    try {
      this.#transport.membership(join, group, source, ref);
    } catch (err) {
      // ENODEV without an interface: no route covers the group, so the kernel had none to pick.
      const hint =
        !ref && (err as { code?: string }).code === 'ENODEV' ? ' (no route to it: name an interface)' : '';
      throw fromSystemError(err, `${join ? 'join' : 'leave'} ${group}${ref ? ` on ${ref.name}` : ''}${hint}`);
    }
  }

  /** Sets a socket option; `what` names it for errors ('set SO_BROADCAST on'). */
  #setOption(name: SocketOptionName, value: number, what: string): void {
    this.#assertBound('configure');
    try {
      this.#transport.setOption(name, value);
    } catch (err) {
      throw fromSystemError(err, `${what} the socket`);
    }
  }

  /**
   * Stops taking datagrams from the kernel for now: they wait in the socket's receive buffer
   * (and past its size the kernel drops them, counted in {@link kernelDrops}). For consumers
   * whose own output is full. Returns false where the transport cannot pause (node:dgram);
   * datagrams then keep coming.
   */
  pause(): boolean {
    if (this.#state !== 'bound' || !this.#transport.pause(true)) return false;
    this.#inbox.setPaused(true);
    return true;
  }

  /**
   * Takes datagrams from the kernel again after {@link pause}, or after a
   * {@link ConsumeOptions.limit} was reached. Idle timeouts count from here: time paused is
   * not silence.
   */
  resume(): void {
    if (this.#state !== 'bound') return;
    this.#transport.pause(false);
    this.#transport.readLimit(undefined);
    this.#inbox.setPaused(false);
  }

  /**
   * Runs the receive path on made-up datagrams, with no system call and no traffic: each one
   * reaches the consumer (or the queue) as a real one from 127.0.0.1:1 would, through the same
   * code, so that a flood arriving at once meets code the JavaScript engine has optimized. They
   * are counted like received ones: use a socket of its own for this, and close it after.
   * Up to 64 datagrams a call.
   */
  simulateReceive(payloads: readonly Uint8Array[]): void {
    this.#assertBound('simulate reception on');
    this.#transport.simulate(payloads);
  }

  /**
   * Datagrams the kernel dropped for this socket because its receive buffer was full (the
   * `drops` column of /proc/net/udp). `undefined` where the system does not say (not Linux).
   */
  /**
   * Segmentation offloads in force (native transport): whether GSO and GRO are on, how many
   * buffers went out with GSO and how many read held several datagrams. `undefined` on
   * node:dgram.
   */
  get offloads(): Offloads | undefined {
    return this.#transport.offloads();
  }

  /** The receive thread's ring ({@link UdpSocketOptions.receiveThread}); undefined without one. */
  get receiveRing(): RingStats | undefined {
    return this.#transport.ring();
  }

  /**
   * Turns read coalescing ({@link UdpSocketOptions.coalesce}) on or off while the socket
   * runs: on for a flood, off again for latency. Nothing on node:dgram.
   */
  /**
   * For a SO_REUSEPORT group of `groupSize` sockets ({@link UdpSocketOptions.reusePort}), bound
   * in order: each datagram goes to the socket numbered (the CPU that took it in) modulo
   * `groupSize`, rather than by a hash of its sender. Where the network card or RPS spreads
   * flows over CPUs, each socket then reads what its own CPU received (on loopback, the
   * sender's CPU). Set on one socket of the group, it holds for all. Native transport only.
   *
   * @throws {NotSupportedError} on node:dgram
   */
  steerByCpu(groupSize: number): void {
    this.#transport.steerByCpu(groupSize);
  }

  setCoalesce(on: boolean): void {
    if (this.#state !== 'closing' && this.#state !== 'closed') this.#transport.setCoalesce(on);
  }

  get kernelDrops(): number | undefined {
    return this.#state === 'bound' ? this.#transport.kernelDrops() : undefined;
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
    const binding = this.#bindNow(port, options);
    // Sends made meanwhile wait for this, as node:dgram queues them.
    this.#binding = binding.then(
      () => {},
      () => {},
    );
    return binding;
  }

  async #bindNow(port: number, options: BindOptions): Promise<Endpoint> {
    const { signal } = options;
    try {
      const host = options.address ?? (this.type === 'udp6' ? '::' : '0.0.0.0');
      const { address } = await resolveHost(host, { family: this.family, signal, lookup: this.#lookup });
      if (this.#interface !== undefined) this.#tieToInterface(this.#interface);
      const bound = this.#transport.bind(address, port, true).catch((err: unknown) => {
        throw fromSystemError(err, 'bind', { address, port });
      });
      await (signal ? raceAbort(bound, signal) : bound);
      const { receive, send } = this.#pendingBufferSizes;
      if (receive !== undefined) this.#transport.bufferSize('receive', receive);
      if (send !== undefined) this.#transport.bufferSize('send', send);
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
      lookup: this.#lookup,
    });
    await this.#transport.connect(address, dest).catch((err: unknown) => {
      throw fromSystemError(err, 'connect', { address, port: dest });
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
    const { address, port } = this.#transport.localAddress();
    return { address, port, family: this.family };
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
  send(data: Uint8Array | string, port?: number, host?: string): Promise<void> {
    return this.#sender.send(data, port, host);
  }

  /**
   * Sends each payload as one datagram, in order, in as few system calls as the transport
   * allows (sendmmsg, 64 at a time, with the native transport). Resolves once the kernel has
   * taken them all.
   *
   * @throws the errors of {@link UdpSocket.send}; the error's `sent` says how many of the
   *   datagrams the kernel took before it (that one and those after it were not sent)
   */
  sendEach(payloads: readonly (Uint8Array | string)[], port?: number, host?: string): Promise<void> {
    return this.#sender.sendEach(payloads, port, host);
  }

  /**
   * Sends `count` datagrams packed back to back in `data`, `lengths[i]` bytes each, in order,
   * like {@link UdpSocket.sendEach} but with no array of buffers: for load generators that
   * rewrite one buffer.
   *
   * @throws the errors of {@link UdpSocket.send}; the error's `sent` says how many of the
   *   datagrams the kernel took before it (that one and those after it were not sent)
   */
  sendPacked(
    data: Uint8Array,
    lengths: Uint32Array,
    count: number,
    port?: number,
    host?: string,
  ): Promise<void> {
    return this.#sender.sendPacked(data, lengths, count, port, host);
  }

  /**
   * Sends `count` datagrams lying anywhere in `data`, in order: datagram i is the bytes
   * `data[offsets[i], offsets[i] + lengths[i])`. Like {@link UdpSocket.sendPacked}, but the
   * datagrams need not be back to back: records framed inside one chunk of input (lines, with
   * their delimiters between them) go out as they lie, with no object per record, in one
   * system call per 64 messages with the native transport (and, with GSO, equal-size runs as
   * one buffer each). Don't change `data` or the arrays until the promise settles.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` when a record runs past the data, or
   *   on a bad destination
   * @throws the errors of {@link UdpSocket.send}; the error's `sent` says how many of the
   *   datagrams the kernel took before it (that one and those after it were not sent)
   */
  sendRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    port?: number,
    host?: string,
  ): Promise<void> {
    return this.#sender.sendRecords(data, offsets, lengths, count, port, host);
  }

  /**
   * Sends one datagram now, if the socket can take it without waiting, for hot loops that
   * prefer a `false` to a promise: true when the kernel took it (node:dgram: when it was handed
   * over; its errors are then counted in {@link sendErrors}), false when it would have to wait
   * or the socket is not bound yet. Nothing is queued and nothing is copied. Takes IP literals
   * only: a name needs a lookup, which cannot be synchronous.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad payload or destination, or a host name
   * @throws {MessageTooLargeError} `UDP_ERR_MSG_TOO_LARGE` over the size limit
   * @throws {ConnectionRefusedError} `UDP_ERR_CONN_REFUSED` and the other errors of
   *   {@link UdpSocket.send} the kernel reports at once; each is counted
   */
  trySend(data: Uint8Array | string, port?: number, host?: string): boolean {
    return this.#sender.trySend(data, port, host);
  }

  /**
   * Answers a received datagram: sends `data` to its sender, from the address it was sent to
   * when the socket has {@link metadata} (else from the address the routing table picks, as
   * `send` does). A server bound to a wildcard address on a host with several addresses needs
   * this: a client that sent to the second address drops an answer from the first. For a
   * datagram sent to a broadcast address or a group, the answer leaves from the receiving
   * interface's own address. Like `send`, it resolves at once when the kernel took it.
   *
   * @throws the errors of {@link UdpSocket.send}
   */
  reply(to: Datagram, data: Uint8Array | string): Promise<void> {
    return this.#sender.reply(data, to.from, to[ARRIVAL]);
  }

  /**
   * {@link reply} now, if the socket can take it without waiting, as {@link trySend} does: true
   * when the kernel took it, false when it would have to wait (nothing queued, nothing copied).
   *
   * @throws the errors of {@link trySend}
   */
  tryReply(to: Datagram, data: Uint8Array | string): boolean {
    return this.#sender.tryReply(data, to.from, to[ARRIVAL]);
  }

  /**
   * Sends several datagrams, each to its own destination, in as few system calls as the
   * transport allows (sendmmsg with an address per message, with the native transport): how
   * a server answers many peers at once. Each distinct host name is resolved once per call.
   * Not for a connected socket, which sends only to its peer.
   *
   * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a bad payload or destination,
   *   or on a connected socket
   * @throws the errors of {@link UdpSocket.sendEach}, with `sent`
   */
  sendBatch(datagrams: readonly OutgoingDatagram[]): Promise<void> {
    return this.#sender.sendBatch(datagrams);
  }

  /**
   * The received datagrams, oldest first, as an async iterator. It ends when the socket closes
   * (after yielding what was queued) or after `idleTimeout` ms of silence, and throws an
   * {@link AbortError} when `signal` fires. Leaving the loop early does not close the socket.
   */
  messages(options: MessagesOptions = {}): AsyncIterableIterator<Datagram> {
    return this.#inbox.messages(options);
  }

  /**
   * Like {@link UdpSocket.messages}, but yields everything queued at once, as an array of one
   * or more datagrams: one await per batch rather than per datagram, for consumers that must
   * keep up with a flood.
   */
  batches(options: MessagesOptions = {}): AsyncIterableIterator<Datagram[]> {
    return this.#inbox.batches(options);
  }

  /**
   * Hands each datagram to `handler` as it arrives, with no queue and no await per datagram:
   * the fastest way to take a flood. `msg.data` is valid only during the call (the native
   * transport reuses its receive buffer); copy what you keep. Datagrams already queued go
   * first. Resolves when `handler` returns `false`, after `idleTimeout` ms of silence (time
   * paused is not silence), after `limit` datagrams, or when the socket closes; rejects with an
   * {@link AbortError} when `signal` fires, or with what `handler` threw or its promise
   * rejected with. One consumer at a time; the queue and iterators wait meanwhile.
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when another consume() is running
   */
  consume(handler: (msg: Datagram) => unknown, options: ConsumeOptions = {}): Promise<void> {
    return this.#inbox.consume(handler, options);
  }

  /**
   * Like {@link UdpSocket.consume}, `handler` taking datagrams in batches as the native
   * transport reads them (from node:dgram, and what was queued, in batches of one). For
   * consumers of floods that read each datagram in place: no Buffer nor object is made per
   * datagram. The batch is valid only during the call. With an `accept` filter, batches of
   * one. No `limit`.
   *
   * ```ts
   * let bytes = 0;
   * await socket.consumeBatches((batch) => {
   *   for (let i = 0; i < batch.count; i++) bytes += batch.length(i);
   * }, { idleTimeout: 1000 });
   * ```
   *
   * @throws {SocketStateError} `UDP_ERR_SOCKET_STATE` when another consume() is running
   */
  consumeBatches(
    handler: (batch: ReceivedBatch) => unknown,
    options: Omit<ConsumeOptions, 'limit'> = {},
  ): Promise<void> {
    return this.#inbox.consumeBatches(handler, options);
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
  receive(options: ReceiveOptions = {}): Promise<Datagram> {
    return this.#inbox.receive(options);
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
      if (this.#sender.inflight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.#sender.settled(),
          new Promise((resolve) => {
            timer = setTimeout(resolve, CLOSE_DEADLINE_MS);
          }),
        ]);
        clearTimeout(timer);
      }
      await this.#closeHandle();
    })();
    this.#inbox.close();
    return this.#closing;
  }

  /** Closes the socket; lets `await using socket = ...` release it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #closeHandle(): Promise<void> {
    try {
      await this.#transport.close();
    } finally {
      this.#state = 'closed';
    }
  }

  /** Binds an unbound socket, waits for a bind in progress; throws once closing. */
  async #ready(): Promise<void> {
    if (this.#state === 'unbound') await this.bind();
    else if (this.#state === 'binding') await this.#binding;
    if (this.#state !== 'bound') throw new SocketClosedError();
  }

  /** An IP literal as it is; a name through the socket's lookup. */
  async #resolve(host: string): Promise<string> {
    if (ipFamily(host) !== undefined) return host;
    return (await resolveHost(host, { family: this.family, lookup: this.#lookup })).address;
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
    const resolved = await resolveHost(address, { signal, lookup: socketOptions.lookup });
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

/** A hop limit: `min`-255. */
function checkHops(hops: number, min = 1): number {
  if (!Number.isInteger(hops) || hops < min || hops > 255) {
    throw new InvalidArgumentError(`hop limit ${hops} is not in ${min}-255`);
  }
  return hops;
}
