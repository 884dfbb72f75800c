/**
 * Loads the optional native addon (native/udpkit.c: recvmmsg/sendmmsg under libuv). When it
 * was not built, cannot load, or `UDPKIT_NATIVE=0` is set, everything runs on node:dgram.
 */
import { createRequire } from 'node:module';

/** An open native socket; only the addon looks inside. */
export type NativeHandle = { readonly __nativeSocket: unique symbol };

/** The integer socket options both transports set. */
export type SocketOptionName = 'broadcast' | 'ttl' | 'multicastTtl' | 'multicastLoop';

/** An arrival as the addon describes it: [to, interface, replyFrom, replyInterface index]. */
export type NativeArrival = [string, string | undefined, string, number];

/** The addon's functions, as native/udpkit.c defines them. */
export interface NativeAddon {
  /** reusePort: SO_REUSEPORT, for a group of sockets on one port (one per worker thread). */
  open(family: 4 | 6, reuseAddr: boolean, ipv6Only: boolean, reusePort?: boolean): NativeHandle;
  /**
   * A thread reads the socket into a bounded ring from now on (after startReceiving), and
   * the loop takes batches from it: see native/ring.c.
   */
  receiveThread(sock: NativeHandle): boolean;
  /** [datagrams held in the ring, times it was full], or undefined without a receive thread. */
  ringStats(sock: NativeHandle): [number, number] | undefined;
  /** Datagrams of a SO_REUSEPORT group of `n` go to socket (receiving CPU) mod n (classic BPF). */
  steerByCpu(sock: NativeHandle, n: number): void;
  bind(sock: NativeHandle, ip: string, port: number): void;
  connect(sock: NativeHandle, ip: string, port: number): void;
  localAddress(sock: NativeHandle): [string, number];
  /** Joins or leaves a group (source-specific with a source) on the interface named, or the routed one. */
  membership(
    sock: NativeHandle,
    join: boolean,
    group: string,
    source: string | null,
    iface: string | null,
  ): void;
  /** The interface, by name, multicast sent from here goes out of. */
  multicastInterface(sock: NativeHandle, iface: string): void;
  /** SO_BINDTODEVICE: receive only what arrives on the interface named, send only through it. */
  bindToDevice(sock: NativeHandle, iface: string): void;
  /** An integer socket option by name, for the socket's family (see native/udpkit.c). */
  setOption(sock: NativeHandle, name: SocketOptionName, value: number): void;
  /** Asks the kernel for each datagram's destination, interface and TTL (see deliver()). */
  receiveMetadata(sock: NativeHandle, on: boolean): void;
  /** which: 0 receive, 1 send; bytes 0 only reads; force tries SO_*BUFFORCE first. */
  bufferSize(sock: NativeHandle, which: 0 | 1, bytes: number, force: boolean): number;
  startReceiving(
    sock: NativeHandle,
    onBatch: (
      data: Buffer | null,
      metaOrError: Buffer | string,
      count?: number,
      senders?: [string, number][],
      /** Each distinct arrival of the batch, with metadata on. */
      arrivals?: NativeArrival[],
    ) => void,
    onWritable: () => void,
  ): void;
  pauseReceiving(sock: NativeHandle, paused: boolean): void;
  waitWritable(sock: NativeHandle): void;
  sendBatch(
    sock: NativeHandle,
    data: Uint8Array,
    lengths: Uint32Array,
    first: number,
    count: number,
    ip: string | null,
    port: number,
    /** The local address to send from (IP_PKTINFO / IPV6_PKTINFO), and the interface index. */
    source?: string | null,
    sourceInterface?: number,
    /** Where datagram i starts in `data`, when they are not back to back. */
    offsets?: Uint32Array,
  ): number;
  /**
   * Equal-size datagrams of a batch go out as one UDP_SEGMENT buffer (where the kernel has it
   * and UDPKIT_GSO is not 0; off for good once a send is refused). Returns what is in force.
   */
  gso(sock: NativeHandle, on: boolean): boolean;
  /** Reads may take many datagrams in one buffer (UDP_GRO), split again before JS sees them. */
  gro(sock: NativeHandle, on: boolean): boolean;
  /** [GSO on, GRO on, buffers sent with GSO, buffers read that held several datagrams] */
  offloads(sock: NativeHandle): [boolean, boolean, number, number];
  /** With arrays of ips and ports, datagram i goes to ips[i]:ports[i]. */
  sendBuffers(
    sock: NativeHandle,
    buffers: Uint8Array[],
    first: number,
    count: number,
    ip: string | null | string[],
    port: number | number[],
    source?: string | null,
    sourceInterface?: number,
  ): number;
  setCoalesce(sock: NativeHandle, ms: number): void;
  /** Reads at most `n` more datagrams (-1: no limit); with `more`, adds `n` to a limit in force. */
  setReadLimit(sock: NativeHandle, n: number, more?: boolean): void;
  /** The process's precise timer (a timerfd): `onFire` runs each time it fires. Once. */
  timerInit(onFire: () => void): void;
  /** Fires the timer once after `delayMs` (fractional milliseconds). */
  timerArm(delayMs: number): void;
  /** Nothing is due: the timer stops keeping the process alive. */
  timerDisarm(): void;
  fd(sock: NativeHandle): number;
  /** Datagrams the kernel dropped for the socket on descriptor `fd` (SO_MEMINFO), if it says. */
  drops(fd: number): number | undefined;
  /** The hex dump of `src` written into `dst` at `offset`; returns where it ended. */
  hexDumpInto(src: Uint8Array, dst: Uint8Array, offset: number): number;
  /** `src` in base64 written into `dst` at `offset`; returns where it ended. */
  base64Into(src: Uint8Array, dst: Uint8Array, offset: number): number;
  close(sock: NativeHandle): void;
}

function load(): { addon: NativeAddon | undefined; reason: string | undefined } {
  if (process.env.UDPKIT_NATIVE === '0') return { addon: undefined, reason: 'disabled by UDPKIT_NATIVE=0' };
  if (process.platform !== 'linux')
    return { addon: undefined, reason: `no native addon on ${process.platform}` };
  try {
    const require = createRequire(import.meta.url);
    // From dist/lib or src/lib alike, the addon is two levels up.
    return { addon: require('../../build/Release/udpkit.node') as NativeAddon, reason: undefined };
  } catch (err) {
    return { addon: undefined, reason: `native addon not loaded: ${(err as Error).message.split('\n')[0]}` };
  }
}

const loaded = load();

/** The addon, or `undefined` when udpkit runs on node:dgram alone. */
export const nativeAddon: NativeAddon | undefined = loaded.addon;

/** Why the addon is not in use, when it is not. */
export const nativeUnavailableReason: string | undefined = loaded.reason;
