/**
 * What moves datagrams in and out of the kernel under a UdpSocket: node:dgram, or the native
 * addon's batched recvmmsg/sendmmsg. Both hand each datagram to the socket the same way and
 * reject with Node-style system errors (`code`, `syscall`), which the socket translates.
 */
import type * as dgram from 'node:dgram';
import { createRequire } from 'node:module';
import type { Endpoint, IpFamily } from './address.js';
import type { ReceivedBatch } from './batch.js';
import { NotSupportedError } from './errors.js';
import type { Datagram } from './inbox.js';
import type { InterfaceRef } from './interfaces.js';
import { socketDrops, socketDropsAt } from './kernel.js';
import { type NativeArrival, type NativeHandle, nativeAddon, type SocketOptionName } from './native.js';

/**
 * Where a datagram arrived, as the kernel says with IP_PKTINFO / IPV6_PKTINFO (the native
 * transport, with metadata asked for). One object per distinct arrival: a flood to one
 * address reuses one.
 */
export interface Arrival {
  /** The destination address in the datagram's header: a local address, a group, a broadcast. */
  readonly to: string;
  /** The interface it came in on, by name, when the kernel says. */
  readonly interface: string | undefined;
  /**
   * The source a reply should have: `to` when it is one of the host's addresses; for a
   * broadcast or group datagram, the receiving interface's address (IPv4) or `::` (IPv6: the
   * kernel picks one of the interface's addresses).
   */
  readonly replyFrom: string;
  /** The index of the interface a reply must leave through (IPv6 link-local or group), or 0. */
  readonly replyInterface: number;
}

/** Where a transport delivers what it receives. */
export interface TransportSink {
  /**
   * One datagram. `borrowed` data is valid only during the call (the native transport's
   * receive buffer, reused by the next batch): copy it to keep it. `arrival` and `ttl` come
   * only from the native transport with metadata on, and only where the kernel said them.
   */
  datagram(
    data: Buffer,
    from: Endpoint,
    receivedAt: number,
    borrowed: boolean,
    arrival?: Arrival,
    ttl?: number,
  ): void;
  /** Errors while receiving (ICMP errors on a connected socket): counted, never fatal. */
  receiveError(code: string): void;
  /** A batch of datagrams is about to be handed over, one `datagram` call each: read the clock once. */
  batch(): void;
  /**
   * A whole batch, for a consumer of batches: true when taken, false when it must come one
   * `datagram` call at a time. Only batches without arrival metadata are offered.
   */
  takeBatch(batch: ReceivedBatch): boolean;
}

/** The kind of transport: `native` (recvmmsg/sendmmsg addon) or `dgram` (node:dgram). */
export type TransportKind = 'native' | 'dgram';

export interface Transport {
  readonly kind: TransportKind;
  bind(address: string, port: number, exclusive: boolean): Promise<void>;
  connect(address: string, port: number): Promise<void>;
  localAddress(): { address: string; port: number };
  /**
   * Sends one datagram; resolves when the kernel took it. Like every send here, it returns
   * `undefined` instead of a promise when the kernel took everything at once, and may throw
   * at once what the kernel refused at once (with `sent`). With `from`, it leaves from the
   * address and interface a reply to that arrival should have (native only: node:dgram
   * cannot choose a source per datagram, and rejects).
   */
  send(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    from?: Arrival,
  ): Promise<void> | undefined;
  /** Sends each payload as a datagram, in order; resolves when the kernel took them all. */
  sendEach(
    payloads: Uint8Array[],
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined;
  /**
   * Sends one datagram now if the socket can take it: true when handed over, false when it
   * would have to wait (nothing was sent). Throws what the kernel refused. Never queues.
   * node:dgram cannot tell synchronously: it hands the datagram over unless its queue is
   * waiting, and reports errors through `failed`.
   */
  trySend(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    failed: (err: Error) => void,
    from?: Arrival,
  ): boolean;
  /**
   * Asks the kernel for each datagram's destination address, interface and TTL (delivered
   * as the sink's `arrival` and `ttl`). Returns false where the transport cannot.
   */
  receiveMetadata(on: boolean): boolean;
  /** Like sendEach, payload i to addresses[i]:ports[i] (IP literals). */
  sendEachTo(payloads: Uint8Array[], ports: number[], addresses: string[]): Promise<void> | undefined;
  /**
   * Sends `count` datagrams packed back to back in `data`, with the given lengths, in order.
   * Resolves when the kernel took them all.
   */
  sendPacked(
    data: Uint8Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined;
  /**
   * Sends `count` datagrams lying anywhere in `data`, in order: datagram i is
   * `data[offsets[i], offsets[i] + lengths[i])` (records framed inside one chunk of input,
   * with no object per record). Resolves when the kernel took them all.
   */
  sendRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined;
  /** Joins (or leaves) a multicast group, source-specific with a source, on an interface or the routed one. */
  membership(join: boolean, group: string, source: string | undefined, iface: InterfaceRef | undefined): void;
  /** The interface multicast sent from here goes out of. */
  multicastInterface(iface: InterfaceRef): void;
  /**
   * Ties the socket to one interface (SO_BINDTODEVICE). Returns false where the transport
   * cannot (node:dgram has no such option).
   */
  bindToDevice(iface: InterfaceRef): boolean;
  /** Sets an integer socket option of the bound socket (broadcast, TTLs, multicast loop). */
  setOption(name: SocketOptionName, value: number): void;
  /** Asks for a buffer size when `bytes` is given; returns what the kernel granted. */
  bufferSize(which: 'receive' | 'send', bytes?: number): number;
  /**
   * Stops (or restarts) taking datagrams from the kernel, whose receive buffer then holds
   * them. Returns false where the transport cannot (node:dgram has no pause).
   */
  pause(paused: boolean): boolean;
  /**
   * Reads at most `n` more datagrams from the kernel, then stops (they stay in its receive
   * buffer); `undefined` lifts the limit. Returns false where the transport cannot stop.
   */
  readLimit(n: number | undefined): boolean;
  /** Raises a read limit in force by `n` (a datagram read and set aside); none: nothing. */
  readMore(n: number): void;
  /** Datagrams the kernel dropped for this socket (receive buffer full), where it says. */
  kernelDrops(): number | undefined;
  /** GSO/GRO in force and their counts; undefined where the transport has none. */
  offloads(): Offloads | undefined;
  /** Turns read coalescing on or off (native only; see TransportOptions.coalesce). */
  setCoalesce(on: boolean): void;
  /** See {@link UdpSocket.steerByCpu}. */
  steerByCpu(groupSize: number): void;
  /** The receive thread's ring, when one reads the socket. */
  ring(): RingStats | undefined;
  /**
   * Hands `payloads` to the sink as if received from 127.0.0.1:1, through the same code a
   * real batch takes (the native transport: its batch handler, from a slab laid out as the
   * addon lays it out), without any system call. For warming the receive path up.
   */
  simulate(payloads: readonly Uint8Array[]): void;
  close(): Promise<void>;
}

/** Options a transport needs when it is created. */
export interface TransportOptions {
  family: IpFamily;
  ipv6Only: boolean;
  reuseAddr: boolean;
  /** Native only: SO_REUSEPORT (node:dgram in Node 20 has none). */
  reusePort: boolean;
  /** Native only: batch arrivals under load (see native/udpkit.c). */
  coalesce: boolean;
  /** Native only: equal-size datagrams of a batch as one UDP_SEGMENT buffer. */
  gso: boolean;
  /** Native only: reads may hold many datagrams (UDP_GRO). */
  gro: boolean;
  /** Native only: a thread reads the socket into a bounded ring (native/ring.c). */
  receiveThread: boolean;
}

/** See {@link UdpSocket.receiveRing}. */
export interface RingStats {
  /** Datagrams read by the thread, not yet handed over. */
  held: number;
  /** Times the ring was full: the thread waited, and the kernel's buffer held what came. */
  fulls: number;
}

/** See {@link UdpSocket.offloads}. */
export interface Offloads {
  gso: boolean;
  gro: boolean;
  /** Buffers sent with UDP_SEGMENT, each holding up to 64 datagrams. */
  gsoSends: number;
  /** Buffers read with UDP_GRO that held more than one datagram. */
  groReads: number;
}

/** The best transport available, or the one asked for. */
export function createTransport(
  kind: TransportKind | 'auto',
  options: TransportOptions,
  sink: TransportSink,
): Transport {
  if (kind === 'native' || (kind === 'auto' && nativeAddon)) {
    if (!nativeAddon) throw new Error('the native transport is not available');
    return new NativeTransport(options, sink);
  }
  return new DgramTransport(options, sink);
}

/** What node:dgram keeps in its socket's state: the libuv handle, which can stop reading. */
interface DgramHandle {
  recvStart(): number;
  recvStop(): number;
  /** The socket's descriptor (Unix). */
  readonly fd?: number;
}

class DgramTransport implements Transport {
  readonly kind = 'dgram';
  #sink: TransportSink;
  #family: IpFamily;
  #socket: dgram.Socket;
  #bound = false;
  #paused = false;
  /** Datagrams still to read before stopping; -1 for no limit. */
  #budget = -1;
  #reading = true;
  /** Asked for, and not to be had on node:dgram in Node 20: bind refuses. */
  #reusePort: boolean;
  /** The libuv handle once found after bind; null when Node does not show it. */
  #recvHandle: DgramHandle | null | undefined;

  constructor(options: TransportOptions, sink: TransportSink) {
    // Loaded on first use: with the native transport, node:dgram is never needed.
    this.#sink = sink;
    this.#family = options.family;
    this.#reusePort = options.reusePort;
    const { createSocket } = createRequire(import.meta.url)('node:dgram') as typeof dgram;
    this.#socket = createSocket({
      type: options.family === 'IPv6' ? 'udp6' : 'udp4',
      ipv6Only: options.ipv6Only,
      reuseAddr: options.reuseAddr,
    });
    this.#socket.on('message', (data, rinfo) => {
      if (this.#budget > 0 && --this.#budget === 0) this.#applyReading();
      sink.batch();
      // rinfo already holds address, port and family; reuse it rather than copy per datagram.
      sink.datagram(data, rinfo as Endpoint, performance.timeOrigin + performance.now(), false);
    });
    this.#socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#bound) sink.receiveError(err.code ?? 'EIO');
    });
  }

  bind(address: string, port: number, exclusive: boolean): Promise<void> {
    if (this.#reusePort) {
      return Promise.reject(
        new NotSupportedError('a SO_REUSEPORT group (reusePort) needs the native transport'),
      );
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#socket.once('error', onError);
      this.#socket.bind({ port, address, exclusive }, () => {
        this.#socket.off('error', onError);
        this.#bound = true;
        this.#applyReading();
        resolve();
      });
    });
  }

  connect(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.connect(port, address, (err?: Error) => (err ? reject(err) : resolve()));
    });
  }

  localAddress(): { address: string; port: number } {
    const { address, port } = this.#socket.address();
    return { address, port };
  }

  send(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    from?: Arrival,
  ): Promise<void> {
    if (from !== undefined) return Promise.reject(noSourceChoice());
    return new Promise((resolve, reject) => {
      const done = (err: Error | null) => (err ? reject(err) : resolve());
      if (port === undefined) this.#socket.send(data, done);
      else this.#socket.send(data, port, address, done);
    });
  }

  async sendEach(
    payloads: Uint8Array[],
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> {
    await this.#sendInOrder(payloads.length, (i) => [payloads[i] as Uint8Array, port, address]);
  }

  /**
   * Sends datagram 0 to `count - 1` one at a time, stopping at the first failure, so the
   * error's `sent` says exactly which went.
   */
  async #sendInOrder(
    count: number,
    datagram: (i: number) => [Uint8Array, number | undefined, string | undefined],
  ): Promise<void> {
    for (let i = 0; i < count; i++) {
      const [data, port, address] = datagram(i);
      await this.send(data, port, address).catch((err: unknown) => {
        throw withSent(err, i);
      });
    }
  }

  trySend(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    failed: (err: Error) => void,
    from?: Arrival,
  ): boolean {
    if (from !== undefined) throw noSourceChoice();
    if (this.#socket.getSendQueueCount() > 0) return false;
    const done = (err: Error | null) => {
      if (err) failed(err);
    };
    if (port === undefined) this.#socket.send(data, done);
    else this.#socket.send(data, port, address, done);
    return true;
  }

  receiveMetadata(): boolean {
    return false;
  }

  async sendEachTo(payloads: Uint8Array[], ports: number[], addresses: string[]): Promise<void> {
    await this.#sendInOrder(payloads.length, (i) => [payloads[i] as Uint8Array, ports[i], addresses[i]]);
  }

  async sendPacked(
    data: Uint8Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> {
    let off = 0;
    await this.#sendInOrder(count, (i) => {
      const len = lengths[i] as number;
      off += len;
      return [data.subarray(off - len, off), port, address];
    });
  }

  async sendRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> {
    await this.#sendInOrder(count, (i) => {
      const at = offsets[i] as number;
      return [data.subarray(at, at + (lengths[i] as number)), port, address];
    });
  }

  membership(
    join: boolean,
    group: string,
    source: string | undefined,
    iface: InterfaceRef | undefined,
  ): void {
    const socket = this.#socket;
    const at = this.#dgramInterface(iface);
    if (source === undefined) {
      if (join) socket.addMembership(group, at);
      else socket.dropMembership(group, at);
    } else if (join) socket.addSourceSpecificMembership(source, group, at);
    else socket.dropSourceSpecificMembership(source, group, at);
  }

  multicastInterface(iface: InterfaceRef): void {
    this.#socket.setMulticastInterface(this.#dgramInterface(iface) as string);
  }

  bindToDevice(): boolean {
    return false;
  }

  /** node:dgram names an interface by an IPv4 address, or for IPv6 as '::%name'. */
  #dgramInterface(iface: InterfaceRef | undefined): string | undefined {
    if (iface === undefined) return undefined;
    if (this.#family === 'IPv6') return `::%${iface.name}`;
    if (iface.address === undefined) {
      throw Object.assign(new Error(`interface ${iface.name} has no IPv4 address`), {
        code: 'EADDRNOTAVAIL',
      });
    }
    return iface.address;
  }

  setOption(name: SocketOptionName, value: number): void {
    const socket = this.#socket;
    if (name === 'broadcast') socket.setBroadcast(value !== 0);
    else if (name === 'ttl') socket.setTTL(value);
    else if (name === 'multicastTtl') socket.setMulticastTTL(value);
    else socket.setMulticastLoopback(value !== 0);
  }

  bufferSize(which: 'receive' | 'send', bytes?: number): number {
    if (which === 'receive') {
      if (bytes !== undefined) this.#socket.setRecvBufferSize(bytes);
      return this.#socket.getRecvBufferSize();
    }
    if (bytes !== undefined) this.#socket.setSendBufferSize(bytes);
    return this.#socket.getSendBufferSize();
  }

  /**
   * node:dgram has no pause, but its socket's libuv handle has recvStop/recvStart (Node 12 to
   * 24 at least). Stopping it from inside a 'message' handler ends libuv's read loop at once,
   * so not one more datagram is taken. Where the handle is not there, reading cannot stop.
   */
  #handle(): DgramHandle | undefined {
    this.#recvHandle ??= this.#findHandle() ?? null;
    return this.#recvHandle ?? undefined;
  }

  #findHandle(): DgramHandle | undefined {
    const socket = this.#socket as unknown as Record<symbol, { handle?: Partial<DgramHandle> } | undefined>;
    const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
    const handle = state === undefined ? undefined : socket[state]?.handle;
    return typeof handle?.recvStop === 'function' && typeof handle.recvStart === 'function'
      ? (handle as DgramHandle)
      : undefined;
  }

  #applyReading(): boolean {
    const handle = this.#handle();
    if (!handle) return false;
    const reading = !this.#paused && this.#budget !== 0;
    if (reading !== this.#reading) {
      this.#reading = reading;
      if (reading) handle.recvStart();
      else handle.recvStop();
    }
    return true;
  }

  pause(paused: boolean): boolean {
    this.#paused = paused;
    return this.#bound && this.#applyReading();
  }

  readLimit(n: number | undefined): boolean {
    this.#budget = n === undefined ? -1 : n;
    return this.#bound && this.#applyReading();
  }

  readMore(n: number): void {
    if (this.#budget < 0) return;
    this.#budget += n;
    if (this.#bound) this.#applyReading();
  }

  simulate(payloads: readonly Uint8Array[]): void {
    const from: Endpoint = { address: '127.0.0.1', port: 1, family: 'IPv4' };
    this.#sink.batch();
    for (const p of payloads) {
      this.#sink.datagram(Buffer.from(p), from, performance.timeOrigin + performance.now(), false);
    }
  }

  offloads(): undefined {
    return undefined;
  }

  setCoalesce(): void {}
  steerByCpu(): void {
    throw new NotSupportedError('steering a SO_REUSEPORT group by CPU needs the native transport');
  }

  ring(): undefined {
    return undefined;
  }

  kernelDrops(): number | undefined {
    // The libuv handle shows its descriptor; where it does not, find the socket by address.
    const fd = this.#handle()?.fd;
    if (typeof fd === 'number' && fd >= 0) return socketDrops(fd);
    const { address, port } = this.localAddress();
    return socketDropsAt(address, port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}

/** A send waiting for the kernel's buffer to have room. */
interface PendingSend {
  /** Separate payloads, or packed `data` with `lengths`. */
  list: Uint8Array[] | undefined;
  data: Uint8Array;
  lengths: Uint32Array;
  /** Where each datagram starts in `data`, when they are not back to back (sendRecords). */
  offsets?: Uint32Array | undefined;
  next: number;
  count: number;
  port: number | undefined;
  address: string | undefined;
  /** A destination per datagram, when they differ (with `list`). */
  ports?: number[];
  addresses?: string[];
  /** The arrival whose reply they are, leaving from its address (with packed `data`). */
  from?: Arrival | undefined;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Marks a batch send's error with how many of its datagrams the kernel took before it: the
 * datagram at that index met the error and was not sent, nor were any after it.
 */
function withSent(err: unknown, sent: number): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  return Object.assign(e, { sent });
}

/** Replaces a waiting send's payloads by copies of those not yet sent. */
function keepOwnCopy(job: PendingSend): void {
  if (job.list) {
    job.list = job.list.map((p, i) => (i < job.next ? p : Uint8Array.prototype.slice.call(p)));
    return;
  }
  if (job.offsets) {
    // Only the records still to go, packed: the chunk they lie in may be megabytes.
    const { data, offsets, lengths, next, count } = job;
    let bytes = 0;
    for (let i = next; i < count; i++) bytes += lengths[i] as number;
    const own = Buffer.allocUnsafe(bytes);
    const at = new Uint32Array(count);
    let o = 0;
    for (let i = next; i < count; i++) {
      const from = offsets[i] as number;
      const len = lengths[i] as number;
      own.set(data.subarray(from, from + len), o);
      at[i] = o;
      o += len;
    }
    job.data = own;
    job.offsets = at;
    job.lengths = lengths.slice(0, count);
    return;
  }
  job.data = Uint8Array.prototype.slice.call(job.data);
  job.lengths = job.lengths.slice();
}

const ONE = new Uint32Array(1);
const noop = () => {};

/** What a send still waiting when its socket closes rejects with. */
function cancelled(): Error {
  return Object.assign(new Error('the socket was closed before the send completed'), { code: 'ECANCELED' });
}
const EMPTY = new Uint8Array(0);
/** Where datagram i starts in the native receive slab. */
const SLOT = 65536;
/** Words of the native metadata buffer per datagram (META_WORDS in native/udpkit.c). */
const META_WORDS = 8;
/** A metadata word the kernel did not give (NONE in native/udpkit.c). */
const NONE = 0xffffffff;
const NO_ARRIVALS: Arrival[] = [];

/** What node:dgram cannot do. */
function noSourceChoice(): Error {
  return new NotSupportedError('choosing the source address of a datagram needs the native transport');
}

/** A batch as the addon lays it out (see deliver() in native/udpkit.c), read in place. */
class NativeBatch implements ReceivedBatch {
  data: Buffer = Buffer.alloc(0);
  count = 0;
  #words: Uint32Array = new Uint32Array(0);
  #times: Float64Array = new Float64Array(0);
  #from: Endpoint[] = [];

  set(data: Buffer, words: Uint32Array, times: Float64Array, from: Endpoint[], count: number): this {
    this.data = data;
    this.#words = words;
    this.#times = times;
    this.#from = from;
    this.count = count;
    return this;
  }

  offset(i: number): number {
    return this.#words[i * META_WORDS + 6] as number;
  }

  length(i: number): number {
    return this.#words[i * META_WORDS] as number;
  }

  from(i: number): Endpoint {
    return this.#from[this.#words[i * META_WORDS + 1] as number] as Endpoint;
  }

  receivedAt(i: number): number {
    return this.#times[(i * META_WORDS) / 2 + 1] as number;
  }

  datagram(i: number): Datagram {
    const at = this.offset(i);
    return {
      data: this.data.subarray(at, at + this.length(i)),
      from: this.from(i),
      receivedAt: this.receivedAt(i),
    };
  }
}

class NativeTransport implements Transport {
  readonly kind = 'native';
  #addon = nativeAddon as NonNullable<typeof nativeAddon>;
  #sock: NativeHandle;
  #sink: TransportSink;
  #family: IpFamily;
  #coalesce: boolean;
  #thread: boolean;
  #closed = false;
  #receiving = false;
  #queue: PendingSend[] = [];
  #waiting = false;
  /** Views of the addon's metadata buffer, made once. */
  #words: Uint32Array | undefined;
  #times: Float64Array | undefined;
  #simulated: { slab: Buffer; meta: Buffer } | undefined;
  /** Sender endpoints by "address|port", so a flood from one sender allocates one object. */
  #senders = new Map<string, Endpoint>();
  #metadata = false;
  /** Arrivals by their three fields, likewise. */
  #arrivals = new Map<string, Arrival>();
  /** The counts at close, still readable after it. */
  #lastOffloads: Offloads | undefined;
  /** The view of a batch for batch consumers: one object, reused. */
  #batch = new NativeBatch();
  /** `#batch` is lent to a consumer whose callback is running. */
  #inBatch = false;

  constructor(options: TransportOptions, sink: TransportSink) {
    this.#sink = sink;
    this.#family = options.family;
    this.#coalesce = options.coalesce;
    this.#thread = options.receiveThread;
    this.#sock = this.#addon.open(
      options.family === 'IPv6' ? 6 : 4,
      options.reuseAddr,
      options.ipv6Only,
      options.reusePort,
    );
    this.#addon.gso(this.#sock, options.gso);
    if (options.gro) this.#addon.gro(this.#sock, true);
  }

  async bind(address: string, port: number): Promise<void> {
    this.#addon.bind(this.#sock, address, port);
    this.#startReceiving();
  }

  async connect(address: string, port: number): Promise<void> {
    this.#addon.connect(this.#sock, address, port);
    this.#startReceiving();
  }

  localAddress(): { address: string; port: number } {
    const [address, port] = this.#addon.localAddress(this.#sock);
    return { address, port };
  }

  send(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    from?: Arrival,
  ): Promise<void> | undefined {
    const tried = this.#queue.length === 0 && !this.#closed;
    if (tried && this.trySend(data, port, address, noop, from)) return undefined;
    return this.#enqueue(
      { list: undefined, data, lengths: Uint32Array.of(data.length), count: 1, port, address, from },
      0,
      tried,
    );
  }

  receiveMetadata(on: boolean): boolean {
    if (!this.#closed) this.#addon.receiveMetadata(this.#sock, on);
    this.#metadata = on;
    return true;
  }

  sendEach(
    payloads: Uint8Array[],
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined {
    return this.#enqueue({
      list: payloads,
      data: EMPTY,
      lengths: ONE,
      count: payloads.length,
      port,
      address,
    });
  }

  trySend(
    data: Uint8Array,
    port: number | undefined,
    address: string | undefined,
    _failed?: (err: Error) => void,
    from?: Arrival,
  ): boolean {
    if (this.#queue.length > 0 || this.#closed) return false;
    ONE[0] = data.length;
    try {
      return (
        this.#addon.sendBatch(
          this.#sock,
          data,
          ONE,
          0,
          1,
          address ?? null,
          port ?? 0,
          from?.replyFrom ?? null,
          from?.replyInterface ?? 0,
        ) === 1
      );
    } catch (err) {
      throw withSent(err, 0);
    }
  }

  sendEachTo(payloads: Uint8Array[], ports: number[], addresses: string[]): Promise<void> | undefined {
    return this.#enqueue({
      list: payloads,
      data: EMPTY,
      lengths: ONE,
      count: payloads.length,
      port: undefined,
      address: undefined,
      ports,
      addresses,
    });
  }

  sendPacked(
    data: Uint8Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined {
    if (this.#queue.length === 0 && !this.#closed) {
      // The hot path: the kernel usually takes it all at once, with no job and no promise.
      let sent: number;
      try {
        sent = this.#addon.sendBatch(this.#sock, data, lengths, 0, count, address ?? null, port ?? 0);
      } catch (err) {
        throw withSent(err, 0);
      }
      if (sent >= count) return undefined;
      return this.#enqueue({ list: undefined, data, lengths, count, port, address }, sent, true);
    }
    return this.#enqueue({ list: undefined, data, lengths, count, port, address });
  }

  sendRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    port: number | undefined,
    address: string | undefined,
  ): Promise<void> | undefined {
    // The addon wants offsets for every length it is given.
    const lens = lengths.length > offsets.length ? lengths.subarray(0, offsets.length) : lengths;
    const job = { list: undefined, data, lengths: lens, offsets, count, port, address };
    if (this.#queue.length === 0 && !this.#closed) {
      // As sendPacked: one call for the whole run of records, no job and no promise when the
      // kernel takes it all.
      let sent: number;
      try {
        sent = this.#addon.sendBatch(
          this.#sock,
          data,
          lens,
          0,
          count,
          address ?? null,
          port ?? 0,
          null,
          0,
          offsets,
        );
      } catch (err) {
        throw withSent(err, 0);
      }
      if (sent >= count) return undefined;
      return this.#enqueue(job, sent, true);
    }
    return this.#enqueue(job);
  }

  /**
   * Sends a job now if nothing waits before it; returns undefined when the kernel took it all,
   * else a promise for the rest, which waits for room (`next` datagrams already went). `tried`:
   * the caller just made the attempt, which the kernel's full buffer cut short.
   */
  #enqueue(
    job: Omit<PendingSend, 'next' | 'resolve' | 'reject'>,
    next = 0,
    tried = false,
  ): Promise<void> | undefined {
    if (this.#closed) return Promise.reject(cancelled());
    const pending: PendingSend = { ...job, next, resolve: noop, reject: noop };
    if (!tried && this.#queue.length === 0 && this.#attempt(pending)) return undefined;
    return new Promise((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
      this.#queue.push(pending);
      // Whatever must wait for room is copied now: the caller's bytes may be lent (a receive
      // buffer the next batch overwrites) or reused as soon as this call returns.
      keepOwnCopy(pending);
      if (this.#queue.length === 1) this.#waitWritable();
    });
  }

  /** Sends what the kernel takes now of `job`; true when all of it went. Throws with `sent`. */
  #attempt(job: PendingSend): boolean {
    const left = job.count - job.next;
    try {
      job.next += job.list
        ? this.#addon.sendBuffers(
            this.#sock,
            job.list,
            job.next,
            left,
            job.addresses ?? job.address ?? null,
            job.ports ?? job.port ?? 0,
          )
        : this.#addon.sendBatch(
            this.#sock,
            job.data,
            job.lengths,
            job.next,
            left,
            job.address ?? null,
            job.port ?? 0,
            job.from?.replyFrom ?? null,
            job.from?.replyInterface ?? 0,
            job.offsets,
          );
    } catch (err) {
      throw withSent(err, job.next);
    }
    return job.next >= job.count;
  }

  #waitWritable(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    this.#ensureCallbacks();
    this.#addon.waitWritable(this.#sock);
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const job = this.#queue[0] as PendingSend;
      let done: boolean;
      try {
        done = this.#attempt(job);
      } catch (err) {
        this.#queue.shift();
        job.reject(err as Error);
        continue;
      }
      if (!done) {
        // The kernel's buffer is full: go on when it has room.
        this.#waitWritable();
        return;
      }
      this.#queue.shift();
      job.resolve();
    }
  }

  #ensureCallbacks(): void {
    if (this.#receiving || this.#closed) return;
    this.#receiving = true;
    const addon = this.#addon;
    const sock = this.#sock;
    addon.startReceiving(
      sock,
      (data, meta, count, senders, arrivals) =>
        this.#onBatch(data, meta, count ?? 0, senders ?? [], arrivals),
      () => {
        this.#waiting = false;
        this.#drain();
      },
    );
    if (this.#thread) addon.receiveThread(sock);
    else if (this.#coalesce && addon.bufferSize(sock, 0, 0, false) >= 1 << 20) addon.setCoalesce(sock, 1);
  }

  #startReceiving(): void {
    this.#ensureCallbacks();
  }

  simulate(payloads: readonly Uint8Array[]): void {
    const count = Math.min(payloads.length, 64);
    // One made-up slab for the transport, as the addon keeps one: made once, reused.
    this.#simulated ??= {
      slab: Buffer.allocUnsafe(64 * SLOT),
      meta: Buffer.alloc(64 * META_WORDS * 4),
    };
    const { slab, meta } = this.#simulated;
    const words = new Uint32Array(meta.buffer, meta.byteOffset, count * META_WORDS);
    const times = new Float64Array(meta.buffer, meta.byteOffset, (count * META_WORDS) / 2);
    for (let i = 0; i < count; i++) {
      const p = payloads[i] as Uint8Array;
      const w = i * META_WORDS;
      slab.set(p, i * SLOT);
      words[w] = p.length;
      words[w + 1] = 0;
      times[w / 2 + 1] = performance.timeOrigin + performance.now();
      // With metadata on, as the addon would say it of a datagram to 127.0.0.1 over lo.
      words[w + 4] = this.#metadata ? 0 : NONE;
      words[w + 5] = this.#metadata ? 64 : NONE;
      words[w + 6] = i * SLOT;
    }
    this.#onBatch(
      slab,
      meta,
      count,
      [['127.0.0.1', 1]],
      this.#metadata ? [['127.0.0.1', 'lo', '127.0.0.1', 0]] : undefined,
    );
  }

  #onBatch(
    slab: Buffer | null,
    meta: Buffer | string,
    count: number,
    senders: [string, number][],
    arrivals: NativeArrival[] | undefined,
  ): void {
    if (slab === null) {
      this.#sink.receiveError(meta as string);
      return;
    }
    const m = meta as Buffer;
    if (this.#words === undefined || this.#words.buffer !== m.buffer) {
      this.#words = new Uint32Array(m.buffer, m.byteOffset, m.length >> 2);
      this.#times = new Float64Array(m.buffer, m.byteOffset, m.length >> 3);
    }
    const words = this.#words;
    const times = this.#times as Float64Array;
    const from: Endpoint[] = senders.map(([address, port]) => this.#endpoint(address, port));
    const where = arrivals === undefined ? NO_ARRIVALS : arrivals.map((a) => this.#arrival(a));
    const sink = this.#sink;
    sink.batch();
    if (arrivals === undefined) {
      // A batch inside a batch of this socket (its close in the callback hands the rest over)
      // takes a view of its own: the outer one is still being read.
      const view = this.#inBatch ? new NativeBatch() : this.#batch;
      this.#inBatch = true;
      try {
        if (sink.takeBatch(view.set(slab, words, times, from, count))) return;
      } finally {
        if (view === this.#batch) this.#inBatch = false;
      }
    }
    for (let i = 0; i < count; i++) {
      const w = i * META_WORDS;
      const at = words[w + 6] as number;
      const k = words[w + 4] as number;
      const ttl = words[w + 5] as number;
      sink.datagram(
        slab.subarray(at, at + (words[w] as number)),
        from[words[w + 1] as number] as Endpoint,
        times[w / 2 + 1] as number,
        true,
        k === NONE ? undefined : where[k],
        ttl === NONE ? undefined : ttl,
      );
    }
  }

  /**
   * The one object of an arrival the addon describes (it says each distinct one once per
   * batch): reused across batches, so that a flood to one address shares one, and what is
   * derived from it (its json) is made once.
   */
  #arrival([to, iface, replyFrom, replyInterface]: NativeArrival): Arrival {
    const key = `${to}|${iface}|${replyFrom}|${replyInterface}`;
    let a = this.#arrivals.get(key);
    if (!a) {
      if (this.#arrivals.size >= 256) this.#arrivals.clear();
      a = { to, interface: iface, replyFrom, replyInterface };
      this.#arrivals.set(key, a);
    }
    return a;
  }

  #endpoint(address: string, port: number): Endpoint {
    const key = `${address}|${port}`;
    let ep = this.#senders.get(key);
    if (!ep) {
      if (this.#senders.size >= 4096) this.#senders.clear();
      ep = { address, port, family: this.#family };
      this.#senders.set(key, ep);
    }
    return ep;
  }

  setOption(name: SocketOptionName, value: number): void {
    this.#addon.setOption(this.#sock, name, value);
  }

  membership(
    join: boolean,
    group: string,
    source: string | undefined,
    iface: InterfaceRef | undefined,
  ): void {
    this.#addon.membership(this.#sock, join, group, source ?? null, iface?.name ?? null);
  }

  multicastInterface(iface: InterfaceRef): void {
    this.#addon.multicastInterface(this.#sock, iface.name);
  }

  bindToDevice(iface: InterfaceRef): boolean {
    this.#addon.bindToDevice(this.#sock, iface.name);
    return true;
  }

  bufferSize(which: 'receive' | 'send', bytes?: number): number {
    const granted = this.#addon.bufferSize(this.#sock, which === 'receive' ? 0 : 1, bytes ?? 0, true);
    if (which === 'receive' && this.#receiving && this.#coalesce) {
      this.#addon.setCoalesce(this.#sock, granted >= 1 << 20 ? 1 : 0);
    }
    return granted;
  }

  pause(paused: boolean): boolean {
    if (!this.#closed) this.#addon.pauseReceiving(this.#sock, paused);
    return true;
  }

  readLimit(n: number | undefined): boolean {
    if (!this.#closed) this.#addon.setReadLimit(this.#sock, n ?? -1);
    return true;
  }

  readMore(n: number): void {
    if (!this.#closed) this.#addon.setReadLimit(this.#sock, n, true);
  }

  kernelDrops(): number | undefined {
    return this.#closed ? undefined : socketDrops(this.#addon.fd(this.#sock));
  }

  steerByCpu(groupSize: number): void {
    this.#addon.steerByCpu(this.#sock, groupSize);
  }

  ring(): RingStats | undefined {
    if (this.#closed) return undefined;
    const stats = this.#addon.ringStats(this.#sock);
    return stats && { held: stats[0], fulls: stats[1] };
  }

  setCoalesce(on: boolean): void {
    if (on === this.#coalesce) return;
    this.#coalesce = on;
    if (this.#closed || !this.#receiving) return;
    // As at the start: coalescing only with room for a millisecond of flood in the buffer.
    this.#addon.setCoalesce(
      this.#sock,
      on && this.#addon.bufferSize(this.#sock, 0, 0, false) >= 1 << 20 ? 1 : 0,
    );
  }

  offloads(): Offloads | undefined {
    if (this.#closed) return this.#lastOffloads;
    const [gso, gro, gsoSends, groReads] = this.#addon.offloads(this.#sock);
    return { gso, gro, gsoSends, groReads };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#lastOffloads = this.offloads();
    this.#closed = true;
    this.#addon.close(this.#sock);
    const err = cancelled();
    for (const job of this.#queue.splice(0)) job.reject(err);
  }
}
