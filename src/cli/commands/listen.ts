/**
 * `udpkit listen`: bind, print each datagram received with its sender, until Ctrl-C, a count
 * or a silence.
 */

import { Writable } from 'node:stream';
import {
  AbortError,
  type AccessList,
  type AccessRule,
  BatchWriter,
  type ByteFormatter,
  createByteFormatter,
  type Datagram,
  formatEndpoint,
  type IpFamily,
  ipFamily,
  isMulticast,
  NotSupportedError,
  nativeUnavailableReason,
  OUTPUT_FORMATS,
  type OutputFormat,
  openUdpSocket,
  parseOutputFormat,
  type UdpSocket,
} from '../../lib/index.js';
import {
  checkFamily,
  parseAccessRules,
  parseByteSize,
  parseCount,
  parseDuration,
  parseFamilyFlags,
  parseListenPositionals,
  parseStatsFlags,
  UsageError,
  usage,
} from '../args.js';
import { Command, Option } from '../commander.js';
import { type CliIO, EXIT_OK, plural, settleSignals } from '../io.js';
import { type Counters, formatCounters, startStats } from '../stats.js';
import { finishOutput, outputFailure, stdoutTarget } from '../stdout.js';

/** What `listen` does, once its command line is parsed. */
export interface ListenOptions {
  host: string | undefined;
  port: number;
  family: IpFamily | undefined;
  format: OutputFormat;
  timestamps: boolean;
  count: number | undefined;
  idleTimeout: number | undefined;
  quiet: boolean;
  /** SO_RCVBUF to ask for, in bytes. */
  rcvbuf: number;
  /** Milliseconds between `--stats` lines; undefined for none. */
  stats: number | undefined;
  /** Who may send, from --allow and --deny in order; undefined: everyone. */
  access: AccessList | undefined;
  /** Multicast groups to join (--join). */
  join: string[];
  /** --source: join the groups for this sender only (source-specific multicast). */
  source: string | undefined;
  /**
   * --interface: a name or one of its addresses: the joins' interface with --join, else the
   * only interface the socket takes datagrams from (SO_BINDTODEVICE).
   */
  iface: string | undefined;
  /** --show-dst: text and hex lines say where each datagram arrived. */
  showDst: boolean;
  /** --receive-thread: a thread of the addon reads into a ring (native/ring.c). */
  receiveThread: boolean;
}

/** The raw option values commander hands over. */
export interface ListenFlags {
  count?: string;
  idleTimeout?: string;
  format?: string;
  timestamps?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
  quiet?: boolean;
  rcvbuf?: string;
  stats?: boolean;
  statsInterval?: string;
  /** --allow and --deny, in the order given. */
  access?: AccessRule[];
  join?: string[];
  source?: string;
  interface?: string;
  showDst?: boolean;
  receiveThread?: boolean;
}

export const DEFAULT_LISTEN_PORT = 12345;
/**
 * The default receive buffer: 4 MiB holds about 20 ms of 64-byte datagrams at 200k/s (the
 * system's default, 208 KiB, holds about 1 ms), enough to ride out a pause of the event loop.
 */
export const DEFAULT_RCVBUF = 4 * 1024 * 1024;

/**
 * Parses `listen`'s positionals and flags. Pure.
 *
 * @throws {UsageError} naming the bad value and what is allowed
 */
export function parseListenArgs(positionals: readonly string[], flags: ListenFlags): ListenOptions {
  const { host, port } = parseListenPositionals(positionals);
  const given = parseFamilyFlags(flags);
  checkFamily(host, given);
  const multicast = parseMulticastFlags(flags, given ?? (host === undefined ? undefined : ipFamily(host)));
  // IPv6 groups with no address to bind: bind :: rather than 0.0.0.0.
  const first = multicast.join[0];
  const family = given ?? (host === undefined && first !== undefined ? ipFamily(first) : undefined);
  const format = usage(() => parseOutputFormat(flags.format ?? 'text'));
  if (flags.showDst && (format === 'raw' || format === 'base64')) {
    throw new UsageError(
      `--show-dst adds to text lines and hex headers, not to ${format} (json always has it)`,
    );
  }
  if (flags.receiveThread && flags.count !== undefined) {
    throw new UsageError('--receive-thread reads ahead of the count: not with --count');
  }
  return {
    host,
    port: port ?? DEFAULT_LISTEN_PORT,
    family,
    format,
    timestamps: flags.timestamps ?? false,
    count: flags.count === undefined ? undefined : parseCount(flags.count, 'count'),
    idleTimeout:
      flags.idleTimeout === undefined ? undefined : parseDuration(flags.idleTimeout, 'idle timeout'),
    quiet: flags.quiet ?? false,
    rcvbuf: flags.rcvbuf === undefined ? DEFAULT_RCVBUF : parseByteSize(flags.rcvbuf, 'receive buffer'),
    stats: parseStatsFlags(flags),
    access: parseAccessRules(flags.access),
    showDst: flags.showDst ?? false,
    receiveThread: flags.receiveThread ?? false,
    ...multicast,
  };
}

/**
 * What a verb built on listen's receive loop adds (echo answers): its name for messages, a
 * call per datagram taken (after it is written to the log), counters of its own, and work
 * to finish before the socket closes.
 */
export interface ReceiverHooks {
  verb: string;
  /** Ask the socket where each datagram arrived, whatever the format (echo answers from there). */
  metadata?: boolean;
  /** Once bound, after the 'Listening on' line. */
  onStart?(socket: UdpSocket): void;
  onDatagram?(msg: Datagram, socket: UdpSocket): void;
  counters?(socket: UdpSocket): Counters;
  /** Words for the exit summary, after listen's own. */
  summary?(socket: UdpSocket): string | undefined;
  /** Resolves when the verb's own work (replies in flight) is done. */
  settle?(socket: UdpSocket): Promise<void>;
}

/** Runs `listen`; resolves to the exit status. Bind and output failures reject. */
export function runListen(opts: ListenOptions, io: CliIO): Promise<number> {
  return runReceiver(opts, io, { verb: 'listen' });
}

/**
 * Binds, then writes each datagram received in the chosen format until a count, a silence
 * or a signal, pausing reception while the output is full, with counters that add up.
 */
export async function runReceiver(opts: ListenOptions, io: CliIO, hooks: ReceiverHooks): Promise<number> {
  const name = `udpkit ${hooks.verb}`;
  const format = createByteFormatter(opts.format, { timestamps: opts.timestamps, destination: opts.showDst });
  const metadata = opts.format === 'json' || opts.showDst || hooks.metadata === true;
  // With the receive thread, the first datagrams wait in its ring while the code warms up.
  if (!opts.receiveThread) await warmUp(format, metadata, io.signal);
  const address = opts.host ?? (opts.family === 'IPv6' ? '::' : '0.0.0.0');
  let socket: UdpSocket;
  try {
    socket = await openUdpSocket({
      address,
      port: opts.port,
      ...(opts.family && { type: opts.family === 'IPv6' ? 'udp6' : 'udp4' }),
      recvBufferSize: opts.rcvbuf,
      ...(opts.access && { accept: (from) => (opts.access as AccessList).allows(from.address) }),
      // Under a flood, read once a millisecond rather than per wake-up: less CPU per datagram.
      coalesce: true,
      // --receive-thread: a thread of the addon reads into a ring while JavaScript formats
      // and writes, so a pause of the loop does not overflow the kernel's buffer.
      receiveThread: opts.receiveThread,
      // Where each datagram arrived: json has it, --show-dst prints it, echo answers from it.
      metadata,
      ...(opts.join.length === 0 && opts.iface !== undefined && { interface: opts.iface }),
      signal: io.signal,
    });
  } catch (err) {
    if (!(err instanceof AbortError && io.signal.aborted)) throw err;
    // Stopped while starting: nothing was received, and it says so.
    io.stderr.write(`${name}: stopped before it was listening; received 0 datagrams\n`);
    return EXIT_OK;
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
  const out = new BatchWriter(stdoutTarget());
  // The output failed (the reader went away, a full disk): stop receiving at once.
  const outputFailed = new AbortController();
  out.onError(() => outputFailed.abort());
  const signal = AbortSignal.any([io.signal, outputFailed.signal]);
  const local = socket.address();
  const granted = socket.recvBufferSize;
  if (!opts.quiet) io.stderr.write(`Listening on ${formatEndpoint(local.address, local.port)}\n`);
  hooks.onStart?.(socket);
  // Linux reports twice what it was asked (it counts its bookkeeping): less than asked is a cap.
  if (granted < opts.rcvbuf) {
    io.stderr.write(
      `${name}: asked for a ${opts.rcvbuf}-byte receive buffer, the kernel granted ${granted} (raise net.core.rmem_max to allow more)\n`,
    );
  }
  // The kernel's count can only be read while the socket is open: the last reading stays.
  let kernelDrops: number | undefined;
  const readKernelDrops = () => {
    if (socket.state === 'bound') kernelDrops = socket.kernelDrops;
    return kernelDrops;
  };
  // Likewise the times the receive thread's ring was full (the kernel's buffer then held).
  let ringFull: number | undefined;
  const readRingFull = () => {
    if (socket.state === 'bound') ringFull = socket.receiveRing?.fulls;
    return ringFull;
  };
  const counters = (): ListenCounters => ({
    received: socket.packetsReceived,
    bytes: socket.bytesReceived,
    printed: out.written,
    pending: out.pending,
    drops_queue: socket.droppedByQueue + socket.queued,
    drops_output: out.dropped,
    drops_kernel: readKernelDrops(),
    ring_full: readRingFull(),
    denied: opts.access ? socket.denied : undefined,
    ...hooks.counters?.(socket),
  });
  const stopStats =
    opts.stats === undefined ? () => {} : startStats(io.stderr, name, opts.stats, counters, 'received');

  // When stdout cannot take more, stop reading: the datagrams wait in the kernel's receive
  // buffer (past it, the kernel drops them and says so in drops_kernel). What is already in
  // hand, the rest of a batch included, is always formatted and written.
  let paused = false;
  let receiving = true;
  out.onDrain(() => {
    if (paused && receiving && !out.saturated) {
      paused = false;
      socket.resume();
    }
  });
  let abandoned = 0;
  const { onDatagram } = hooks;
  try {
    try {
      // Each datagram is formatted straight into the output buffer as it arrives.
      await socket.consume(
        (msg) => {
          format(msg, out);
          out.commit();
          onDatagram?.(msg, socket);
          if (out.saturated && !paused) paused = socket.pause();
        },
        {
          signal,
          ...(opts.idleTimeout !== undefined && { idleTimeout: opts.idleTimeout }),
          ...(opts.count !== undefined && { limit: opts.count }),
        },
      );
    } catch (err) {
      if (!(err instanceof AbortError)) throw err;
    } finally {
      receiving = false;
      readKernelDrops(); // the last readings the open socket allows
      readRingFull();
      await hooks.settle?.(socket);
      await socket.close();
    }
  } finally {
    abandoned = await finishOutput(out, io.signal);
    await settleSignals();
    stopStats();
    const last = counters();
    const dropped = last.drops_queue + last.drops_output + (last.denied ?? 0);
    if (opts.stats !== undefined) io.stderr.write(`${name}: ${formatCounters(last)} rcvbuf=${granted}\n`);
    else {
      const more = hooks.summary?.(socket);
      if (io.signal.aborted || dropped > 0 || (last.drops_kernel ?? 0) > 0 || more !== undefined) {
        io.stderr.write(`${name}: ${summary(last, abandoned)}${more === undefined ? '' : `; ${more}`}\n`);
      }
    }
  }
  const failure = outputFailure(out.error);
  if (failure) throw failure;
  return EXIT_OK;
}

/**
 * listen's counters: `received = printed + pending + drops_queue + drops_output + denied`
 * (`denied` only with --allow or --deny).
 */
interface ListenCounters extends Counters {
  received: number;
  bytes: number;
  printed: number;
  pending: number;
  drops_queue: number;
  drops_output: number;
  drops_kernel: number | undefined;
  /** With --receive-thread: times its ring was full (never a drop: the thread waits). */
  ring_full: number | undefined;
  denied: number | undefined;
}

/** The exit summary for people, with the same figures as `--stats`. */
function summary(c: ListenCounters, abandoned: number): string {
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
  if ((c.denied ?? 0) > 0) line += `, denied ${c.denied} (--allow/--deny)`;
  if ((c.drops_kernel ?? 0) > 0) {
    line += `; the kernel dropped ${c.drops_kernel} more before they could be read (receive buffer full)`;
  }
  return line;
}

/** Batches of 64 made-up datagrams the warm-up runs through the receive path. */
const WARM_UP_ROUNDS = 64;

/**
 * Before binding, runs the whole receive path (transport, socket, formatter, writer) on
 * made-up datagrams, with no traffic: a socket of its own, bound to loopback, is handed
 * batches laid out as the addon lays them out. Cold, the first tens of milliseconds of a
 * flood ran slowly enough for the kernel to drop thousands of datagrams (bench/start-loss.sh,
 * 100000 of 64 bytes at 200k/s: 15k-19k without it, 0 in 9 runs of 10 with it). 4096
 * datagrams of 64 and 256 bytes warm it as well as 16384 of 64 and 1024 did (1 lossy run in
 * 10 each), in 60 ms rather than 90: the interpreter is slow on long payloads. A Ctrl-C ends
 * it at once.
 */
async function warmUp(format: ByteFormatter, metadata: boolean, signal: AbortSignal): Promise<void> {
  // A real BatchWriter (into nothing): the formatter must meet the same kind of object it
  // will write to, or its optimized code is thrown away at the first real datagram.
  const sink = new BatchWriter(
    new Writable({
      write(_chunk, _encoding, callback) {
        callback();
      },
    }),
  );
  // Every branch a real payload may take: plain runs, control bytes, a backslash, valid and
  // invalid UTF-8, an unsafe code point; short and long. A branch first met under load would
  // throw the optimized code away.
  const samples = [64, 256].flatMap((size) =>
    [0, 1, 2, 3].map((variant) => {
      const data = Buffer.alloc(size, 0x61);
      data.set(
        [0, 1, 0x1b, 0x0a, 0x5c, 0xff, 0xc3, 0xa9, 0xc2, 0x9b, 0xe2, 0x9c, 0x93].slice(variant),
        variant * 3,
      );
      return data;
    }),
  );
  const batch = Array.from({ length: 64 }, (_, i) => samples[i % samples.length] as Buffer);
  let rx: UdpSocket | undefined;
  try {
    // Datagrams of the shape the real ones will have: with where they arrived, or without.
    rx = await openUdpSocket({ address: '127.0.0.1', port: 0, coalesce: true, metadata });
    const socket = rx;
    const done = socket.consume((msg) => {
      format(msg, sink);
      sink.commit();
    });
    done.catch(() => {});
    const deadline = performance.now() + 500;
    for (let round = 0; round < WARM_UP_ROUNDS && !signal.aborted && performance.now() < deadline; round++) {
      socket.simulateReceive(batch);
      // A turn of the loop now and then: the writer hands its chunks over, as it will.
      if (round % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
    }
  } catch {
    // No loopback to bind: start cold.
  } finally {
    await rx?.close();
  }
}

/**
 * A command that binds and takes datagrams as listen does, with listen's arguments and
 * options; `parse` turns what commander gives into listen's options (the flags object also
 * holds the command's own options). --allow and --deny share one list, so that their order
 * on the command line is kept.
 */
export function receiverCommand(
  name: string,
  run: (opts: ListenOptions, flags: Record<string, unknown>) => Promise<void>,
): Command {
  const rules: AccessRule[] = [];
  const addRule = (action: AccessRule['action']) => (cidr: string) => {
    rules.push({ action, cidr });
    return rules;
  };
  return new Command(name)
    .argument('[host]', 'local address or host name to bind (default 0.0.0.0, or :: with -6)')
    .argument('[port]', `local port (default ${DEFAULT_LISTEN_PORT}; 0 picks a free one)`)
    .addOption(
      new Option('-f, --format <format>', `output format: ${OUTPUT_FORMATS.join(', ')}`).default('text'),
    )
    .option('-t, --timestamps', 'prefix text lines and hex headers with the receive time (ISO 8601, UTC)')
    .option('-c, --count <n>', 'exit after n datagrams')
    .option(
      '-w, --idle-timeout <duration>',
      'exit after this long without a datagram, counted from the start (500ms, 5s, 2m; bare number = seconds); time paused for a slow reader does not count',
    )
    .option('-4', 'IPv4 only (bind 0.0.0.0 by default)')
    .option('-6', 'IPv6 (bind :: by default; it also receives IPv4, shown as [::ffff:a.b.c.d])')
    .option('-q, --quiet', "don't print the 'Listening on' line")
    .option(
      '--rcvbuf <bytes>',
      'receive buffer to ask the kernel for (default 4M); a warning says when it grants less',
    )
    .option(
      '--allow <cidr>',
      'take datagrams from this address block (10.0.0.0/8, ::1, all); repeatable',
      addRule('allow'),
    )
    .option(
      '--deny <cidr>',
      'drop and count datagrams from this block; rules apply in order, first match wins',
      addRule('deny'),
    )
    .option(
      '--join <group>',
      'join this multicast group (239.1.2.3, ff15::1); repeatable',
      (g: string, all: string[] = []) => [...all, g],
    )
    .option(
      '--source <address>',
      'with --join: take the groups from this sender only (source-specific multicast)',
    )
    .option(
      '--interface <name-or-address>',
      'take datagrams only from this interface (eth0, or one of its addresses; native transport); with --join: join on it',
    )
    .option(
      '--show-dst',
      "text and hex: add where each datagram arrived (' to 10.0.0.1 on eth0 ttl 64'; native transport)",
    )
    .option(
      '--receive-thread',
      'a thread reads the socket into an 8 MB ring, so a busy moment of the output does not overflow the kernel buffer (native transport; costs CPU on a single core)',
    )
    .option('--stats', 'print counters to stderr every second, and at exit')
    .option(
      '--stats-interval <duration>',
      'print the --stats counters this often (500ms, 5s; bare number = seconds); implies --stats',
    )
    .action(async (host: string | undefined, port: string | undefined, flags: Record<string, unknown>) => {
      const positionals = [host, port].filter((a): a is string => a !== undefined);
      const opts = parseListenArgs(positionals, {
        ...(flags as ListenFlags),
        ipv4: flags['4'] === true,
        ipv6: flags['6'] === true,
        access: rules,
      });
      await run(opts, flags);
    });
}

/** The `listen` subcommand. */
export function listenCommand(io: CliIO, setExit: (code: number) => void): Command {
  return receiverCommand('listen', async (opts) => setExit(await runListen(opts, io)))
    .summary('receive datagrams and print them with their sender (the classic UDP server)')
    .description(
      `Bind a local address (default 0.0.0.0:${DEFAULT_LISTEN_PORT}) and print each datagram
received, until Ctrl-C, --count datagrams or --idle-timeout of silence:
  Received message: Hello from 127.0.0.1:54321

The address comes in nc's order, 'host port', or as one 'host:port',
'[v6]:port', port or host. Text output escapes control bytes and invalid
UTF-8 (\\x1b, \\n, \\xff) and a backslash as \\\\, so no sender can drive
your terminal. Ctrl-C prints a summary on stderr.`,
    )
    .addHelpText(
      'after',
      `
Examples:
  udpkit listen                          0.0.0.0:12345, one line per datagram
  udpkit listen 127.0.0.1 9000           nc order: host then port
  udpkit listen [::1]:9000 --format json JSON lines: ts, from, size, text, base64
  udpkit listen 9000 --count 1 -f raw    print one payload and exit
  udpkit listen --format hex --timestamps

Output formats:
  text    Received message: Hello from 127.0.0.1:54321
  raw     the payload bytes, then a newline
  hex     a header, then a hexdump -C style dump
  base64  the payload in base64, one line each
  json    {"ts":"...","from":{"address","port","family"},"to":"127.0.0.1","interface":"lo",
          "ttl":64,"size":5,"text":"Hello","base64":"SGVsbG8="}
          (to, interface and ttl with the native transport)`,
    );
}

/**
 * --join, --source and --interface: groups must be multicast addresses, all of one family, the
 * socket's when -4, -6 or the address to bind says it; --source needs --join and is of the
 * groups' family.
 *
 * @throws {UsageError} naming the bad value
 */
function parseMulticastFlags(
  flags: ListenFlags,
  family: IpFamily | undefined,
): { join: string[]; source: string | undefined; iface: string | undefined } {
  const join = flags.join ?? [];
  if (join.length === 0 && flags.source !== undefined) {
    throw new UsageError('--source applies to --join: give a group to join');
  }
  let groups: IpFamily | undefined;
  for (const group of join) {
    const f = ipFamily(group);
    if (f === undefined || !isMulticast(group, f)) {
      throw new UsageError(
        `--join: '${group}' is not a multicast group (224.0.0.0/4 for IPv4, ff00::/8 for IPv6)`,
      );
    }
    if (family !== undefined && f !== family) {
      throw new UsageError(
        `--join: ${group} is an ${f} group, and the socket is ${family} (-4, -6 or the address to bind)`,
      );
    }
    if (groups !== undefined && f !== groups) {
      throw new UsageError(
        `--join: ${join[0]} and ${group} are of different families; one socket joins one family's groups`,
      );
    }
    groups = f;
  }
  if (flags.source !== undefined) {
    const f = ipFamily(flags.source);
    if (f === undefined) throw new UsageError(`--source: '${flags.source}' is not an IP address`);
    if (f !== groups) throw new UsageError(`--source: ${flags.source} is ${f}, and the groups are ${groups}`);
  }
  return { join, source: flags.source, iface: flags.interface };
}
