/**
 * `udpkit listen`: bind, print each datagram received with its sender, until Ctrl-C, a count
 * or a silence.
 */

import { availableParallelism } from 'node:os';
import {
  type AccessList,
  type AccessRule,
  BatchWriter,
  createByteFormatter,
  formatEndpoint,
  type IpFamily,
  ipFamily,
  isMulticast,
  OUTPUT_FORMATS,
  type OutputFormat,
  parseOutputFormat,
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
import { type CliIO, EXIT_OK, settleSignals } from '../io.js';
import {
  type ListenCounters,
  listenCounters,
  openReceiver,
  type ReceiverHooks,
  receiveLoop,
  receiverNeedsMetadata,
  receiverSummary,
  SocketReadings,
  socketCounters,
  warmUp,
} from '../receiver.js';
import { formatCounters, startStats } from '../stats.js';
import { finishOutput, outputFailure, stdoutIsStream, stdoutTarget } from '../stdout.js';
import { runWorkers } from '../workers/pool.js';

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
  /** --workers: threads, each with a socket of one SO_REUSEPORT group (1: no worker). */
  workers: number;
  /** --steer: how the kernel picks a worker: by a hash of the sender, or by the CPU. */
  steer: Steering;
}

/** How a SO_REUSEPORT group's datagrams are spread: see {@link ListenOptions.steer}. */
export type Steering = 'hash' | 'cpu';

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
  workers?: string;
  steer?: string;
}

/** The most --workers: far more than any core count a socket group would use well. */
export const MAX_WORKERS = 256;

export const DEFAULT_LISTEN_PORT = 12345;
/**
 * The default receive buffer: 32 MiB, what the first tenth of a second of a flood needs. The
 * kernel charges a datagram's whole buffer (about 2.3 KB for 1 KB of payload on loopback), and
 * a flood that starts with the process finds its code still cold and its memory not yet
 * mapped: 1 KB datagrams at 200k/s lost 3-15k of their first 200k with 4 MiB (8 granted), 0
 * with this (bench/start-loss.sh). The system's default, 208 KiB, holds about 1 ms. Memory is
 * taken only while datagrams wait; root gets it past net.core.rmem_max (SO_RCVBUFFORCE),
 * anyone else what that limit allows, and a warning says so.
 */
export const DEFAULT_RCVBUF = 32 * 1024 * 1024;
/** With the default buffer, a warning when the kernel grants less than this (it doubles what it allows). */
const RCVBUF_WARN_BELOW = 8 * 1024 * 1024;

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
  const workers = parseWorkers(flags.workers);
  if (flags.steer !== undefined && flags.steer !== 'hash' && flags.steer !== 'cpu') {
    throw new UsageError(`--steer: '${flags.steer}' is not hash or cpu`);
  }
  if (workers > 1 && flags.join !== undefined && flags.join.length > 0) {
    // The kernel hands a multicast datagram to every socket of the group, not to one.
    throw new UsageError('--join with --workers: each worker would receive every group datagram; use one');
  }
  if (flags.steer !== undefined && workers === 1) {
    throw new UsageError('--steer spreads datagrams over --workers: give --workers 2 or more');
  }
  return {
    host,
    port: port ?? DEFAULT_LISTEN_PORT,
    workers,
    steer: (flags.steer as Steering | undefined) ?? 'hash',
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

/** Runs `listen`; resolves to the exit status. Bind and output failures reject. */
export function runListen(opts: ListenOptions, io: CliIO): Promise<number> {
  return runReceiver(opts, io, { verb: 'listen' });
}

/**
 * Binds, then writes each datagram received in the chosen format until a count, a silence
 * or a signal, pausing reception while the output is full, with counters that add up. With
 * --workers, as many threads each do it on a socket of one SO_REUSEPORT group.
 */
export async function runReceiver(opts: ListenOptions, io: CliIO, hooks: ReceiverHooks): Promise<number> {
  if (opts.workers > 1) return runWorkers(opts, io, hooks);
  const name = `udpkit ${hooks.verb}`;
  const format = createByteFormatter(opts.format, { timestamps: opts.timestamps, destination: opts.showDst });
  // With the receive thread, the first datagrams wait in its ring while the code warms up.
  if (!opts.receiveThread)
    await warmUp(format, receiverNeedsMetadata(opts, hooks), io.signal, !stdoutIsStream());
  const socket = await openReceiver(opts, hooks, io.signal);
  if (socket === undefined) {
    // Stopped while starting: nothing was received, and it says so.
    io.stderr.write(`${name}: stopped before it was listening; received 0 datagrams\n`);
    return EXIT_OK;
  }
  const out = new BatchWriter(stdoutTarget());
  // The first burst writes to memory already mapped (see BatchWriter.reserve).
  out.reserve(2 * 1024 * 1024);
  // The output failed (the reader went away, a full disk): stop receiving at once.
  const outputFailed = new AbortController();
  out.onError(() => outputFailed.abort());
  const signal = AbortSignal.any([io.signal, outputFailed.signal]);
  const local = socket.address();
  const granted = socket.recvBufferSize;
  if (!opts.quiet) io.stderr.write(`Listening on ${formatEndpoint(local.address, local.port)}\n`);
  hooks.onStart?.(socket);
  warnIfBufferCapped(io, name, opts.rcvbuf, granted);
  const readings = new SocketReadings(socket);
  const counters = (): ListenCounters =>
    listenCounters(socketCounters(socket, readings, opts, hooks), {
      printed: out.written,
      pending: out.pending,
      drops_output: out.dropped,
    });
  const stopStats =
    opts.stats === undefined ? () => {} : startStats(io.stderr, name, opts.stats, counters, 'received');
  let abandoned = 0;
  try {
    await receiveLoop(socket, out, format, hooks, readings, {
      signal,
      idleTimeout: opts.idleTimeout,
      limit: opts.count,
    });
  } finally {
    abandoned = await finishOutput(out, io.signal);
    await settleSignals();
    stopStats();
    reportEnd(io, name, opts, hooks, counters(), abandoned, granted);
  }
  const failure = outputFailure(out.error);
  if (failure) throw failure;
  return EXIT_OK;
}

/** Linux reports twice what it was asked (it counts its bookkeeping): less than asked is a cap. */
export function warnIfBufferCapped(io: CliIO, name: string, asked: number, granted: number): void {
  // The default asks for more than most systems allow to anyone but root: below it, what is
  // granted is said only when it is under 4 MiB (8 as the kernel counts), as it was when 4 MiB
  // was the default. A size asked for on the command line is held to itself.
  if (granted < (asked === DEFAULT_RCVBUF ? RCVBUF_WARN_BELOW : asked)) {
    io.stderr.write(
      `${name}: asked for a ${asked}-byte receive buffer, the kernel granted ${granted} (raise net.core.rmem_max to allow more)\n`,
    );
  }
}

/**
 * The last line on stderr: the counters with --stats; otherwise the summary, when stopped by a
 * signal or when anything was dropped or the verb has words of its own.
 */
export function reportEnd(
  io: CliIO,
  name: string,
  opts: ListenOptions,
  hooks: ReceiverHooks,
  last: ListenCounters,
  abandoned: number,
  granted: number,
  byWorker?: readonly number[],
): void {
  const dropped = last.drops_queue + last.drops_output + (last.denied ?? 0);
  if (opts.stats !== undefined) {
    const spread = byWorker === undefined ? '' : ` by_worker=${byWorker.join('/')}`;
    io.stderr.write(`${name}: ${formatCounters(last)} rcvbuf=${granted}${spread}\n`);
  } else {
    const own = hooks.summary?.(last);
    const notice = dropped > 0 || (last.drops_kernel ?? 0) > 0 || (last.past_count ?? 0) > 0;
    if (io.signal.aborted || notice || own !== undefined) {
      const spread = byWorker === undefined ? '' : `; by worker ${byWorker.join('/')}`;
      io.stderr.write(
        `${name}: ${receiverSummary(last, abandoned)}${own === undefined ? '' : `; ${own}`}${spread}\n`,
      );
    }
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
      'receive buffer to ask the kernel for (default 32M); a warning says when it grants less (with the default: under 4M)',
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
    .option(
      '--workers <n>',
      "receive in n threads, each with its own socket on the same port (SO_REUSEPORT; 'auto': one per core); output and counters merge (native transport)",
    )
    .option(
      '--steer <mode>',
      'with --workers: how the kernel picks a worker: hash (of the sender, default) or cpu (the CPU that took the datagram in)',
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
 * --workers: a count from 1 to {@link MAX_WORKERS}, or `auto` for the cores Node may use.
 *
 * @throws {UsageError} naming the bad value
 */
export function parseWorkers(value: string | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return Math.min(availableParallelism(), MAX_WORKERS);
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= MAX_WORKERS)) {
    throw new UsageError(
      `--workers: '${value}' is not a number of workers from 1 to ${MAX_WORKERS}, or auto`,
    );
  }
  return n;
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
