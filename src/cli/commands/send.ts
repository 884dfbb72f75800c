/**
 * `udpkit send`: send each message argument, or each framed record of stdin or a file, as one
 * datagram, and report each one sent.
 */
import { isUtf8 } from 'node:buffer';
import {
  AbortError,
  BatchWriter,
  ConnectionRefusedError,
  checkSize,
  createSequencedBatch,
  escapeText,
  FRAMINGS,
  type FramedRecords,
  Framer,
  type Framing,
  formatEndpoint,
  InputError,
  type IpFamily,
  isMulticast,
  MAX_PAYLOAD_IPV4,
  MAX_PAYLOAD_IPV6,
  MIN_SEQUENCED_SIZE,
  maxPayload,
  numberDatagrams,
  OUTPUT_FORMATS,
  Pacer,
  PermissionDeniedError,
  parseFraming,
  parseOutputFormat,
  resolveHost,
  throwIfAborted,
  UdpSocket,
  type UdpSocketOptions,
} from '../../lib/index.js';
import {
  checkFamily,
  parseCount,
  parseFamilyFlags,
  parseRate,
  parseSendPositionals,
  parseStatsFlags,
  UsageError,
  usage,
} from '../args.js';
import { Command, Option } from '../commander.js';
import { inputChunks } from '../input.js';
import { type CliIO, EXIT_OK, plural, settleSignals } from '../io.js';
import { type Counters, formatCounters, startStats } from '../stats.js';
import { finishOutput, outputFailure, stdoutTarget } from '../stdout.js';
import { parseWaitFlags, runRequest, type WaitFlags, type WaitOptions } from './request.js';

/** What `send` does, once its command line is parsed. */
export interface SendOptions {
  host: string;
  port: number;
  family: IpFamily | undefined;
  /** Messages from the command line; `undefined` means read `file` or stdin. */
  messages: string[] | undefined;
  /** A file to read records from; `undefined` or `-` is stdin. */
  file: string | undefined;
  framing: Framing;
  quiet: boolean;
  /** Generate this many sequenced datagrams instead of sending messages. */
  count: number | undefined;
  /** Size of generated datagrams in bytes. */
  size: number;
  /** Datagrams per second; 0 is as fast as possible. */
  rate: number;
  /** Milliseconds between `--stats` lines; undefined for none. */
  stats: number | undefined;
  /** --wait: wait for replies and print them; undefined to send only. */
  wait: WaitOptions | undefined;
  /** --broadcast: SO_BROADCAST, to send to a broadcast address. */
  broadcast: boolean;
  /** --ttl: the hop limit of unicast and multicast datagrams. */
  ttl: number | undefined;
  /** --interface: multicast goes out of this interface (a name or one of its addresses). */
  iface: string | undefined;
  /** --multicast-loopback / --no-multicast-loopback; undefined leaves the system's default (on). */
  multicastLoopback: boolean | undefined;
}

/** The raw option values commander hands over. */
export interface SendFlags extends WaitFlags {
  broadcast?: boolean;
  ttl?: string;
  interface?: string;
  multicastLoopback?: boolean;
  framing?: string;
  file?: string;
  quiet?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
  count?: string;
  size?: string;
  rate?: string;
  stats?: boolean;
  statsInterval?: string;
}

/** The most records of input one unpaced call sends (see Pacer's maxBatch). */
const UNPACED_BATCH = 1024;

/** The default size of generated datagrams, as in the benchmarks. */
export const DEFAULT_GENERATED_SIZE = 64;

export const DEFAULT_SEND_HOST = '127.0.0.1';
export const DEFAULT_SEND_PORT = 12345;

/**
 * Parses `send`'s positionals and flags. Pure.
 *
 * @throws {UsageError} naming the bad value and what is allowed
 */
export function parseSendArgs(positionals: readonly string[], flags: SendFlags): SendOptions {
  const { host, port, messages } = parseSendPositionals(positionals);
  const family = parseFamilyFlags(flags);
  checkFamily(host, family);
  if (port === 0) throw new UsageError('port 0 is not a valid destination (1-65535)');
  if (messages.length > 0 && flags.file !== undefined) {
    throw new UsageError('give messages as arguments or with --file, not both');
  }
  if (messages.length > 0 && flags.framing !== undefined) {
    throw new UsageError('--framing applies to stdin or --file, not to message arguments');
  }
  if (
    flags.count !== undefined &&
    (messages.length > 0 || flags.file !== undefined || flags.framing !== undefined)
  ) {
    throw new UsageError('--count generates datagrams: give no messages, --file or --framing with it');
  }
  if (flags.size !== undefined && flags.count === undefined) {
    throw new UsageError('--size sets the size of generated datagrams: use it with --count');
  }
  const size = flags.size === undefined ? DEFAULT_GENERATED_SIZE : parseSizeArg(flags.size);
  return {
    host: host ?? (family === 'IPv6' ? '::1' : DEFAULT_SEND_HOST),
    port: port ?? DEFAULT_SEND_PORT,
    family,
    messages: messages.length > 0 ? messages : undefined,
    file: flags.file,
    framing: usage(() => parseFraming(flags.framing ?? 'line')),
    quiet: flags.quiet ?? false,
    count: flags.count === undefined ? undefined : parseCount(flags.count, 'count'),
    size,
    rate: flags.rate === undefined ? 0 : parseRate(flags.rate),
    stats: parseStatsFlags(flags),
    wait: parseWaitArgs(flags),
    broadcast: flags.broadcast ?? false,
    ttl: flags.ttl === undefined ? undefined : parseTtl(flags.ttl),
    iface: flags.interface,
    multicastLoopback: flags.multicastLoopback,
  };
}

/** Adds what to do to an error a user can fix: a broadcast address without --broadcast. */
function explain(err: unknown, opts: SendOptions): unknown {
  if (err instanceof PermissionDeniedError && !opts.broadcast && err.syscall !== 'bind') {
    err.message += ' (to send to a broadcast address, add --broadcast)';
  }
  return err;
}

function parseTtl(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || Number(text) > 255) {
    throw new UsageError(`ttl '${text}' is not a hop limit (1-255)`);
  }
  return Number(text);
}

/**
 * The socket `send` sends from: of the target's family, and tied to --interface
 * (SO_BINDTODEVICE) unless the target is a group, which --interface sends out of instead.
 */
export function sendSocketOptions(
  opts: SendOptions,
  target: { address: string; family: IpFamily },
): UdpSocketOptions {
  const tie = opts.iface !== undefined && !isMulticast(target.address, target.family);
  return { type: target.family === 'IPv6' ? 'udp6' : 'udp4', ...(tie && { interface: opts.iface }) };
}

/**
 * Binds `socket` and sets --broadcast, --ttl, --interface (for a group) and multicast
 * loopback on it, when asked: before any connect, since Linux refuses to connect to a
 * broadcast address without SO_BROADCAST.
 */
export async function prepareSocket(
  socket: UdpSocket,
  opts: SendOptions,
  target: { address: string; family: IpFamily },
  signal: AbortSignal,
): Promise<void> {
  if (
    !opts.broadcast &&
    opts.ttl === undefined &&
    opts.iface === undefined &&
    opts.multicastLoopback === undefined
  )
    return;
  await socket.bind({ signal });
  if (opts.broadcast) socket.setBroadcast(true);
  if (opts.ttl !== undefined) {
    socket.setTTL(opts.ttl);
    socket.setMulticastTTL(opts.ttl);
  }
  // Tied to it at bind when the target is not a group (sendSocketOptions).
  if (opts.iface !== undefined && isMulticast(target.address, target.family)) {
    socket.setMulticastInterface(opts.iface);
  }
  if (opts.multicastLoopback !== undefined) socket.setMulticastLoopback(opts.multicastLoopback);
}

function parseWaitArgs(flags: SendFlags): WaitOptions | undefined {
  const format =
    flags.format === undefined ? undefined : usage(() => parseOutputFormat(flags.format as string));
  const wait = parseWaitFlags(flags, format);
  if (wait && flags.count !== undefined) {
    throw new UsageError('--wait waits for replies to messages: not with --count');
  }
  if (wait && (flags.rate !== undefined || flags.stats || flags.statsInterval !== undefined)) {
    throw new UsageError('--rate and --stats are for sending only: not with --wait');
  }
  return wait;
}

function parseSizeArg(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`size '${text}' is not a number of bytes`);
  const size = Number(text);
  if (size < MIN_SEQUENCED_SIZE || size > MAX_PAYLOAD_IPV6) {
    throw new UsageError(
      `size ${size} is out of range (${MIN_SEQUENCED_SIZE}-${MAX_PAYLOAD_IPV4}; ${MAX_PAYLOAD_IPV6} over IPv6): the first 8 bytes hold the sequence number`,
    );
  }
  return size;
}

/** Runs `send`; resolves to the exit status. Resolve, size, send and output failures reject. */
export async function runSend(opts: SendOptions, io: CliIO): Promise<number> {
  const target = await resolveHost(opts.host, { family: opts.family, signal: io.signal });
  const to = formatEndpoint(target.address, opts.port);
  // Arguments are all known up front: check them all before sending any.
  const argRecords = opts.messages && argumentBytes(opts.messages, io.argv, io.argvBytes);
  for (const record of argRecords ?? []) checkSize(record.length, target.family);
  if (opts.count !== undefined) checkSize(opts.size, target.family);
  if (opts.wait) {
    const records = argRecords ?? (await readAllRecords(opts, io, target.family));
    // A group or a broadcast address is answered by others, from their own addresses.
    const anyone = opts.broadcast || isMulticast(target.address, target.family);
    return runRequest(
      { ...target, port: opts.port },
      records,
      opts.wait,
      io,
      sendSocketOptions(opts, target),
      (socket) => prepareSocket(socket, opts, target, io.signal),
      anyone,
    ).catch((err: unknown) => {
      throw explain(err, opts);
    });
  }

  const socket = new UdpSocket(sendSocketOptions(opts, target));
  const out = new BatchWriter(stdoutTarget());
  // A failed output (a full disk) stops the run; a reader that went away only stops the reports.
  const outputFailed = new AbortController();
  out.onError((err) => {
    if (outputFailure(err)) outputFailed.abort();
  });
  const signal = AbortSignal.any([io.signal, outputFailed.signal]);
  // Unpaced, a chunk's records go in few calls (the native transport makes one system call per
  // 64 messages of them, equal-size runs as one GSO buffer each).
  const pacer = new Pacer(opts.rate, opts.rate === 0 ? { maxBatch: UNPACED_BATCH } : {});
  const load = { refused: 0 };
  const counters = (): Counters => ({
    sent: socket.packetsSent,
    bytes: socket.bytesSent,
    // An ICMP report reaches whichever call comes first: a send (which then goes again) or
    // the socket's receive path.
    refused: load.refused + socket.receiveErrors,
    errors: socket.sendErrors - load.refused,
  });
  const stopStats =
    opts.stats === undefined ? () => {} : startStats(io.stderr, 'udpkit send', opts.stats, counters, 'sent');
  // The report's elapsed time is the sending's: from the first datagram to the last, not the
  // set-up before or the flushing after.
  let started = performance.now();
  let ended: number | undefined;
  try {
    try {
      await prepareSocket(socket, opts, target, signal);
      if (opts.count !== undefined) {
        await socket.connect(opts.port, target.address, { signal });
        started = performance.now();
        await generate(socket, opts.count, opts.size, pacer, signal, load);
      } else {
        // One datagram per record, in order; the report follows once the kernel has it.
        const report = (record: Uint8Array) => out.write(`Sent message: ${escapeText(record)} to ${to}\n`);
        // A slow reader of the reports slows the sending, rather than losing reports.
        const keepUp = () => (out.saturated ? out.flush({ signal }) : undefined);
        const sendList = async (records: Buffer[]) => {
          for (let i = 0; i < records.length; ) {
            const n = await pacer.take(records.length - i, signal);
            const group = records.slice(i, i + n);
            await sendAll(n, load, signal, (done) =>
              socket.sendEach(done === 0 ? group : group.slice(done), opts.port, target.address),
            );
            if (!opts.quiet) {
              for (const record of group) report(record);
              await keepUp();
            }
            i += n;
          }
        };
        // A chunk's records where they lie: no object per record on the way to the kernel.
        const sendFramed = async ({ carried, data, offsets, lengths, count }: FramedRecords) => {
          if (carried) await sendList([carried]);
          for (let i = 0; i < count; ) {
            const n = await pacer.take(count - i, signal);
            await sendAll(n, load, signal, (done) =>
              i + done === 0
                ? socket.sendRecords(data, offsets, lengths, n, opts.port, target.address)
                : socket.sendRecords(
                    data,
                    offsets.subarray(i + done),
                    lengths.subarray(i + done),
                    n - done,
                    opts.port,
                    target.address,
                  ),
            );
            if (!opts.quiet) {
              for (let k = i; k < i + n; k++) {
                const at = offsets[k] as number;
                report(data.subarray(at, at + (lengths[k] as number)));
              }
              await keepUp();
            }
            i += n;
          }
        };
        if (argRecords) await sendList(argRecords);
        else {
          promptOnTerminal(opts, io);
          const framer = new Framer(opts.framing, maxPayload(target.family));
          for await (const chunk of inputChunks(opts.file, io.stdin, signal, { reuse: true })) {
            await sendFramed(framer.pushRecords(chunk));
          }
          await sendFramed(framer.endRecords());
        }
      }
    } catch (err) {
      if (!(err instanceof AbortError && signal.aborted)) throw explain(err, opts);
    } finally {
      ended = performance.now();
      await socket.close();
    }
  } finally {
    // What was sent is reported, even when a later record failed.
    await finishOutput(out, io.signal);
    stopStats();
    await settleSignals();
    const elapsed = ((ended ?? performance.now()) - started) / 1000;
    if (opts.count !== undefined || opts.stats !== undefined) {
      io.stderr.write(
        `udpkit send: ${formatCounters(counters())} elapsed=${elapsed.toFixed(6)}s pps=${Math.round(socket.packetsSent / elapsed)}\n`,
      );
    } else if (io.signal.aborted) {
      io.stderr.write(
        `udpkit send: sent ${plural(socket.packetsSent, 'datagram')} (${plural(socket.bytesSent, 'byte')})\n`,
      );
    }
  }
  const failure = outputFailure(out.error);
  if (failure) throw failure;
  return EXIT_OK;
}

/**
 * The bytes of each message argument. Node decodes the command line as UTF-8, turning bytes
 * that are not UTF-8 into U+FFFD; where the raw command line is known (Linux), such an
 * argument's own bytes are sent instead, matched by position. An argument whose raw bytes
 * hold U+FFFD itself is refused: a wrapper (npx, a script) has usually replaced the bytes
 * before udpkit saw them, and sending U+FFFD in their place would change the message
 * silently. Such messages go with `--framing hex`.
 *
 * @param argvBytes the raw arguments, aligned with the decoded ones in `argv`
 * @throws {InputError} `UDP_ERR_INPUT` when the bytes cannot be recovered
 */
function argumentBytes(
  messages: readonly string[],
  argv: readonly string[],
  argvBytes: readonly Buffer[] | undefined,
): Buffer[] {
  let cursor = 0;
  return messages.map((message, index) => {
    // Messages appear on the command line in order: find this one after the last.
    const at = argv.indexOf(message, cursor);
    if (at >= 0) cursor = at + 1;
    if (!message.includes('\ufffd')) return Buffer.from(message, 'utf8');
    const raw = at >= 0 ? argvBytes?.[at] : undefined;
    if (raw !== undefined && !isUtf8(raw)) return raw;
    const why =
      raw === undefined
        ? 'is not valid UTF-8, and its bytes cannot be recovered here'
        : 'holds U+FFFD, usually what became of bytes that are not UTF-8 before udpkit saw them (npx does this)';
    throw new InputError(
      `message ${index + 1} ${why}; send the exact bytes with --framing hex (e.g. printf '68 69 ff\\n' | udpkit send HOST PORT --framing hex)`,
    );
  });
}

/** Sends `count` sequenced datagrams of `size` bytes, paced, in batches (see sendAll). */
async function generate(
  socket: UdpSocket,
  count: number,
  size: number,
  pacer: Pacer,
  signal: AbortSignal,
  load: { refused: number },
): Promise<void> {
  // Large batches: with GSO the addon sends runs of equal datagrams as buffers of up to 64,
  // and up to 64 buffers a call (a pacer's batch is what is due, usually far fewer).
  const batch = Math.min(count, 1024, Math.max(64, Math.floor((2 << 20) / size)));
  const buf = createSequencedBatch(size, batch);
  const lengths = new Uint32Array(batch).fill(size);
  let seq = 0;
  while (seq < count) {
    const n = await pacer.take(Math.min(batch, count - seq), signal);
    numberDatagrams(buf, size, n, seq);
    await sendAll(n, load, signal, (done) =>
      socket.sendPacked(done === 0 ? buf : buf.subarray(done * size), lengths, n - done),
    );
    seq += n;
  }
}

/**
 * Sends `n` datagrams through `send(done)`, which sends those from `done` on. Every datagram is
 * sent: when the kernel reports an ICMP port unreachable from an earlier one (ECONNREFUSED on a
 * connected socket), the datagram that met the report was not sent, so it and the rest go
 * again. Those reports are counted in `load.refused`.
 */
async function sendAll(
  n: number,
  load: { refused: number },
  signal: AbortSignal,
  send: (done: number) => Promise<void>,
): Promise<void> {
  for (let done = 0; done < n; ) {
    try {
      await send(done);
      done = n;
    } catch (err) {
      // Nobody listening answers with ICMP port unreachable: count it and go on, as blasters do.
      if (!(err instanceof ConnectionRefusedError)) throw err;
      load.refused++;
      done += err.sent ?? 0;
      throwIfAborted(signal);
    }
  }
}

/** Reads stdin or the file whole, framed: a request's records, kept to be sent again. */
async function readAllRecords(opts: SendOptions, io: CliIO, family: IpFamily): Promise<Buffer[]> {
  promptOnTerminal(opts, io);
  const framer = new Framer(opts.framing, maxPayload(family));
  const all: Buffer[] = [];
  // Each chunk its own memory: the records kept are views of them.
  for await (const chunk of inputChunks(opts.file, io.stdin, io.signal, { reuse: false })) {
    all.push(...framer.push(chunk));
  }
  all.push(...framer.end());
  return all;
}

/** Says what is expected when the messages come from a terminal. */
function promptOnTerminal(opts: SendOptions, io: CliIO): void {
  if ((opts.file === undefined || opts.file === '-') && io.stdin.isTTY) {
    io.stderr.write(
      `Reading messages from stdin, one datagram per ${opts.framing === 'nul' ? 'NUL-terminated record' : 'line'}; Ctrl-D to end.\n`,
    );
  }
}

/** The `send` subcommand. */
export function sendCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('send')
    .summary('send messages as datagrams and report each one (the classic UDP client)')
    .description(
      `Send each message as one datagram to 127.0.0.1:${DEFAULT_SEND_PORT}, or to the target
given first, and print 'Sent message: <text> to <address>' for each.

The first positionals name the target when they look like one:
  - an IP address, [v6] or :port, with or without a port number after it:
      udpkit send 10.0.0.5 9000 hi    udpkit send ::1 hi    udpkit send :9000 hi
  - a single host:port or [v6]:port:    udpkit send [::1]:9000 hi
  - a host name followed by a port number: udpkit send localhost 9000 hi
A target without a port gets port ${DEFAULT_SEND_PORT}. Otherwise every positional is a
message to the default target:
  udpkit send Hello World UDP           three datagrams to 127.0.0.1:${DEFAULT_SEND_PORT}
A malformed target ([fe80::1%, 1.2.3 9000, port 70000) is an error, not a message.
To send messages that look like a target, name the target first.

With no messages, reads stdin (or --file), one datagram per line.`,
    )
    .argument('[target-and-messages...]', '[host port | host:port | IP | [v6] | :port] then messages')
    .addOption(
      new Option(
        '--framing <framing>',
        `how stdin or --file becomes datagrams: ${FRAMINGS.join(', ')} (default: line)`,
      ),
    )
    .option('--file <path>', 'read messages from this file instead of stdin (- is stdin)')
    .option('-4', 'IPv4 only')
    .option('-6', 'IPv6 only (default target ::1)')
    .option('-q, --quiet', "don't print a line per message sent")
    .option('-n, --count <n>', 'generate n datagrams for a load test: an 8-byte sequence number, then a-z')
    .option(
      '-s, --size <bytes>',
      `size of generated datagrams (default ${DEFAULT_GENERATED_SIZE}; at least 8)`,
    )
    .option('-r, --rate <per-second>', 'pace sending at this many datagrams per second (1000, 50k, 1M)')
    .option('--broadcast', 'allow sending to a broadcast address (SO_BROADCAST): 10.0.0.255, 255.255.255.255')
    .option('--ttl <hops>', 'hop limit of the datagrams sent, unicast and multicast (1-255)')
    .option(
      '--interface <name-or-address>',
      'send out of this interface (eth0, or one of its addresses): multicast on both transports, any other target tied to it (native transport)',
    )
    .option('--multicast-loopback', "deliver multicast sent to this host's own members too (the default)")
    .option('--no-multicast-loopback', 'do not deliver multicast sent to members on this host')
    .option('--wait', 'then wait for replies and print them as listen does (exit 1 on a timeout)')
    .option('--timeout <duration>', `with --wait: how long to wait for the replies (default 1s; 500ms, 2s)`)
    .option('--retries <n>', 'with --wait: send again this many times when the replies are late (default 0)')
    .option('--expect <n>', 'with --wait: replies to wait for (default: one per datagram sent)')
    .addOption(
      new Option(
        '-f, --format <format>',
        `with --wait: how replies are printed: ${OUTPUT_FORMATS.join(', ')} (default text)`,
      ),
    )
    .option('-t, --timestamps', 'with --wait: prefix replies with their receive time')
    .option('--stats', 'print counters to stderr every second, and at exit')
    .option(
      '--stats-interval <duration>',
      'print the --stats counters this often (500ms, 5s; bare number = seconds); implies --stats',
    )
    .addHelpText(
      'after',
      `
Framings (stdin and --file):
  line   one datagram per line; the newline and a trailing \\r are not sent (default)
  nul    one datagram per NUL-terminated record (find -print0, xargs -0)
  whole  all of the input as one datagram
  hex    one datagram per line of hex digits, spaces allowed: 48 65 6c 6c 6f

Examples:
  udpkit send Hello World UDP            three datagrams to 127.0.0.1:12345
  udpkit send 127.0.0.1 9000 hi          nc order: host, port, then messages
  udpkit send localhost:9000 hi
  printf 'a\\nb\\n' | udpkit send [::1]:9000
  udpkit send 127.0.0.1 9000 --framing whole --file packet.bin
  udpkit send 127.0.0.1 9000 --count 100000 --size 1024 --rate 50k
  udpkit send 127.0.0.1 9000 ping --wait --timeout 2s --retries 2
  echo '12 34 01 00 00 01 00 00 00 00 00 00 00 00 01 00 01' |
    udpkit send 127.0.0.1 53 --framing hex --wait -f hex

A message over 65507 bytes (IPv4) or 65527 (IPv6) is an error: nothing after it is sent.`,
    )
    .action(async (positionals: string[], flags: Record<string, unknown>) => {
      const opts = parseSendArgs(positionals, {
        ...(flags as SendFlags),
        ipv4: flags['4'] === true,
        ipv6: flags['6'] === true,
      });
      setExit(await runSend(opts, io));
    });
}
