/**
 * Received datagrams as one batch, as the native transport reads them: for consumers of
 * floods that look at each datagram's bytes in place, with no object made per datagram
 * (see {@link UdpSocket.consumeBatches}).
 */
import type { Endpoint } from './address.js';
import type { Datagram } from './inbox.js';

/**
 * Datagrams received together, oldest first. Datagram `i` is the bytes
 * `data[offset(i), offset(i) + length(i))`. Valid only during the handler's call: the
 * transport reuses its memory for the next batch; copy what you keep.
 */
export interface ReceivedBatch {
  readonly count: number;
  /** The memory every datagram of the batch lies in. */
  readonly data: Buffer;
  offset(i: number): number;
  length(i: number): number;
  from(i: number): Endpoint;
  /** Milliseconds since the epoch (the kernel's receive time on the native transport). */
  receivedAt(i: number): number;
  /** Datagram `i` as a {@link Datagram} (its `data` a view: copy it to keep it). */
  datagram(i: number): Datagram;
}

/** One datagram as a batch of one: what a batch consumer gets from node:dgram and from the queue. */
export class SingleBatch implements ReceivedBatch {
  readonly count = 1;
  #msg: Datagram | undefined;

  /** The batch of `msg` alone (this object, reused). */
  of(msg: Datagram): this {
    this.#msg = msg;
    return this;
  }

  get data(): Buffer {
    return (this.#msg as Datagram).data;
  }

  offset(): number {
    return 0;
  }

  length(): number {
    return (this.#msg as Datagram).data.length;
  }

  from(): Endpoint {
    return (this.#msg as Datagram).from;
  }

  receivedAt(): number {
    return (this.#msg as Datagram).receivedAt;
  }

  datagram(): Datagram {
    return this.#msg as Datagram;
  }
}
