/**
 * `udpkit bench server` and `udpkit bench client`: UDP measurement with in-band control, in
 * throughput (either way) and pingpong modes, with interval lines, a summary for both ends and
 * a JSON document.
 */

import { writeFileSync } from 'node:fs';
import type { BenchProgress, LiveInterval } from '../../lib/bench/client.js';
import { benchParams, runBench } from '../../lib/bench/client.js';
import { type ServerEvent, startBenchServer } from '../../lib/bench/server.js';
import { checkSizes, IMIX, type SizeDistribution } from '../../lib/bench/sizes.js';
import { AbortError, formatEndpoint } from '../../lib/index.js';
import { parseCount, parseDuration, parseListenPositionals, parseRate, UsageError, usage } from '../args.js';
import { svgChart, terminalChart } from '../bench-chart.js';
import {
  formatBits,
  formatSeconds,
  intervalLine,
  jsonDocument,
  jsonInterval,
  summaryLines,
} from '../bench-report.js';
import { Command } from '../commander.js';
import { type CliIO, EXIT_FAILURE, EXIT_OK } from '../io.js';
import { outputFailure, outputFileError } from '../stdout.js';
import { runBenchWorkers } from '../workers/bench.js';
import { parseWorkers } from './listen.js';

/** The port both ends use unless told otherwise. */
export const DEFAULT_BENCH_PORT = 12345;

interface ClientFlags {
  mode?: string;
  rate?: string;
  bitrate?: string;
  size?: string;
  duration?: string;
  count?: string;
  reverse?: boolean;
  omit?: string;
  interval?: string;
  grace?: string;
  connectTimeout?: string;
  json?: boolean;
  jsonStream?: boolean;
  svg?: string;
  chart?: boolean;
  sizeDist?: string;
  isochronous?: string;
}

const BITRATE = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/;

/** `100M`, `1.5G`, `800k`: bits per second. */
function parseBitrate(text: string): number {
  const m = BITRATE.exec(text.trim());
  const unit = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[(m?.[2] ?? '').toLowerCase()] as number;
  const bits = m ? Number(m[1]) * unit : Number.NaN;
  if (!(bits >= 1))
    throw new UsageError(`bitrate '${text}' is not a number of bits per second (e.g. 100M, 1.5G, 800k)`);
  return bits;
}

/** The mean size of a distribution: what a bitrate divides by. */
function meanSize(d: SizeDistribution): number {
  if ('uniform' in d) return (d.uniform[0] + d.uniform[1]) / 2;
  const total = d.weighted.reduce((a, [, w]) => a + w, 0);
  return d.weighted.reduce((a, [s, w]) => a + s * w, 0) / total;
}

function isTty(stream: unknown): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/**
 * A status line on stderr, redrawn four times a second while the run goes: a bar, the time or
 * count so far, and the rate. Returns what clears it.
 */
function startStatus(
  io: CliIO,
  options: ReturnType<typeof parseClientFlags>,
  progress: BenchProgress,
): () => void {
  let lastSent = 0;
  let lastAt = performance.now();
  let rate = 0;
  const draw = () => {
    if (progress.startedMs === 0) return;
    const now = performance.now();
    const moved = options.reverse ? progress.received : progress.sent;
    rate = ((moved - lastSent) * 1000) / Math.max(1, now - lastAt);
    lastSent = moved;
    lastAt = now;
    const elapsed = Math.max(0, (performance.timeOrigin + now - progress.startedMs) / 1000);
    const fraction =
      options.count !== undefined ? moved / options.count : elapsed / ((options.durationMs as number) / 1000);
    const width = 20;
    if (fraction >= 1) {
      // Sent: the receiver waits out the grace period for stragglers before it reports.
      io.stderr.write(
        `\r\x1b[K[${'#'.repeat(width)}] ${options.reverse ? 'sent; waiting for stragglers' : "sent; waiting for the receiver's report"}`,
      );
      return;
    }
    const done = Math.max(0, Math.min(width, Math.round(fraction * width)));
    const where =
      options.count !== undefined
        ? `${moved}/${options.count}`
        : `${elapsed.toFixed(1)}/${((options.durationMs as number) / 1000).toFixed(1)} s`;
    io.stderr.write(
      `\r\x1b[K[${'#'.repeat(done)}${'-'.repeat(width - done)}] ${where}  ${options.reverse ? 'received' : 'sent'} ${moved}  ${formatBits(rate * options.size * 8)}`,
    );
  };
  const timer = setInterval(draw, 250);
  return () => {
    clearInterval(timer);
    io.stderr.write('\r\x1b[K');
  };
}

/**
 * --size-dist: `imix`, `uniform:MIN-MAX`, or sizes with weights `64*7,548*4,1472` (a weight of
 * 1 where none is given).
 */
export function parseSizeDist(text: string): SizeDistribution {
  const t = text.trim();
  if (t === 'imix') return IMIX;
  const u = /^uniform:(\d+)-(\d+)$/.exec(t);
  const d: SizeDistribution = u
    ? { uniform: [Number(u[1]), Number(u[2])] }
    : {
        weighted: t.split(',').map((part) => {
          const m = /^(\d+)(?:\*(\d+(?:\.\d+)?))?$/.exec(part.trim());
          if (!m)
            throw new UsageError(
              `size distribution '${text}' is not imix, uniform:MIN-MAX or SIZE[*WEIGHT],...`,
            );
          return [Number(m[1]), m[2] === undefined ? 1 : Number(m[2])] as [number, number];
        }),
      };
  usage(() => checkSizes(d), 'size distribution');
  return d;
}

/** Parses and checks the client's flags into runBench's options. */
export function parseClientFlags(flags: ClientFlags) {
  const mode = flags.mode ?? 'throughput';
  if (mode !== 'throughput' && mode !== 'pingpong')
    throw new UsageError(`mode '${mode}' is not throughput or pingpong`);
  if (flags.size !== undefined && flags.sizeDist !== undefined)
    throw new UsageError('--size and --size-dist: give one');
  const sizeDist = flags.sizeDist === undefined ? undefined : parseSizeDist(flags.sizeDist);
  const size =
    sizeDist !== undefined
      ? checkSizes(sizeDist)
      : flags.size === undefined
        ? mode === 'pingpong'
          ? 64
          : 1400
        : parseCount(flags.size, 'size');
  if (size < 32 || size > 65507)
    throw new UsageError(`size ${size} is not 32-65507 bytes (the bench's header takes 32)`);
  if (flags.rate !== undefined && flags.bitrate !== undefined)
    throw new UsageError('--rate and --bitrate: give one');
  let rate = 0;
  if (flags.rate !== undefined) rate = flags.rate.trim() === '0' ? 0 : parseRate(flags.rate);
  if (flags.bitrate !== undefined)
    rate = parseBitrate(flags.bitrate) / (8 * (sizeDist ? meanSize(sizeDist) : size));
  if (mode === 'pingpong' && flags.reverse)
    throw new UsageError('pingpong goes both ways: --reverse does not apply');
  if (flags.count !== undefined && flags.duration !== undefined)
    throw new UsageError('-n and -t: give one (how many datagrams, or how long)');
  const count = flags.count === undefined ? undefined : parseCount(flags.count, 'count');
  const durationMs =
    flags.duration === undefined
      ? count === undefined
        ? 10_000
        : undefined
      : parseDuration(flags.duration, 'duration');
  let isochronous: { fps: number; bytes: number } | undefined;
  if (flags.isochronous !== undefined) {
    const m = /^(\d+(?:\.\d+)?):(\d+)$/.exec(flags.isochronous.trim());
    if (!m)
      throw new UsageError(
        `isochronous '${flags.isochronous}' is not FPS:BYTES (frames a second, bytes a frame: 50:1200)`,
      );
    if (flags.rate !== undefined || flags.bitrate !== undefined || sizeDist !== undefined)
      throw new UsageError('--isochronous sets the rate and the sizes: no --rate, --bitrate or --size-dist');
    if (mode !== 'throughput') throw new UsageError('--isochronous is a throughput run');
    isochronous = { fps: Number(m[1]), bytes: Number(m[2]) };
    if (!(isochronous.fps > 0 && isochronous.fps <= 100_000))
      throw new UsageError(`${m[1]} frames a second is not 1-100000`);
    const largest = flags.size === undefined ? 1400 : size;
    if (!(isochronous.bytes >= 40 && isochronous.bytes <= 64 * largest))
      throw new UsageError(
        `a frame of ${isochronous.bytes} bytes is not 40 to ${64 * largest} (64 datagrams of ${largest})`,
      );
  }
  const options = {
    mode: mode as 'throughput' | 'pingpong',
    size: isochronous && flags.size === undefined ? Math.min(1400, Math.max(40, isochronous.bytes)) : size,
    ...(isochronous && { isochronous }),
    ...(sizeDist && { sizeDist }),
    rate: isochronous ? isochronous.fps : rate,
    count,
    durationMs,
    reverse: flags.reverse === true,
    omitMs: flags.omit === undefined ? 0 : parseDuration(flags.omit, 'omit'),
    intervalMs: flags.interval === undefined ? 1000 : parseDuration(flags.interval, 'interval'),
    graceMs: flags.grace === undefined ? 1000 : parseDuration(flags.grace, 'grace'),
    connectTimeoutMs:
      flags.connectTimeout === undefined ? 5000 : parseDuration(flags.connectTimeout, 'connect timeout'),
  };
  // What no server would run is a usage error here, before anything is sent.
  usage(() => benchParams(options));
  return options;
}

async function runClient(args: string[], flags: ClientFlags, io: CliIO): Promise<number> {
  const target = parseListenPositionals(args);
  if (target.host === undefined) throw new UsageError('bench client needs the server: host [port]');
  const options = parseClientFlags(flags);
  if (flags.json && flags.jsonStream) throw new UsageError('--json and --json-stream: give one');
  const port = target.port ?? DEFAULT_BENCH_PORT;
  if (port === 0) throw new UsageError('port 0 is not a valid destination (1-65535)');
  // The chart's file is made now: one that cannot be written fails before the run, not after.
  if (flags.svg !== undefined) {
    try {
      writeFileSync(flags.svg, '');
    } catch (err) {
      throw outputFileError('--svg', flags.svg, err);
    }
  }
  const out = (line: string) => io.stdout.write(`${line}\n`);
  // A reader gone (`| head -1`) ends the run as Ctrl-C does, quietly: nobody is left to read
  // its report. Another output error ends it too, and is said.
  let outputError: Error | undefined;
  const readerGone = new AbortController();
  io.stdout.on('error', (err: Error) => {
    outputError ??= err;
    readerGone.abort();
  });
  const signal = AbortSignal.any([io.signal, readerGone.signal]);
  if (!flags.json && !flags.jsonStream) {
    const iso = options.isochronous;
    const rate = options.rate === 0 ? 'full speed' : `${Math.round(options.rate)}/s`;
    const what =
      options.mode === 'pingpong'
        ? `pingpong, ${options.size} B, ${options.rate === 0 ? 'one in flight' : rate}`
        : iso
          ? `isochronous, ${iso.fps} frames/s of ${iso.bytes} B`
          : `throughput${options.reverse ? ' (reversed: the server sends)' : ''}, ${flags.sizeDist === undefined ? `${options.size} B` : `sizes ${flags.sizeDist}`} at ${rate}`;
    const until =
      options.count !== undefined
        ? `${options.count} ${iso ? 'frames' : 'datagrams'}`
        : `${(options.durationMs as number) / 1000} s`;
    out(`Benchmarking ${formatEndpoint(target.host, port)}: ${what}, ${until}`);
  }
  let result: Awaited<ReturnType<typeof runBench>>;
  const progress: BenchProgress = { sent: 0, received: 0, startedMs: 0 };
  const status =
    isTty(io.stderr) && !flags.json && !flags.jsonStream ? startStatus(io, options, progress) : undefined;
  // Each interval as it ends: this end's sending, or (reversed) what it received.
  const onInterval = (e: LiveInterval) => {
    if (flags.json) return;
    if (flags.jsonStream) {
      out(
        JSON.stringify(
          e.side === 'sender'
            ? {
                type: 'interval',
                side: 'sender',
                start: e.start,
                end: e.end,
                sent: e.sent,
                bytes: e.bytes,
                bits_per_second: Math.round((e.bytes * 8) / (e.end - e.start)),
              }
            : { type: 'interval', side: 'receiver', ...jsonInterval(e.interval) },
        ),
      );
      return;
    }
    if (status) io.stderr.write('\r\x1b[K');
    if (e.side === 'sender')
      out(
        `  ${formatSeconds(e.start)}-${formatSeconds(e.end)} s  sent ${e.sent}  offered ${formatBits((e.bytes * 8) / (e.end - e.start))}`,
      );
    else out(`  ${intervalLine(jsonInterval(e.interval))}`);
  };
  try {
    result = await runBench({ host: target.host, port, ...options, signal, progress, onInterval });
  } catch (err) {
    if (outputError !== undefined) return endedByOutput(outputError);
    // Ctrl-C before the end: nothing to report.
    if (err instanceof AbortError) return EXIT_FAILURE;
    throw err;
  } finally {
    status?.();
  }
  if (outputError !== undefined) return endedByOutput(outputError);
  if (result.stopped)
    io.stderr.write('udpkit bench client: stopped early: the report covers what was sent until then\n');
  const doc = jsonDocument(result);
  if (flags.jsonStream) {
    out(JSON.stringify({ type: 'end', ...doc }));
  } else if (flags.json) out(JSON.stringify(doc, null, 2));
  else {
    out(`Receiver's report (${options.reverse ? 'this end' : 'the server'}):`);
    for (const i of doc.intervals) out(`  ${intervalLine(i)}`);
    for (const line of summaryLines(doc)) out(line);
    if (flags.chart || isTty(io.stdout)) for (const line of terminalChart(doc)) out(line);
  }
  // What was written reaches a pipe before the process exits (a document is often past 64 KB).
  await new Promise<void>((resolve) => io.stdout.write('', () => resolve()));
  if (flags.svg !== undefined) {
    try {
      writeFileSync(flags.svg, svgChart(doc));
    } catch (err) {
      throw outputFileError('--svg', flags.svg, err);
    }
  }
  return EXIT_OK;
}

/** The end of a client whose output failed: quiet for a reader gone, one line for the rest. */
function endedByOutput(err: Error): number {
  const failure = outputFailure(err);
  if (failure) throw failure;
  return EXIT_OK;
}

/** What bench server prints for one event: a line for people, or one JSON object. */
export function serverEventLine(e: ServerEvent, json: boolean): string | undefined {
  const id = e.session.toString(16).padStart(12, '0');
  if (json) {
    return JSON.stringify(
      e.type === 'interval'
        ? { type: e.type, session: id, ...jsonInterval(e.interval) }
        : { ...e, session: id },
    );
  }
  if (e.type === 'session') {
    return `[${id}] ${formatEndpoint(e.client.address, e.client.port)}: ${e.params.mode}${e.params.reverse ? ', reversed' : ''}, ${e.params.size} B`;
  }
  if (e.type === 'interval') return `[${id}] ${intervalLine(jsonInterval(e.interval))}`;
  if (e.type === 'report') {
    const f = e.report.figures;
    return `[${id}] done: received ${f.received - f.duplicates} of ${f.sent}, lost ${f.lost}, duplicates ${f.duplicates}, reordered ${f.reordered}, jitter ${f.jitterMs} ms${e.sender ? `, ${formatBits((f.bytes * 8 * 1000) / Math.max(1, e.sender.endMs - e.sender.startMs))}` : ''}`;
  }
  if (e.type === 'sent') return `[${id}] sent ${e.sender.end - e.sender.first} (reversed)`;
  return undefined;
}

/** bench server's own options. */
export interface ServerFlags {
  json?: boolean;
  quiet?: boolean;
  /** --workers, parsed: 1 for none. */
  workers: number;
}

async function runServer(args: string[], flags: ServerFlags, io: CliIO): Promise<number> {
  const where = parseListenPositionals(args);
  if (flags.workers > 1) {
    return runBenchWorkers(
      { host: where.host ?? '0.0.0.0', port: where.port ?? DEFAULT_BENCH_PORT },
      flags,
      io,
    );
  }
  const server = await startBenchServer({
    address: where.host ?? '0.0.0.0',
    port: where.port ?? DEFAULT_BENCH_PORT,
    signal: io.signal,
    onEvent: (e) => {
      const line = serverEventLine(e, flags.json === true);
      if (line !== undefined) io.stdout.write(`${line}\n`);
    },
  });
  const here = server.address();
  if (!flags.quiet) io.stderr.write(`Bench server on ${formatEndpoint(here.address, here.port)}\n`);
  // Until Ctrl-C, or until stdout fails: a reader gone (`| head -1`) ends it quietly.
  let outputError: Error | undefined;
  await new Promise<void>((resolve) => {
    io.signal.addEventListener('abort', () => resolve(), { once: true });
    io.stdout.once('error', (err: Error) => {
      outputError = err;
      resolve();
    });
  });
  await server.close();
  io.stderr.write(`udpkit bench server: foreign ${server.foreign}, garbled ${server.garbled}\n`);
  const failure = outputFailure(outputError);
  if (failure) throw failure;
  return EXIT_OK;
}

/** The `bench` command: `server` and `client`. */
export function benchCommand(io: CliIO, setExit: (code: number) => void): Command {
  const bench = new Command('bench')
    .summary('measure a UDP path: throughput, loss, reorder, jitter, delay, round trips')
    // Without its own word: one line, as any other incomplete command line gets.
    .allowExcessArguments()
    .action((_flags: unknown, cmd: Command) => {
      const [word] = cmd.args;
      throw new UsageError(
        word === undefined
          ? 'which one: bench server or bench client'
          : `unknown command '${word}': server or client`,
      );
    });
  bench
    .command('server')
    .summary('answer bench clients')
    .argument('[host]', 'local address to bind (default 0.0.0.0)')
    .argument('[port]', `local port (default ${DEFAULT_BENCH_PORT})`)
    .option('--json', 'one JSON line per event (session, interval, report)')
    .option('-q, --quiet', "don't print the 'Bench server on' line")
    .option(
      '--workers <n>',
      "serve in n threads, each with its own socket on the same port (SO_REUSEPORT; 'auto': one per core); a client's session stays on one (native transport)",
    )
    .action(
      async (
        host: string | undefined,
        port: string | undefined,
        flags: { json?: boolean; quiet?: boolean; workers?: string },
      ) => {
        setExit(
          await runServer(
            [host, port].filter((a): a is string => a !== undefined),
            { ...flags, workers: parseWorkers(flags.workers) },
            io,
          ),
        );
      },
    );
  bench
    .command('client')
    .summary('measure the path to a bench server')
    .argument('<host>', 'the server')
    .argument('[port]', `its port (default ${DEFAULT_BENCH_PORT})`)
    .option('--mode <mode>', 'throughput (one way) or pingpong (round trips)', 'throughput')
    .option('--rate <n>', 'datagrams per second (50k, 1M); 0 is as fast as possible (default)')
    .option('--bitrate <bits>', 'bits per second of payload (100M, 1.5G), instead of --rate')
    .option('--size <bytes>', 'bytes per datagram, 32-65507 (default 1400; pingpong 64)')
    .option(
      '--isochronous <fps:bytes>',
      'frames a second and bytes a frame (50:1200), as VoIP and games send; reports frames late and missed',
    )
    .option(
      '--size-dist <dist>',
      "sizes drawn per datagram: 'imix', 'uniform:64-1400', or '64*7,548*4,1472' (size*weight)",
    )
    .option('-t, --duration <time>', 'how long to send (default 10s)')
    .option('-n, --count <n>', 'how many datagrams to send, instead of a duration')
    .option('-R, --reverse', 'the server sends, this end receives')
    .option('--omit <time>', 'send this long first and leave it out of the figures (at most 1h)')
    .option('-i, --interval <time>', 'report interval, at least 10ms (default 1s)')
    .option('--grace <time>', 'wait this long after the last datagram before counting losses (default 1s)')
    .option('--connect-timeout <time>', 'give up when no server answers within this (default 5s)')
    .option('--json', 'one JSON document at the end (docs/bench.md)')
    .option('--json-stream', 'one JSON object per interval, then the end document')
    .option('--svg <file>', 'write a chart of throughput and loss over time as SVG')
    .option('--chart', 'print the chart of throughput and loss in text even when stdout is not a terminal')
    .action(async (host: string, port: string | undefined, flags: ClientFlags) => {
      setExit(await runClient([host, ...(port === undefined ? [] : [port])], flags, io));
    });
  return bench;
}
