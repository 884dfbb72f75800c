/**
 * `udpkit listen`: bind, print each datagram received with its sender, until Ctrl-C, a count
 * or a silence.
 */

import { Writable } from 'node:stream';
import {
  AbortError,
  BatchWriter,
  type ByteFormatter,
  createByteFormatter,
  formatEndpoint,
  type IpFamily,
  OUTPUT_FORMATS,
  type OutputFormat,
  openUdpSocket,
  parseOutputFormat,
  type UdpSocket,
} from '../../lib/index.js';
import {
  parseByteSize,
  parseCount,
  parseDuration,
  parseFamilyFlags,
  parseListenPositionals,
  parseStatsFlag,
  usage,
} from '../args.js';
import { Command, Option } from '../commander.js';
import { type CliIO, EXIT_OK, OUTPUT_DEADLINE_MS, plural } from '../io.js';
import { type Counters, formatCounters, startStats } from '../stats.js';
import { stdoutTarget } from '../stdout.js';

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
  stats?: string | boolean;
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
  return {
    host,
    port: port ?? DEFAULT_LISTEN_PORT,
    family: parseFamilyFlags(flags),
    format: usage(() => parseOutputFormat(flags.format ?? 'text')),
    timestamps: flags.timestamps ?? false,
    count: flags.count === undefined ? undefined : parseCount(flags.count, 'count'),
    idleTimeout:
      flags.idleTimeout === undefined ? undefined : parseDuration(flags.idleTimeout, 'idle timeout'),
    quiet: flags.quiet ?? false,
    rcvbuf: flags.rcvbuf === undefined ? DEFAULT_RCVBUF : parseByteSize(flags.rcvbuf, 'receive buffer'),
    stats: parseStatsFlag(flags.stats),
  };
}

/** Runs `listen`; resolves to the exit status. Bind failures reject. */
export async function runListen(opts: ListenOptions, io: CliIO): Promise<number> {
  const format = createByteFormatter(opts.format, { timestamps: opts.timestamps });
  await warmUp(format);
  const address = opts.host ?? (opts.family === 'IPv6' ? '::' : '0.0.0.0');
  const socket = await openUdpSocket({
    address,
    port: opts.port,
    ...(opts.family && { type: opts.family === 'IPv6' ? 'udp6' : 'udp4' }),
    recvBufferSize: opts.rcvbuf,
    signal: io.signal,
  });
  // stdout through fs.write on the thread pool: a stalled reader costs counted drops, not a
  // stalled receiver.
  const out = new BatchWriter(stdoutTarget());
  // The reader went away (`udpkit listen | head -1`): stop quietly, like any Unix filter.
  const outputGone = new AbortController();
  out.onError(() => outputGone.abort());
  const signal = AbortSignal.any([io.signal, outputGone.signal]);
  const local = socket.address();
  const granted = socket.recvBufferSize;
  if (!opts.quiet) io.stderr.write(`Listening on ${formatEndpoint(local.address, local.port)}\n`);
  // Linux reports twice what it was asked (it counts its bookkeeping): less than asked is a cap.
  if (granted < opts.rcvbuf) {
    io.stderr.write(
      `udpkit listen: asked for a ${opts.rcvbuf}-byte receive buffer, the kernel granted ${granted} (raise net.core.rmem_max to allow more)\n`,
    );
  }
  const counters = (): Counters => ({
    received: socket.packetsReceived,
    bytes: socket.bytesReceived,
    printed: out.accepted,
    drops_kernel: socket.kernelDrops,
    drops_queue: socket.droppedByQueue,
    drops_output: out.dropped,
  });
  const stopStats =
    opts.stats === undefined
      ? () => {}
      : startStats(io.stderr, 'udpkit listen', opts.stats, counters, 'received');

  let left = opts.count ?? Number.POSITIVE_INFINITY;
  // When stdout cannot take more, leave datagrams in the kernel's receive buffer (a second
  // stage of buffering) until it can; where the transport cannot pause, count them as not
  // printed instead of formatting them for nothing.
  let paused = false;
  out.onDrain(() => {
    if (paused && !out.saturated) {
      paused = false;
      socket.resume();
    }
  });
  try {
    // Each datagram is formatted straight into the output buffer as it arrives.
    await socket.consume(
      (msg) => {
        if (out.saturated && !paused) paused = socket.pause();
        if (out.saturated && !paused) out.countDropped(1);
        else {
          format(msg, out);
          out.commit();
        }
        return --left > 0;
      },
      { signal, ...(opts.idleTimeout !== undefined && { idleTimeout: opts.idleTimeout }) },
    );
  } catch (err) {
    if (!(err instanceof AbortError)) throw err;
  } finally {
    stopStats();
    const last = counters();
    await socket.close();
    // Output a stalled reader never takes must not keep us from exiting.
    await out.flush(OUTPUT_DEADLINE_MS);
    // Ctrl-C gets a summary; so does any run that could not print everything.
    const dropped = (last.drops_kernel ?? 0) + (last.drops_queue ?? 0) + (last.drops_output ?? 0);
    if (opts.stats !== undefined)
      io.stderr.write(`udpkit listen: ${formatCounters(last)} rcvbuf=${granted}\n`);
    else if (io.signal.aborted || dropped > 0) {
      io.stderr.write(
        `udpkit listen: received ${plural(last.received ?? 0, 'datagram')} (${plural(last.bytes ?? 0, 'byte')})${
          dropped > 0
            ? `, ${dropped} not printed (kernel ${last.drops_kernel ?? 0}, queue ${last.drops_queue}, output ${last.drops_output})`
            : ''
        }\n`,
      );
    }
  }
  return EXIT_OK;
}

/**
 * Before binding, runs the whole receive path (transport, socket, formatter) on made-up
 * datagrams sent to itself over loopback, so the JIT has optimized it by the time a flood
 * arrives. Cold, the first tens of milliseconds of a flood ran slowly enough for the kernel to
 * drop thousands of datagrams (measured: 5243 of the first 100000 at 200k/s, 1024 bytes).
 * Costs about 100 ms once; skipped silently if loopback is not there.
 */
async function warmUp(format: ByteFormatter): Promise<void> {
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
  const samples = [64, 1024].flatMap((size) =>
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
  const total = 16384;
  let rx: UdpSocket | undefined;
  let tx: UdpSocket | undefined;
  try {
    rx = await openUdpSocket({ address: '127.0.0.1', port: 0, recvBufferSize: 4 << 20 });
    tx = await openUdpSocket({ address: '127.0.0.1', port: 0 });
    let seen = 0;
    const done = rx.consume(
      (msg) => {
        format(msg, sink);
        sink.commit();
        return ++seen < total;
      },
      { idleTimeout: 100 },
    );
    const port = rx.address().port;
    const deadline = performance.now() + 1000;
    for (let sent = 0; sent < total && performance.now() < deadline; sent += batch.length) {
      await tx.sendEach(batch, port);
      // Let the receiver keep up, so little is lost and everything gets run.
      while (sent - seen > 1024 && performance.now() < deadline) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await done;
  } catch {
    // No loopback: start cold.
  } finally {
    await Promise.all([rx?.close(), tx?.close()]);
  }
}

/** The `listen` subcommand. */
export function listenCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('listen')
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
    .argument('[host]', 'local address or host name to bind (default 0.0.0.0, or :: with -6)')
    .argument('[port]', `local port (default ${DEFAULT_LISTEN_PORT}; 0 picks a free one)`)
    .addOption(
      new Option('-f, --format <format>', `output format: ${OUTPUT_FORMATS.join(', ')}`).default('text'),
    )
    .option('-t, --timestamps', 'prefix text lines and hex headers with the receive time (ISO 8601, UTC)')
    .option('-c, --count <n>', 'exit after n datagrams')
    .option(
      '-w, --idle-timeout <duration>',
      'exit after this long without a datagram (500ms, 5s, 2m; bare number = seconds)',
    )
    .option('-4', 'IPv4 only (bind 0.0.0.0 by default)')
    .option('-6', 'IPv6 (bind :: by default)')
    .option('-q, --quiet', "don't print the 'Listening on' line")
    .option(
      '--rcvbuf <bytes>',
      'receive buffer to ask the kernel for (default 4M); a warning says when it grants less',
    )
    .option('--stats [interval]', 'print counters to stderr every interval (default 1s), and at exit')
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
  json    {"ts":"...","from":{"address","port","family"},"size":5,"text":"Hello","base64":"SGVsbG8="}`,
    )
    .action(async (host: string | undefined, port: string | undefined, flags: Record<string, unknown>) => {
      const positionals = [host, port].filter((a): a is string => a !== undefined);
      const opts = parseListenArgs(positionals, {
        ...(flags as ListenFlags),
        ipv4: flags['4'] === true,
        ipv6: flags['6'] === true,
      });
      setExit(await runListen(opts, io));
    });
}
