/**
 * Request and response over UDP: send a datagram, wait for the reply that matches it, send
 * again after a timeout, give up after the retries. All of a socket's pending requests share
 * one sweep on the scheduler (armed for the earliest deadline), as mafintosh/dns-socket
 * shares one interval; replies come through the socket's one consumer, so a socket that
 * makes requests is given over to them.
 */
import type { Endpoint } from './address.js';
import {
  AbortError,
  InvalidArgumentError,
  SocketClosedError,
  TimeoutError,
  type UdpError,
} from './errors.js';
import type { Datagram } from './inbox.js';
import { defaultScheduler, type ScheduledCall, type Scheduler } from './scheduler.js';
import type { UdpSocket } from './socket.js';

/** Options of {@link request}. */
export interface RequestOptions {
  /** Destination port; omitted on a connected socket. */
  port?: number;
  /** Destination address or name; default loopback. */
  host?: string;
  /** Milliseconds to wait for a reply to each attempt (default 1000). */
  timeout?: number;
  /** Attempts after the first, each after a timeout (default 0). */
  retries?: number;
  signal?: AbortSignal;
  /**
   * Whether a received datagram answers this request. Default: it comes from the address
   * and port the request was sent to (on a connected socket, any datagram: the kernel lets
   * only the peer's through).
   */
  match?: (reply: Datagram, request: Uint8Array) => boolean;
}

interface Pending {
  match: (reply: Datagram) => boolean;
  deadline: number;
  timeout: number;
  attemptsLeft: number;
  resend: () => void;
  resolve: (reply: Datagram) => void;
  reject: (err: Error) => void;
}

/**
 * The requests of one socket: a consumer of its datagrams and one sweep for their deadlines.
 * Made by {@link request} on first use; datagrams that answer no pending request are counted
 * in `unmatched`.
 */
export class Requester {
  readonly socket: UdpSocket;
  #scheduler: Scheduler;
  #pending = new Set<Pending>();
  #sweep: ScheduledCall | undefined;
  #consuming: Promise<void> | undefined;
  #unmatched = 0;
  #stopErrors: () => void;

  constructor(socket: UdpSocket, scheduler: Scheduler = defaultScheduler()) {
    this.socket = socket;
    this.#scheduler = scheduler;
    // An ICMP port unreachable on a connected socket fails what waits for that peer at once.
    this.#stopErrors = socket.onReceiveError((err) => this.#failAll(err));
  }

  /** Requests waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }
  /** Datagrams received that answered no pending request. */
  get unmatched(): number {
    return this.#unmatched;
  }

  request(data: Uint8Array | string, options: RequestOptions = {}): Promise<Datagram> {
    const { signal } = options;
    const timeout = options.timeout ?? 1000;
    const retries = options.retries ?? 0;
    try {
      if (!(Number.isFinite(timeout) && timeout > 0)) {
        throw new InvalidArgumentError(`timeout ${timeout} is not a positive number of milliseconds`);
      }
      if (!(Number.isSafeInteger(retries) && retries >= 0)) {
        throw new InvalidArgumentError(`retries ${retries} is not a whole number of 0 or more`);
      }
      if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason });
    } catch (err) {
      return Promise.reject(err);
    }
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const socket = this.socket;
    const remote = socket.remoteAddress();
    const match = options.match
      ? (reply: Datagram) => (options.match as NonNullable<RequestOptions['match']>)(reply, payload)
      : remote
        ? () => true
        : (reply: Datagram) => fromPeer(reply.from, options.port, options.host);
    this.#consume();
    return new Promise<Datagram>((resolve, reject) => {
      const onAbort = () => finish(() => reject(new AbortError(undefined, { cause: signal?.reason })));
      const finish = (settle: () => void) => {
        if (!this.#pending.delete(pending)) return;
        signal?.removeEventListener('abort', onAbort);
        settle();
        this.#arm();
      };
      const send = () => {
        socket.send(payload, options.port, options.host).catch((err: unknown) => finish(() => reject(err)));
      };
      const pending: Pending = {
        match,
        deadline: this.#scheduler.now() + timeout,
        timeout,
        attemptsLeft: retries,
        resend: send,
        resolve: (reply) => finish(() => resolve(reply)),
        reject: (err) => finish(() => reject(err)),
      };
      this.#pending.add(pending);
      signal?.addEventListener('abort', onAbort, { once: true });
      send();
      this.#arm();
    });
  }

  /** Fails every pending request with a {@link SocketClosedError} and stops taking replies. */
  close(): void {
    this.#stopErrors();
    this.#failAll(new SocketClosedError('the request was pending when its socket closed'));
  }

  #consume(): void {
    if (this.#consuming) return;
    this.#consuming = this.socket.consume((reply) => {
      for (const p of this.#pending) {
        if (p.match(reply)) {
          // The reply's bytes are lent by the receive buffer: the caller keeps a copy.
          p.resolve({ ...reply, data: Buffer.from(reply.data) });
          return;
        }
      }
      this.#unmatched++;
    });
    // The socket closed (or failed): nothing more can answer.
    this.#consuming.then(
      () => this.close(),
      (err: unknown) => this.#failAll(err as Error),
    );
  }

  #failAll(err: Error | UdpError): void {
    for (const p of [...this.#pending]) p.reject(err);
  }

  /** One scheduler call, at the earliest deadline of all pending requests. */
  #arm(): void {
    let earliest = Number.POSITIVE_INFINITY;
    for (const p of this.#pending) earliest = Math.min(earliest, p.deadline);
    if (this.#sweep && this.#sweep.at === earliest) return;
    this.#sweep?.cancel();
    this.#sweep =
      earliest === Number.POSITIVE_INFINITY ? undefined : this.#scheduler.at(earliest, () => this.#run());
  }

  #run(): void {
    this.#sweep = undefined;
    const now = this.#scheduler.now();
    for (const p of [...this.#pending]) {
      if (p.deadline > now) continue;
      if (p.attemptsLeft > 0) {
        p.attemptsLeft--;
        p.deadline = now + p.timeout;
        p.resend();
      } else {
        p.reject(new TimeoutError(`no reply within ${Math.round(p.timeout)} ms`));
      }
    }
    this.#arm();
  }
}

const requesters = new WeakMap<UdpSocket, Requester>();

/**
 * Sends `data` and resolves to the first datagram that answers it (by `match`), sending it
 * again after each `timeout` up to `retries` times. The socket's datagrams then go to its
 * requests: one `consume()` per socket, shared by all of them.
 *
 * @throws {TimeoutError} `UDP_ERR_TIMEOUT` when no attempt was answered in time
 * @throws {ConnectionRefusedError} `UDP_ERR_CONN_REFUSED` at once, on a connected socket whose
 *   peer answered ICMP port unreachable
 * @throws {SocketClosedError} `UDP_ERR_CLOSED` when the socket closes first
 * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires
 * @throws the errors of {@link UdpSocket.send}
 */
export function request(
  socket: UdpSocket,
  data: Uint8Array | string,
  options: RequestOptions = {},
): Promise<Datagram> {
  let requester = requesters.get(socket);
  if (!requester) {
    requester = new Requester(socket);
    requesters.set(socket, requester);
  }
  return requester.request(data, options);
}

/**
 * The reply comes from where the request went: the port, and the address when `host` is an
 * IP literal (an IPv4 one also as IPv4-mapped). A name is not resolved again here, so any
 * address matches it.
 */
function fromPeer(from: Endpoint, port: number | undefined, host: string | undefined): boolean {
  if (port !== undefined && from.port !== port) return false;
  if (host === undefined) return true;
  const plain = from.address.startsWith('::ffff:') ? from.address.slice(7) : from.address;
  return host === from.address || host === plain || !/^[0-9a-fA-F.:]+$/.test(host);
}
