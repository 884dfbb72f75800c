/**
 * `udpkit proxy`: relay between clients and a target with netem's impairments, per direction,
 * seeded, with counters, a summary, and an event log.
 */
import { constants, openSync, readFileSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortError,
  AccessList,
  BatchWriter,
  createProxy,
  type DirectionStats,
  type Endpoint,
  formatEndpoint,
  type HostPort,
  InputError,
  PcapWriter,
  type ProxyEvent,
  parseCidr,
  parseHostPort,
  type Scenario,
  type UdpProxy,
} from '../../lib/index.js';
import { checkDottedQuad, parseCount, parseDuration, parseStatsFlags, UsageError, usage } from '../args.js';
import { Command } from '../commander.js';
import {
  directionFlags,
  directionImpairments,
  type ImpairmentFlags,
  parseScenarioFile,
} from '../impairments.js';
import { type CliIO, EXIT_OK, settleSignals } from '../io.js';
import { type Counters, formatCounters, startStats } from '../stats.js';
import { finishOutput, outputFileError } from '../stdout.js';

/** The flags commander hands over. */
interface ProxyFlags extends ImpairmentFlags {
  listen?: string;
  target?: string;
  up?: string;
  down?: string;
  scenario?: string;
  traceUp?: string;
  traceDown?: string;
  seed?: string;
  maxFlows?: string;
  flowIdleTimeout?: string;
  idleTimeout?: string;
  match?: string[];
  log?: string;
  pcap?: string;
  stats?: boolean;
  statsInterval?: string;
  quiet?: boolean;
}

/**
 * --listen or --target: `host:port`, `[v6]:port`, or a port (`:9000`, `9000`) on `defaultHost`.
 * Port 0 only where a free one can be picked (--listen).
 */
function endpoint(text: string | undefined, what: string, defaultHost: string): Required<HostPort> {
  if (text === undefined) throw new UsageError(`--${what} is required: host:port`);
  const hp = usage(() => parseHostPort(text.startsWith(':') ? text.slice(1) : text), `--${what}`);
  if (hp.port === undefined || (hp.port === 0 && what === 'target')) {
    throw new UsageError(
      `--${what} '${text}' needs a port of ${what === 'target' ? '1' : '0'}-65535 (127.0.0.1:9000, [::1]:9000, :9000)`,
    );
  }
  if (hp.host !== undefined) {
    try {
      checkDottedQuad(hp.host);
    } catch (err) {
      throw new UsageError(`--${what}: ${(err as Error).message}`);
    }
  }
  return { host: hp.host ?? defaultHost, port: hp.port };
}

/** Whether a target is the listening socket itself: the same port, and its address or one of this host's where it listens on all. */
function sameSocket(listen: Required<HostPort>, target: Required<HostPort>): boolean {
  if (listen.port !== target.port) return false;
  const wildcard = listen.host === '0.0.0.0' || listen.host === '::';
  return listen.host === target.host || (wildcard && /^(127\.|::1$|localhost$)/.test(target.host));
}

/** Runs `proxy` until Ctrl-C or --idle-timeout; resolves to the exit status. */
async function runProxy(flags: ProxyFlags, io: CliIO): Promise<number> {
  const listen = endpoint(flags.listen, 'listen', '0.0.0.0');
  const target = endpoint(flags.target, 'target', '127.0.0.1');
  if (sameSocket(listen, target)) {
    throw new UsageError(
      `--target ${formatEndpoint(target.host, target.port)} is where the proxy listens: it would relay to itself`,
    );
  }
  const both = (trace: string | undefined) => ({
    ...flags,
    ...(trace !== undefined && { linkTrace: trace }),
  });
  const up = directionImpairments(both(flags.traceUp), flags.up, 'up');
  const down = directionImpairments(both(flags.traceDown), flags.down, 'down');
  const scenario =
    flags.scenario === undefined
      ? undefined
      : readScenario(flags.scenario, {
          up: directionFlags(both(flags.traceUp), flags.up, 'up'),
          down: directionFlags(both(flags.traceDown), flags.down, 'down'),
        });
  const seed = flags.seed === undefined ? undefined : parseSeed(flags.seed);
  const maxFlows = flags.maxFlows === undefined ? undefined : parseCount(flags.maxFlows, 'max flows');
  const flowIdle =
    flags.flowIdleTimeout === undefined
      ? undefined
      : parseDuration(flags.flowIdleTimeout, 'flow idle timeout');
  const idle = flags.idleTimeout === undefined ? undefined : parseDuration(flags.idleTimeout, 'idle timeout');
  const match = parseMatch(flags.match);
  const stats = parseStatsFlags(flags);
  const log = flags.log === undefined ? undefined : await openLog(flags.log, '--log', io);
  const pcapOut = flags.pcap === undefined ? undefined : await openLog(flags.pcap, '--pcap', io);
  if (io.signal.aborted) {
    // Stopped while a named pipe waited for its reader: nothing was relayed, and it says so.
    io.stderr.write('udpkit proxy: stopped before it was proxying; relayed 0 datagrams\n');
    return EXIT_OK;
  }
  const pcap = pcapOut && new PcapWriter(pcapOut);
  let proxy: UdpProxy;
  try {
    proxy = await createProxy({
      listen: { address: listen.host, port: listen.port },
      target: { host: target.host, port: target.port },
      up,
      down,
      ...(scenario && { scenario }),
      ...(seed !== undefined && { seed }),
      ...(maxFlows !== undefined && { maxFlows }),
      ...(flowIdle !== undefined && { flowIdleTimeout: flowIdle }),
      ...(match && { match }),
      ...(log && { onEvent: (event: ProxyEvent) => writeEvent(log, event) }),
      ...(pcap && {
        onPacket: (at: number, from: Endpoint, to: Endpoint, data: Uint8Array) =>
          pcap.write(at, from, to, data),
      }),
      signal: io.signal,
    });
  } catch (err) {
    if (err instanceof AbortError && io.signal.aborted) return EXIT_OK;
    throw err;
  }
  const here = proxy.address();
  if (!flags.quiet) {
    io.stderr.write(
      `Proxying ${formatEndpoint(here.address, here.port)} -> ${formatEndpoint(proxy.target.address, proxy.target.port)} (seed ${proxy.seed})\n`,
    );
  }
  const counters = (): Counters => ({
    ...flat('up', proxy.stats('up')),
    ...flat('down', proxy.stats('down')),
    flows_open: proxy.flows,
    flows_opened: proxy.flowsOpened,
    log_dropped: log?.dropped,
    pcap_dropped: pcapOut?.dropped,
  });
  const stopStats =
    stats === undefined ? () => {} : startStats(io.stderr, 'udpkit proxy', stats, counters, 'up_received');
  const outputs = [
    { writer: log, option: '--log', file: flags.log },
    { writer: pcapOut, option: '--pcap', file: flags.pcap },
  ];
  const broken = () => outputs.find((o) => o.writer?.error !== undefined);
  // Until Ctrl-C, --idle-timeout without a datagram either way, or an output that cannot be
  // written (a full disk): a log with a hole in it is not the log asked for.
  await new Promise<void>((resolve) => {
    const done = () => {
      clearInterval(timer);
      resolve();
    };
    io.signal.addEventListener('abort', done, { once: true });
    const timer = setInterval(
      () => {
        if ((idle !== undefined && proxy.idleFor() >= idle) || broken()) done();
      },
      Math.min(100, idle ?? 100),
    );
  });
  await proxy.close();
  stopStats();
  // A reader that stalls is waited for, as listen waits for its stdout; after a signal, for a
  // second at most, and what is left is counted in log_dropped (pcap_dropped).
  if (log) await finishOutput(log, io.signal);
  if (pcapOut) await finishOutput(pcapOut, io.signal);
  // A file that could not take it all (a full disk): said, exit 1, after the summary.
  const failed = broken();
  await settleSignals();
  if (stats !== undefined) io.stderr.write(`udpkit proxy: ${formatCounters(counters())}\n`);
  else
    io.stderr.write(
      `udpkit proxy: ${summary('up', proxy.stats('up'))}; ${summary('down', proxy.stats('down'))}; flows opened ${proxy.flowsOpened} (seed ${proxy.seed})${outputDrops(log, pcapOut)}\n`,
    );
  if (failed) throw outputFileError(failed.option, failed.file as string, failed.writer?.error);
  return EXIT_OK;
}

/**
 * --match: address blocks (`10.0.0.0/8`) and source port ranges (`:5000-5010`, `:53`). A client
 * matches when its address is in one of the blocks (if any is given) and its port in one of
 * the ranges (if any is given).
 */
function parseMatch(values: string[] | undefined): ((client: Endpoint) => boolean) | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const ranges: [number, number][] = [];
  const blocks: string[] = [];
  for (const v of values) {
    const m = /^:(\d+)(?:-(\d+))?$/.exec(v.trim());
    if (!m) {
      blocks.push(v);
      continue;
    }
    const low = Number(m[1]);
    const high = m[2] === undefined ? low : Number(m[2]);
    if (!(low >= 1 && high <= 65535 && low <= high))
      throw new UsageError(`--match '${v}' is not a port range (:1-65535)`);
    ranges.push([low, high]);
  }
  for (const cidr of blocks) usage(() => parseCidr(cidr), '--match');
  const acl =
    blocks.length === 0
      ? undefined
      : new AccessList(blocks.map((cidr) => ({ action: 'allow' as const, cidr })));
  return (client) =>
    (acl === undefined || acl.allows(client.address)) &&
    (ranges.length === 0 || ranges.some(([low, high]) => client.port >= low && client.port <= high));
}

/** The scenario file, its phases on top of the command line's flags (`base`, per direction). */
function readScenario(file: string, base: Record<'up' | 'down', ImpairmentFlags>): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read --scenario ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return parseScenarioFile(text, file, base);
}

function parseSeed(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) > 2 ** 32 - 1)
    throw new UsageError(`seed '${text}' is not a whole number (0 to 4294967295)`);
  return Number(text);
}

/**
 * The most bytes of log (or pcap) held for a reader that does not keep up: past it, records are
 * dropped and counted (log_dropped, pcap_dropped). The proxy cannot pause its clients as listen
 * pauses reception, and a relay that stopped for its log would be a worse one: what it does is
 * the traffic's, its log the user's. listen's 8 MiB, so that a stalled reader of a flood's log
 * leaves the proxy under 100 MB.
 */
const LOG_HARD_LIMIT = 8 * 1024 * 1024;

/**
 * Opens --log or --pcap for writing. A named pipe waits for a reader, as a shell's `> fifo`
 * does, but says so on stderr and stops at a signal (the writer is then undefined); it is then
 * written without blocking, as listen writes a pipe on stdout: an open or a write blocked on a
 * pool thread would keep the process from ever exiting, even at Ctrl-C.
 */
async function openLog(file: string, option: string, io: CliIO): Promise<BatchWriter | undefined> {
  try {
    if (!isFifo(file)) return new BatchWriter(openSync(file, 'w'), { hardLimit: LOG_HARD_LIMIT });
    io.stderr.write(`udpkit proxy: ${option} ${file} is a named pipe: waiting for a reader to open it\n`);
    for (;;) {
      try {
        const fd = openSync(file, constants.O_WRONLY | constants.O_NONBLOCK);
        return new BatchWriter(new Socket({ fd, readable: false, writable: true }), {
          hardLimit: LOG_HARD_LIMIT,
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err; // ENXIO: no reader yet
      }
      await sleep(50, undefined, { signal: io.signal }).catch(() => {});
      if (io.signal.aborted) return undefined;
    }
  } catch (err) {
    throw outputFileError(option, file, err);
  }
}

/** Whether `file` exists and is a named pipe. */
function isFifo(file: string): boolean {
  try {
    return statSync(file).isFIFO();
  } catch {
    return false;
  }
}

function writeEvent(log: BatchWriter, event: ProxyEvent): void {
  const line = `${JSON.stringify(event)}\n`;
  const buf = log.room(line.length);
  log.used += buf.write(line, log.used, 'latin1');
  log.commit();
}

/** `; log lines dropped 120 (its reader did not keep up)`, or nothing when none was. */
function outputDrops(log: BatchWriter | undefined, pcap: BatchWriter | undefined): string {
  const parts = [
    (log?.dropped ?? 0) > 0 && `log lines dropped ${log?.dropped}`,
    (pcap?.dropped ?? 0) > 0 && `pcap records dropped ${pcap?.dropped}`,
  ].filter(Boolean);
  return parts.length === 0
    ? ''
    : `; ${parts.join(', ')} (not written: the reader did not keep up, or the file failed)`;
}

function flat(prefix: string, s: DirectionStats): Counters {
  return {
    [`${prefix}_received`]: s.received,
    [`${prefix}_forwarded`]: s.forwarded,
    [`${prefix}_pending`]: s.pending,
    ...Object.fromEntries(Object.entries(s.dropped).map(([k, v]) => [`${prefix}_drop_${k}`, v])),
    [`${prefix}_duplicated`]: s.duplicated,
    [`${prefix}_reordered`]: s.reordered,
    [`${prefix}_corrupted`]: s.corrupted,
    [`${prefix}_truncated`]: s.truncated,
    [`${prefix}_delayed`]: s.delayed,
    [`${prefix}_delay_mean_ms`]: s.delay.mean,
    [`${prefix}_delay_p99_ms`]: s.delay.p99,
    [`${prefix}_send_errors`]: s.sendErrors,
    [`${prefix}_abandoned`]: s.abandoned,
    [`${prefix}_drops_kernel`]: s.kernelDrops,
  };
}

/** `up: received 100, forwarded 95, dropped 5 (loss 5), delayed 95 (mean 20.0 ms, p99 20.1 ms)` */
function summary(which: string, s: DirectionStats): string {
  const parts = [`received ${s.received}`, `forwarded ${s.forwarded}`];
  const drops = Object.entries(s.dropped).filter(([, v]) => v > 0);
  const dropped = drops.reduce((a, [, v]) => a + v, 0);
  if (dropped > 0) parts.push(`dropped ${dropped} (${drops.map(([k, v]) => `${k} ${v}`).join(', ')})`);
  for (const [word, v] of [
    ['duplicated', s.duplicated],
    ['reordered', s.reordered],
    ['corrupted', s.corrupted],
    ['truncated', s.truncated],
    ['send errors', s.sendErrors],
    ['abandoned at exit', s.abandoned],
  ] as const) {
    if (v > 0) parts.push(`${word} ${v}`);
  }
  if (s.delayed > 0)
    parts.push(`delayed ${s.delayed} (mean ${s.delay.mean.toFixed(1)} ms, p99 ${s.delay.p99.toFixed(1)} ms)`);
  if (s.kernelDrops > 0) parts.push(`and the kernel dropped ${s.kernelDrops} before they could be read`);
  return `${which}: ${parts.join(', ')}`;
}

/** The `proxy` subcommand. */
export function proxyCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('proxy')
    .summary('relay UDP between clients and a target, with loss, delay and more (netem without root)')
    .description(
      `Listen where clients send (--listen), relay each datagram to --target from a
socket of the client's own (so replies find their way back), and impair what
passes, each direction (up: client to target, down: back) as tc-netem would:
loss (random, Markov, Gilbert-Elliott, or a mean and a burst length), delay
with jitter from a distribution, duplication, reordering, corruption,
truncation, a rate with its queue, an MTU. The flags apply both ways;
--up and --down take netem's words for one direction. The same --seed and the
same traffic give the same decisions. Ctrl-C prints what became of every
datagram.`,
    )
    .option('--listen <host:port>', 'where clients send (required)')
    .option('--target <host:port>', 'where datagrams go (required)')
    .option(
      '--loss <spec>',
      "lose P% (5%), or 'state p13 [p31 [p32 [p23 [p14]]]]', or 'gemodel p [r [1-h [1-k]]]'",
    )
    .option('--burst <n>', 'with --loss P: losses come in bursts of n on average (Gilbert-Elliott)')
    .option('--delay <time>', 'hold each datagram this long (50ms, 1s, 200us)')
    .option('--jitter <time>', 'vary the delay by this much (uniform: delay ± jitter)')
    .option('--distribution <name>', "the jitter's distribution: uniform, normal, pareto, paretonormal")
    .option('--distribution-file <file>', "the jitter's distribution from a netem .dist table")
    .option('--no-reorder-by-jitter', 'keep arrival order whatever the jitter')
    .option('--duplicate <percent>', 'send this share twice')
    .option(
      '--reorder <percent>',
      "netem's reorder: send this share at once, ahead of delayed ones (needs --delay)",
    )
    .option('--gap <n>', 'with --reorder: only after n-1 delayed datagrams (netem gap)')
    .option('--corrupt <percent>', 'flip one random bit in this share')
    .option('--truncate <percent>', 'cut this share to a random shorter length')
    .option('--rate <rate>', 'link rate: 1mbit, 100kbit, 10gbit (bits), 125kbps (bytes)')
    .option(
      '--packet-overhead <bytes>',
      'bytes counted per datagram besides the payload, for --rate and slot bytes (default 28: IPv4 + UDP; 42 for Ethernet frames)',
    )
    .option('--queue-limit <n>', 'datagrams held at most per direction (default 1000); more are dropped')
    .option('--mtu <bytes>', 'drop datagrams whose IP packet (payload + 28) is larger than this')
    .option(
      '--slot <spec>',
      "netem's slot: 'MIN [MAX] [packets N] [bytes B]' or 'distribution NAME DELAY JITTER ...' (Wi-Fi, LTE aggregation)",
    )
    .option(
      '--trace-up <file>',
      "the up link's delivery opportunities, from a Mahimahi mm-link trace (instead of --rate)",
    )
    .option('--trace-down <file>', "the down link's, likewise")
    .option('--path-trace <file>', "a measured path: 'time delay loss' per line (ms, ms, 2%)")
    .option('--up <spec>', "client to target only, in netem's words: 'delay 50ms 10ms loss 2% burst 4'")
    .option('--down <spec>', 'target to client only, likewise')
    .option(
      '--scenario <file>',
      'impairments that change over time: JSON phases (see docs/proxy.md), over the flags',
    )
    .option(
      '--match <cidr-or-ports>',
      'impair only clients from this block (10.0.0.0/8) or source ports (:5000-5010); others pass clean (repeatable)',
      (c: string, all: string[] = []) => [...all, c],
    )
    .option('--seed <n>', 'seed of every decision (default: random, printed)')
    .option('--max-flows <n>', 'clients at most (default 1024); a new one past it is dropped and counted')
    .option('--flow-idle-timeout <duration>', 'forget a client silent this long (default 60s)')
    .option(
      '-w, --idle-timeout <duration>',
      'exit after this long with no datagram either way (and none held)',
    )
    .option('--log <file>', 'one JSON line per decision: t, flow, dir, i, action, cause, delay')
    .option(
      '--pcap <file>',
      'write what passes, both legs both ways, as a pcap (Wireshark, tshark, tcpdump -r)',
    )
    .option('--stats', 'print the counters to stderr every second, and at exit')
    .option('--stats-interval <duration>', 'print them this often; implies --stats')
    .option('-q, --quiet', "don't print the 'Proxying' line")
    .addHelpText(
      'after',
      `
Examples:
  udpkit proxy --listen 127.0.0.1:9000 --target 127.0.0.1:9001 --loss 2% --burst 4
  udpkit proxy --listen :9000 --target 10.0.0.5:53 --delay 300ms --jitter 30ms --distribution normal
  udpkit proxy --listen 127.0.0.1:9000 --target 127.0.0.1:9001 --up 'delay 20ms' --down 'loss 10%' --seed 7`,
    )
    .action(async (flags: ProxyFlags) => {
      setExit(await runProxy(flags, io));
    });
}
