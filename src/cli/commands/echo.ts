/**
 * `udpkit echo`: listen, and answer each datagram with its own payload, never larger than the
 * request, at most --rate-limit answers a second per source address.
 */
import { SourceRateLimiter } from '../../lib/index.js';
import { parseCount, UsageError } from '../args.js';
import type { Command } from '../commander.js';
import type { CliIO } from '../io.js';
import type { ReceiverHooks } from '../receiver.js';
import { DEFAULT_LISTEN_PORT, type ListenOptions, receiverCommand, runReceiver } from './listen.js';

/** What `echo` adds to listen's options. */
export interface EchoOptions {
  /** Answers per second per source address; undefined for no limit. */
  rateLimit: number | undefined;
  /** The most sources the rate limiter remembers. */
  maxSources: number;
}

/** The default of --max-sources. */
export const DEFAULT_MAX_SOURCES = 4096;

/**
 * Parses echo's own flags. Pure.
 *
 * @throws {UsageError} naming the bad value
 */
export function parseEchoFlags(flags: { rateLimit?: string; maxSources?: string }): EchoOptions {
  const rateLimit = flags.rateLimit === undefined ? undefined : parseCount(flags.rateLimit, 'rate limit');
  if (flags.maxSources !== undefined && rateLimit === undefined) {
    throw new UsageError('--max-sources bounds the --rate-limit table: give --rate-limit too');
  }
  const maxSources =
    flags.maxSources === undefined ? DEFAULT_MAX_SOURCES : parseCount(flags.maxSources, 'max sources');
  return { rateLimit, maxSources };
}

/** Runs `echo`; resolves to the exit status. */
export function runEcho(opts: ListenOptions, echo: EchoOptions, io: CliIO): Promise<number> {
  if (echo.rateLimit !== undefined && echo.rateLimit < opts.workers) {
    throw new UsageError(
      `--rate-limit ${echo.rateLimit} is shared by --workers ${opts.workers}: give at least one answer a second per worker`,
    );
  }
  return runReceiver(opts, io, echoHooks(echo, io, opts.workers));
}

/**
 * What echo adds to listen's loop. With `workers` threads, each answers a source at most
 * `rateLimit / workers` times a second: its datagrams may reach any of them (one sender port
 * to one worker, another port perhaps to another), and together they never exceed the limit.
 */
export function echoHooks(echo: EchoOptions, io: CliIO, workers: number): ReceiverHooks {
  const limiter =
    echo.rateLimit === undefined
      ? undefined
      : new SourceRateLimiter({ rate: echo.rateLimit / workers, maxSources: echo.maxSources });
  const ignore = () => {};
  return {
    verb: 'echo',
    metadata: true,
    spec: echo,
    onStart(socket) {
      const { address } = socket.address();
      if (!socket.metadata && (address === '0.0.0.0' || address === '::')) {
        io.stderr.write(
          `udpkit echo: on node:dgram a reply leaves from the address the routing table picks, which on a host with several may not be the one its request was sent to (answering from that one needs the native transport)\n`,
        );
      }
    },
    onDatagram(msg, socket) {
      if (limiter && !limiter.take(msg.from.address)) return;
      // The same bytes back: a reply is never larger than its request. They are lent by the
      // receive buffer; a reply that must wait for room takes its own copy. One the kernel
      // refuses is counted in the socket's sendErrors (reply_errors).
      try {
        if (!socket.tryReply(msg, msg.data)) socket.reply(msg, msg.data).catch(ignore);
      } catch {
        // Refused by the kernel at once: counted the same way.
      }
    },
    counters: (socket) => ({
      answered: socket.packetsSent,
      rate_limited: limiter?.limited,
      sources: limiter?.sources,
      sources_full: limiter?.refusedNew,
      reply_errors: socket.sendErrors,
    }),
    summary(c) {
      const parts = [`answered ${c.answered}`];
      if (c.rate_limited !== undefined) {
        const full = c.sources_full ?? 0;
        parts.push(
          `rate-limited ${c.rate_limited}${full > 0 ? ` (${full} of them new sources while --max-sources were all within their limit)` : ''}`,
        );
      }
      if ((c.reply_errors ?? 0) > 0) parts.push(`reply errors ${c.reply_errors}`);
      return parts.join(', ');
    },
  };
}

/** The `echo` subcommand. */
export function echoCommand(io: CliIO, setExit: (code: number) => void): Command {
  return receiverCommand('echo', async (opts, flags) => {
    setExit(await runEcho(opts, parseEchoFlags(flags as { rateLimit?: string; maxSources?: string }), io));
  })
    .summary('answer each datagram with its own payload (a UDP echo server)')
    .description(
      `Bind a local address (default 0.0.0.0:${DEFAULT_LISTEN_PORT}), send each datagram back to
its sender, and log it as listen does, until Ctrl-C, --count datagrams or
--idle-timeout of silence. A reply leaves from the address its request was
sent to, so a server bound to 0.0.0.0 on a host with several addresses answers
as its clients expect (native transport; node:dgram lets the routing table
pick, and says so at start). A reply is never larger than its request;
--rate-limit bounds the answers per source address, so the server cannot be
used to flood someone else (a reflector). The exit summary adds answered,
rate-limited and reply errors.`,
    )
    .option('--rate-limit <n>', 'answer at most n datagrams a second per source address (bursts up to n)')
    .option(
      '--max-sources <n>',
      `sources the rate limiter remembers (default ${DEFAULT_MAX_SOURCES}); while all still count against their limit, a new one is not answered`,
    )
    .addHelpText(
      'after',
      `
Examples:
  udpkit echo 127.0.0.1 9000                      answer everyone, log each datagram
  udpkit echo 9000 --rate-limit 50 > /dev/null    at most 50 answers/s per source, no log
  udpkit echo 9000 --allow 10.0.0.0/8             answer only that block (others denied, counted)`,
    );
}
