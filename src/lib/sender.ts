/**
 * Sending, for a UdpSocket: one contract on both transports. Destinations are checked before
 * any I/O, names resolved once per call, sends made while the socket binds wait for it, and
 * every datagram is counted exactly: sent, or one send error with `sent` saying how many of a
 * batch went before it. A send the kernel takes at once costs no promise of its own.
 */
import { type Endpoint, type IpFamily, ipFamily, maxPayload, parsePort } from './address.js';
import { fromSystemError, InvalidArgumentError, MessageTooLargeError, SocketClosedError } from './errors.js';
import type { Arrival, Transport } from './transport.js';

/** A datagram to send with {@link Sender.sendBatch}: its payload and where it goes. */
export interface OutgoingDatagram {
  /** Bytes, or a string sent as UTF-8. */
  data: Uint8Array | string;
  port: number;
  /** An IP literal or a host name; default loopback. */
  host?: string;
}

/** What the sender needs of its socket's lifecycle. */
export interface SenderContext {
  readonly family: IpFamily;
  readonly type: 'udp4' | 'udp6';
  /** The socket can send now (bound, not closing). */
  bound(): boolean;
  /** The socket is closing or closed. */
  closed(): boolean;
  /** The connected peer, if any. */
  remote(): Endpoint | undefined;
  /** Binds an unbound socket, waits for a bind in progress; throws once closing. */
  ready(): Promise<void>;
  /** An IP literal as it is; a name through the socket's lookup. */
  resolve(host: string): Promise<string>;
}

interface Destination {
  port: number;
  address: string;
}

/** The sizes of a batch's datagrams, read only when an error needs them. */
type Sizes = Uint32Array | readonly Uint8Array[];

const DONE: Promise<void> = Promise.resolve();
const NO_SIZES: readonly Uint8Array[] = [];

export class Sender {
  #ctx: SenderContext;
  #transport: Transport;
  #packets = 0;
  #bytes = 0;
  #errors = 0;
  #inflight = 0;
  #idle: (() => void)[] = [];

  constructor(ctx: SenderContext, transport: Transport) {
    this.#ctx = ctx;
    this.#transport = transport;
  }

  /** Datagrams the kernel accepted. */
  get packetsSent(): number {
    return this.#packets;
  }
  /** Payload bytes the kernel accepted. */
  get bytesSent(): number {
    return this.#bytes;
  }
  /** Sends the kernel refused, one per failed call. */
  get sendErrors(): number {
    return this.#errors;
  }

  /** Sends waiting on the kernel. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Resolves once no send is waiting on the kernel. */
  settled(): Promise<void> {
    if (this.#inflight === 0) return DONE;
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  send(data: Uint8Array | string, port?: number, host?: string): Promise<void> {
    return this.#sendOne(data, port, host, undefined);
  }

  /**
   * Sends to `to` (a connected socket: to its peer), from the address and interface a reply to
   * `arrival` should leave from, when it is known, else as `send` does.
   */
  reply(data: Uint8Array | string, to: Endpoint, arrival: Arrival | undefined): Promise<void> {
    return this.#ctx.remote()
      ? this.#sendOne(data, undefined, undefined, arrival)
      : this.#sendOne(data, to.port, to.address, arrival);
  }

  #sendOne(
    data: Uint8Array | string,
    port: number | undefined,
    host: string | undefined,
    from: Arrival | undefined,
  ): Promise<void> {
    try {
      const payload = toPayload(data);
      checkSize(payload.length, this.#ctx.family);
      const dest = this.#destination(port, host);
      return this.#start(dest, 1, payload.length, NO_SIZES, (d) =>
        this.#transport.send(payload, d?.port, d?.address, from),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  sendEach(payloads: readonly (Uint8Array | string)[], port?: number, host?: string): Promise<void> {
    try {
      if (!Array.isArray(payloads)) throw new InvalidArgumentError('sendEach needs an array of payloads');
      const list = payloads.map(toPayload);
      let total = 0;
      for (const p of list) {
        checkSize(p.length, this.#ctx.family);
        total += p.length;
      }
      const dest = this.#destination(port, host);
      return this.#start(dest, list.length, total, list, (d) =>
        this.#transport.sendEach(list, d?.port, d?.address),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  sendPacked(
    data: Uint8Array,
    lengths: Uint32Array,
    count: number,
    port?: number,
    host?: string,
  ): Promise<void> {
    try {
      if (!(data instanceof Uint8Array) || !(lengths instanceof Uint32Array)) {
        throw new InvalidArgumentError('sendPacked needs a Uint8Array of data and a Uint32Array of lengths');
      }
      if (!Number.isInteger(count) || count < 0 || count > lengths.length) {
        throw new InvalidArgumentError(`count ${count} is not in 0-${lengths.length}`);
      }
      const limit = maxPayload(this.#ctx.family);
      let total = 0;
      for (let i = 0; i < count; i++) {
        const len = lengths[i] as number;
        if (len > limit) checkSize(len, this.#ctx.family);
        total += len;
      }
      if (total > data.length) {
        throw new InvalidArgumentError(
          `the lengths add up to ${total}, past the ${data.length} bytes of data`,
        );
      }
      const dest = this.#destination(port, host);
      return this.#start(dest, count, total, lengths, (d) =>
        this.#transport.sendPacked(data, lengths, count, d?.port, d?.address),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  sendRecords(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    port?: number,
    host?: string,
  ): Promise<void> {
    try {
      if (
        !(data instanceof Uint8Array) ||
        !(offsets instanceof Uint32Array) ||
        !(lengths instanceof Uint32Array)
      ) {
        throw new InvalidArgumentError(
          'sendRecords needs a Uint8Array of data and Uint32Arrays of offsets and lengths',
        );
      }
      const most = Math.min(offsets.length, lengths.length);
      if (!Number.isInteger(count) || count < 0 || count > most) {
        throw new InvalidArgumentError(`count ${count} is not in 0-${most}`);
      }
      const limit = maxPayload(this.#ctx.family);
      const size = data.length;
      let total = 0;
      for (let i = 0; i < count; i++) {
        const len = lengths[i] as number;
        if (len > limit) checkSize(len, this.#ctx.family);
        const end = (offsets[i] as number) + len;
        if (end > size) {
          throw new InvalidArgumentError(`record ${i} ends at byte ${end}, past the ${size} bytes of data`);
        }
        total += len;
      }
      const dest = this.#destination(port, host);
      return this.#start(dest, count, total, lengths, (d) =>
        this.#transport.sendRecords(data, offsets, lengths, count, d?.port, d?.address),
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  trySend(data: Uint8Array | string, port?: number, host?: string): boolean {
    return this.#trySendOne(data, port, host, undefined);
  }

  /** {@link reply}, as {@link trySend} does it: now, or false. */
  tryReply(data: Uint8Array | string, to: Endpoint, arrival: Arrival | undefined): boolean {
    return this.#ctx.remote()
      ? this.#trySendOne(data, undefined, undefined, arrival)
      : this.#trySendOne(data, to.port, to.address, arrival);
  }

  #trySendOne(
    data: Uint8Array | string,
    port: number | undefined,
    host: string | undefined,
    from: Arrival | undefined,
  ): boolean {
    const payload = toPayload(data);
    checkSize(payload.length, this.#ctx.family);
    const dest = this.#destination(port, host);
    if (dest && ipFamily(dest.address) === undefined) {
      throw new InvalidArgumentError(
        `trySend takes IP addresses, not names like '${dest.address}': use send()`,
      );
    }
    if (!this.#ctx.bound()) return false;
    let ok: boolean;
    try {
      ok = this.#transport.trySend(
        payload,
        dest?.port,
        dest?.address,
        () => {
          this.#packets--;
          this.#bytes -= payload.length;
          this.#errors++;
        },
        from,
      );
    } catch (err) {
      this.#errors++;
      throw Object.assign(fromSystemError(err, 'send', dest ?? this.#ctx.remote()), { sent: 0 });
    }
    if (ok) {
      this.#packets++;
      this.#bytes += payload.length;
    }
    return ok;
  }

  sendBatch(datagrams: readonly OutgoingDatagram[]): Promise<void> {
    try {
      if (!Array.isArray(datagrams)) throw new InvalidArgumentError('sendBatch needs an array of datagrams');
      if (this.#ctx.closed()) throw new SocketClosedError();
      if (this.#ctx.remote()) {
        throw new InvalidArgumentError('a connected socket sends only to its peer; use sendEach');
      }
      const payloads: Uint8Array[] = [];
      const ports: number[] = [];
      const hosts: string[] = [];
      let total = 0;
      let names = false;
      for (const [i, d] of datagrams.entries()) {
        let payload: Uint8Array;
        let dest: Destination;
        try {
          payload = toPayload(d?.data);
          checkSize(payload.length, this.#ctx.family);
          dest = this.#destination(d.port, d.host) as Destination;
        } catch (err) {
          // Which one of the batch: the message says, the error stays of its kind.
          if (err instanceof Error) err.message = `datagram ${i} of the batch: ${err.message}`;
          throw err;
        }
        total += payload.length;
        payloads.push(payload);
        ports.push(dest.port);
        hosts.push(dest.address);
        if (!names && ipFamily(dest.address) === undefined) names = true;
      }
      const go = (addresses: string[]) =>
        this.#submit(
          payloads.length,
          total,
          payloads,
          (i) => ({ port: ports[i] as number, address: addresses[i] as string }),
          () => this.#transport.sendEachTo(payloads, ports, addresses),
        );
      if (this.#ctx.bound() && !names) return go(hosts);
      return this.#later(async () => {
        // Each distinct name is resolved once per call.
        const lookups = new Map<string, Promise<string>>();
        const addresses = await Promise.all(
          hosts.map((h) => {
            let address = lookups.get(h);
            if (!address) {
              address = this.#ctx.resolve(h);
              lookups.set(h, address);
            }
            return address;
          }),
        );
        if (!this.#ctx.bound()) throw new SocketClosedError();
        return go(addresses);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Sends to `dest` through `send`: at once when the socket is bound and the destination is an
   * IP literal (the hot path: no await), else once the socket is bound and the name resolved.
   */
  #start(
    dest: Destination | undefined,
    count: number,
    total: number,
    sizes: Sizes,
    send: (dest: Destination | undefined) => Promise<void> | undefined,
  ): Promise<void> {
    const failedAt = () => dest ?? this.#ctx.remote();
    if (this.#ctx.bound() && (dest === undefined || ipFamily(dest.address) !== undefined)) {
      return this.#submit(count, total, sizes, failedAt, () => send(dest));
    }
    return this.#later(async () => {
      // A host name is resolved once per call, whatever the number of datagrams.
      const resolved = dest && { port: dest.port, address: await this.#ctx.resolve(dest.address) };
      if (!this.#ctx.bound()) throw new SocketClosedError();
      return this.#submit(
        count,
        total,
        sizes,
        () => resolved ?? this.#ctx.remote(),
        () => send(resolved),
      );
    });
  }

  /** Waits for the socket to be bound, then runs `go`; counted as in flight meanwhile. */
  async #later(go: () => Promise<void>): Promise<void> {
    await this.#ctx.ready();
    return go();
  }

  /**
   * Runs a send of `count` datagrams (`total` bytes) and counts exactly what it sent, or what it
   * sent before failing: those count as sent, the call as one send error, and the error names
   * the destination of the datagram that met it.
   */
  #submit(
    count: number,
    total: number,
    sizes: Sizes,
    at: (datagram: number) => Destination | Endpoint | undefined,
    send: () => Promise<void> | undefined,
  ): Promise<void> {
    let pending: Promise<void> | undefined;
    try {
      pending = send();
    } catch (err) {
      return Promise.reject(this.#failed(err, count, sizes, at));
    }
    if (pending === undefined) {
      this.#packets += count;
      this.#bytes += total;
      return DONE;
    }
    this.#inflight++;
    return pending.then(
      () => {
        this.#packets += count;
        this.#bytes += total;
        this.#settle();
      },
      (err: unknown) => {
        this.#settle();
        throw this.#failed(err, count, sizes, at);
      },
    );
  }

  #failed(
    err: unknown,
    count: number,
    sizes: Sizes,
    at: (datagram: number) => Destination | Endpoint | undefined,
  ): Error {
    const taken = Math.min((err as { sent?: number }).sent ?? 0, count);
    this.#packets += taken;
    for (let i = 0; i < taken; i++) {
      const s = sizes[i];
      this.#bytes += typeof s === 'number' ? s : (s?.length ?? 0);
    }
    this.#errors++;
    return Object.assign(fromSystemError(err, 'send', at(taken)), { sent: taken });
  }

  #settle(): void {
    if (--this.#inflight === 0 && this.#idle.length > 0) {
      for (const wake of this.#idle.splice(0)) wake();
    }
  }

  /** Checks a destination (none on a connected socket); throws before any I/O. */
  #destination(port: number | undefined, host: string | undefined): Destination | undefined {
    if (this.#ctx.closed()) throw new SocketClosedError();
    if (this.#ctx.remote()) {
      if (port !== undefined || host !== undefined) {
        throw new InvalidArgumentError('a connected socket sends only to its peer; give no port or host');
      }
      return undefined;
    }
    if (port === undefined) throw new InvalidArgumentError('send needs a destination port');
    const address = host ?? (this.#ctx.type === 'udp6' ? '::1' : '127.0.0.1');
    const family = ipFamily(address);
    if (family !== undefined && family !== this.#ctx.family) {
      throw new InvalidArgumentError(
        `cannot send to ${family} address ${address} from a ${this.#ctx.type} socket`,
      );
    }
    return { port: checkDestinationPort(port), address };
  }
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

/** A destination port: 1-65535. */
export function checkDestinationPort(port: number): number {
  return parsePort(port, 'destination port', 1);
}
