/**
 * The receive loop that `listen` and `echo` share, alone or in each worker thread of
 * `--workers`: bind, format each datagram straight into the output, pause reception while the
 * output is full, and count every datagram.
 */
import { closeSync, openSync } from 'node:fs';
import { Writable } from 'node:stream';
import {
  AbortError,
  type AccessList,
  BatchWriter,
  type ByteFormatter,
  type ByteSink,
  type Datagram,
  NotSupportedError,
  nativeUnavailableReason,
  openUdpSocket,
  type UdpSocket,
} from '../lib/index.js';
import type { ListenOptions } from './commands/listen.js';
import { plural } from './io.js';
import type { Counters } from './stats.js';

/**
 * What a verb built on listen's receive loop adds (echo answers): its name for messages, a
 * call per datagram taken (after it is written to the log), counters of its own, and work
 * to finish before the socket closes.
 */
export interface ReceiverHooks {
  verb: string;
  /** The options a worker thread needs to make the same hooks (plain data: it is copied). */
  spec?: unknown;
  /** Ask the socket where each datagram arrived, whatever the format (echo answers from there). */
  metadata?: boolean;
  /** Once bound, after the 'Listening on' line. */
  onStart?(socket: UdpSocket): void;
  onDatagram?(msg: Datagram, socket: UdpSocket): void;
  counters?(socket: UdpSocket): Counters;
  /** Words for the exit summary, after listen's own, from the counters (summed over workers). */
  summary?(counters: Counters): string | undefined;
  /** Resolves when the verb's own work (replies in flight) is done. */
  settle?(socket: UdpSocket): Promise<void>;
}

/** Where formatted datagrams go: the BatchWriter on stdout, or a worker's channel to it. */
export interface ReceiverOutput extends ByteSink {
  /** Ends a record begun with room(); false when it had to be dropped (and was counted). */
  commit(): boolean;
  /** True while reception should stop: the output holds all it should. */
  readonly saturated: boolean;
  /** Called when the output can take more again. */
  onDrain(listener: () => void): void;
}

/**
 * Opens and binds the socket listen's options describe, joins its groups, and checks what
 * needs the native transport. Resolves to undefined when `signal` stopped it first.
 *
 * @param group with `reusePort`, one socket of a SO_REUSEPORT group; `port` overrides the options'
 */
export async function openReceiver(
  opts: ListenOptions,
  hooks: ReceiverHooks,
  signal: AbortSignal,
  group: { reusePort: boolean; port: number; first?: boolean } = { reusePort: false, port: opts.port },
): Promise<UdpSocket | undefined> {
  const address = opts.host ?? (opts.family === 'IPv6' ? '::' : '0.0.0.0');
  const type = opts.family && (opts.family === 'IPv6' ? 'udp6' : 'udp4');
  let socket: UdpSocket;
  try {
    if (group.first) await refuseTakenPort(address, group.port, type, signal);
    socket = await openUdpSocket({
      address,
      port: group.port,
      ...(type && { type }),
      recvBufferSize: opts.rcvbuf,
      ...(opts.access && { accept: (from) => (opts.access as AccessList).allows(from.address) }),
      ...(group.reusePort && { reusePort: true }),
      // Under a flood, read once a millisecond rather than per wake-up: less CPU per datagram.
      coalesce: true,
      // --receive-thread: a thread of the addon reads into a ring while JavaScript formats
      // and writes, so a pause of the loop does not overflow the kernel's buffer.
      receiveThread: opts.receiveThread,
      // Where each datagram arrived: json has it, --show-dst prints it, echo answers from it.
      metadata: receiverNeedsMetadata(opts, hooks),
      ...(opts.join.length === 0 && opts.iface !== undefined && { interface: opts.iface }),
      signal,
    });
  } catch (err) {
    if (err instanceof AbortError && signal.aborted) return undefined;
    throw err;
  }
  try {
    const why = nativeUnavailableReason === undefined ? '' : ` (${nativeUnavailableReason})`;
    if (opts.showDst && !socket.metadata) {
      throw new NotSupportedError(`--show-dst needs the native transport${why}`);
    }
    if (opts.receiveThread && socket.receiveRing === undefined) {
      throw new NotSupportedError(`--receive-thread needs the native transport${why}`);
    }
    for (const group of opts.join) {
      if (opts.source === undefined) socket.addMembership(group, opts.iface);
      else socket.addSourceSpecificMembership(opts.source, group, opts.iface);
    }
  } catch (err) {
    await socket.close();
    throw err;
  }
  return socket;
}

/**
 * Before the first socket of a SO_REUSEPORT group binds a given port: binds it plainly and lets
 * go, so that a port another program holds is refused as listen alone refuses it ("address ...
 * is already in use"), rather than joined: another group of the same user would take it in
 * and share its datagrams. Port 0 picks a free port anyway.
 *
 * @throws {AddressInUseError} when the port is taken
 */
export async function refuseTakenPort(
  address: string,
  port: number,
  type: 'udp4' | 'udp6' | undefined,
  signal?: AbortSignal,
): Promise<void> {
  if (port === 0) return;
  const probe = await openUdpSocket({ address, port, ...(type && { type }), ...(signal && { signal }) });
  await probe.close();
}

/** Whether the datagrams must say where they arrived: json has it, --show-dst, echo. */
export function receiverNeedsMetadata(opts: ListenOptions, hooks: ReceiverHooks): boolean {
  return opts.format === 'json' || opts.showDst || hooks.metadata === true;
}

/**
 * The socket's figures that can only be read while it is open (what the kernel dropped, the
 * times the receive thread's ring was full): the last reading stays once it is closed.
 */
export class SocketReadings {
  #socket: UdpSocket;
  #kernelDrops: number | undefined;
  #ringFull: number | undefined;

  constructor(socket: UdpSocket) {
    this.#socket = socket;
  }

  kernelDrops(): number | undefined {
    if (this.#socket.state === 'bound') this.#kernelDrops = this.#socket.kernelDrops;
    return this.#kernelDrops;
  }

  ringFull(): number | undefined {
    if (this.#socket.state === 'bound') this.#ringFull = this.#socket.receiveRing?.fulls;
    return this.#ringFull;
  }
}

/** What a receiving socket counts, before the output: the same in one thread or in several. */
export interface SocketCounters extends Counters {
  received: number;
  bytes: number;
  drops_queue: number;
  drops_kernel: number | undefined;
  /** With --receive-thread: times its ring was full (never a drop: the thread waits). */
  ring_full: number | undefined;
  denied: number | undefined;
}

/** The socket's counters now (`drops_queue` includes what is still queued at the end). */
export function socketCounters(
  socket: UdpSocket,
  readings: SocketReadings,
  opts: ListenOptions,
  hooks: ReceiverHooks,
): SocketCounters {
  return {
    received: socket.packetsReceived,
    bytes: socket.bytesReceived,
    drops_queue: socket.droppedByQueue + socket.queued,
    drops_kernel: readings.kernelDrops(),
    ring_full: readings.ringFull(),
    denied: opts.access ? socket.denied : undefined,
    ...hooks.counters?.(socket),
  };
}

/**
 * listen's counters: `received = printed + pending + drops_queue + drops_output + denied +
 * past_count` (`denied` only with --allow or --deny, `past_count` only with --workers and
 * --count).
 */
export interface ListenCounters extends SocketCounters {
  printed: number;
  pending: number;
  drops_output: number;
  /** --count with --workers: datagrams other workers took as the count was reached. */
  past_count?: number | undefined;
}

/**
 * listen's counters in the order people read them: what came, what was printed, what was not
 * and why, then the verb's own.
 */
export function listenCounters(
  socket: SocketCounters,
  output: { printed: number; pending: number; drops_output: number },
  pastCount?: number,
): ListenCounters {
  const { received, bytes, drops_queue, drops_kernel, ring_full, denied, ...own } = socket;
  return {
    received,
    bytes,
    printed: output.printed,
    pending: output.pending,
    drops_queue,
    drops_output: output.drops_output,
    ...(pastCount !== undefined && { past_count: pastCount }),
    drops_kernel,
    ring_full,
    denied,
    ...own,
  };
}

/** Options of {@link receiveLoop}. */
export interface LoopOptions {
  signal: AbortSignal;
  idleTimeout?: number | undefined;
  /** The most datagrams to take. */
  limit?: number | undefined;
  /**
   * Asked first for each datagram: false leaves it unwritten and unanswered (--count reached
   * by another worker; the caller counts it).
   */
  admit?: ((msg: Datagram) => boolean) | undefined;
}

/**
 * Takes datagrams until the limit, a silence or the signal, formatting each into `out`; when
 * `out` cannot take more, stops reading (the datagrams wait in the kernel's buffer; past it the
 * kernel drops them and says so in drops_kernel). What is in hand, the rest of a batch
 * included, is always formatted and written. Then lets the verb settle and closes the socket.
 */
export async function receiveLoop(
  socket: UdpSocket,
  out: ReceiverOutput,
  format: ByteFormatter,
  hooks: ReceiverHooks,
  readings: SocketReadings,
  options: LoopOptions,
): Promise<void> {
  let paused = false;
  let receiving = true;
  out.onDrain(() => {
    if (paused && receiving && !out.saturated) {
      paused = false;
      socket.resume();
    }
  });
  const { onDatagram } = hooks;
  const { admit } = options;
  try {
    // Each datagram is formatted straight into the output buffer as it arrives.
    await socket.consume(
      (msg) => {
        if (admit !== undefined && !admit(msg)) return;
        format(msg, out);
        out.commit();
        onDatagram?.(msg, socket);
        if (out.saturated && !paused) paused = socket.pause();
      },
      {
        signal: options.signal,
        ...(options.idleTimeout !== undefined && { idleTimeout: options.idleTimeout }),
        ...(options.limit !== undefined && { limit: options.limit }),
      },
    );
  } catch (err) {
    if (!(err instanceof AbortError)) throw err;
  } finally {
    receiving = false;
    readings.kernelDrops(); // the last readings the open socket allows
    readings.ringFull();
    await hooks.settle?.(socket);
    await socket.close();
  }
}

/** The exit summary for people, with the same figures as `--stats`. */
export function receiverSummary(c: ListenCounters, abandoned: number): string {
  const notPrinted = c.drops_queue + c.drops_output;
  let line = `received ${plural(c.received, 'datagram')} (${plural(c.bytes, 'byte')}), printed ${c.printed}`;
  if (notPrinted > 0) {
    const why = [
      c.drops_queue > 0 && `queue ${c.drops_queue}`,
      c.drops_output > 0 &&
        `output ${c.drops_output}${abandoned > 0 ? `, ${abandoned} of them abandoned at exit` : ''}`,
    ].filter(Boolean);
    line += `, not printed ${notPrinted} (${why.join('; ')})`;
  }
  if ((c.past_count ?? 0) > 0) {
    line += `, past --count ${c.past_count} (taken by other workers as the count was reached)`;
  }
  if ((c.denied ?? 0) > 0) line += `, denied ${c.denied} (--allow/--deny)`;
  if ((c.drops_kernel ?? 0) > 0) {
    line += `; the kernel dropped ${c.drops_kernel} more before they could be read (receive buffer full)`;
  }
  return line;
}

/**
 * What the warm-up sends: every byte value at every kind of place (alone, after each other, as
 * lead and continuation bytes of UTF-8 sequences valid, invalid and cut short, at the end of a
 * payload), control bytes and a backslash in plain text, a number in binary before text (as a
 * load generator sends), empty; 64, 256 and 1024 bytes long.
 */
function warmUpPayloads(): Buffer[] {
  const all = Buffer.alloc(1024);
  for (let i = 0; i < all.length; i++) all[i] = i & 0xff;
  const down = Buffer.from(all).reverse();
  const seqs = Buffer.from(
    'f09f9880e0a080ed9fbff48fbfbfe2808be280aeefbbbfc280dfbfe0809fedbfbff4908080c0afc1bff5f8feff80bf616263e29c',
    'hex',
  );
  const text = [64, 256, 1024].flatMap((size) =>
    [0, 1, 2, 3].map((variant) => {
      const data = Buffer.alloc(size, 0x61);
      data.set(
        [0, 1, 0x1b, 0x0a, 0x5c, 0xff, 0xc3, 0xa9, 0xc2, 0x9b, 0xe2, 0x9c, 0x93].slice(variant),
        variant * 3,
      );
      if (variant === 3) data.writeBigUInt64BE(0x0102_8090_c0e0_f0ffn, 0);
      return data;
    }),
  );
  return [all, down, seqs, Buffer.from(seqs.subarray(0, seqs.length - 1)), Buffer.alloc(0), ...text];
}

/** Datagrams the warm-up sends through the receive path. */
const WARM_UP_DATAGRAMS = 4096;

/**
 * Before binding, runs the receive path itself (the addon's delivery, transport, socket,
 * {@link receiveLoop}, formatter, a writer of the same kind as the real one, into /dev/null)
 * on real datagrams sent to a socket of its own on loopback, with every kind of payload.
 * Cold, or warmed on made-up datagrams, the first tens of milliseconds of a flood ran slowly
 * and the optimizing compiler took the core meanwhile, enough for the kernel to drop
 * thousands of datagrams at their start (bench/start-loss.sh). A Ctrl-C ends it at once.
 *
 * @param toFile the real output is a descriptor (a file, /dev/null, a terminal), not a stream
 */
export async function warmUp(
  format: ByteFormatter,
  metadata: boolean,
  signal: AbortSignal,
  toFile: boolean,
): Promise<void> {
  const payloads = warmUpPayloads();
  const lengths = new Uint32Array(64);
  const chunks: Buffer[] = [];
  // Each kind once a batch, the rest short text: the count that makes code hot costs less.
  const short = Buffer.alloc(64, 0x61);
  short.writeBigUInt64BE(0x0102_8090_c0e0_f0ffn, 0);
  for (let i = 0; i < 64; i++) {
    const p = (i < payloads.length ? payloads[i] : short) as Buffer;
    lengths[i] = p.length;
    chunks.push(p);
  }
  const packed = Buffer.concat(chunks);
  let fd: number | undefined;
  let rx: UdpSocket | undefined;
  let tx: UdpSocket | undefined;
  try {
    fd = toFile ? openSync('/dev/null', 'w') : undefined;
    const out = new BatchWriter(
      fd ??
        new Writable({
          write(_chunk, _encoding, callback) {
            callback();
          },
        }),
    );
    rx = await openUdpSocket({
      address: '127.0.0.1',
      port: 0,
      coalesce: true,
      metadata,
      recvBufferSize: 1 << 22,
    });
    tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    const total = Math.ceil(WARM_UP_DATAGRAMS / 64) * 64;
    const stop = AbortSignal.any([signal, AbortSignal.timeout(2000)]);
    const socket = rx;
    const loop = receiveLoop(socket, out, format, { verb: 'warm-up' }, new SocketReadings(socket), {
      signal: stop,
      limit: total,
    });
    const port = socket.address().port;
    // At most 320 in flight, far less than the socket's buffer holds: none is dropped (and if
    // one were, the loop would end at the time limit, not wait for it).
    for (let sent = 0; sent < total && !stop.aborted; sent += 64) {
      await tx.sendPacked(packed, lengths, 64, port, '127.0.0.1');
      while (socket.packetsReceived < sent + 64 - 256 && !stop.aborted) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await loop;
    await out.flush({ signal: stop });
  } catch {
    // No loopback to bind: start cold.
  } finally {
    await rx?.close();
    await tx?.close();
    if (fd !== undefined) closeSync(fd);
  }
}
