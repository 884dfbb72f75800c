/**
 * `runBench`: the client end of a bench run. It says hello (parameters included) until the
 * server answers, starts the run, sends the measured stream (or receives it, reversed; or
 * times its echoes, pingpong), tells what it sent, and takes the receiver's report: every
 * step retried, so that a run gets through a lossy path, and a clear error when no one answers.
 */
import { throwIfAborted } from '../abort.js';
import { type Endpoint, formatEndpoint, type LookupFunction, resolveHost } from '../address.js';
import {
  AbortError,
  ConnectionRefusedError,
  InvalidArgumentError,
  SocketError,
  TimeoutError,
} from '../errors.js';
import { seededRandom } from '../impair/random.js';
import { openUdpSocket, type UdpSocket } from '../socket.js';
import type { TransportKind } from '../transport.js';
import { RealtimeClock } from './clock.js';
import { ask, CONTROL_TYPES, type ControlMessage, Mailbox, Reassembler } from './control.js';
import { FRAME_HEADER, framePieces } from './frames.js';
import { type IntervalFigures, latencyHistogram } from './receiver.js';
import { type SendReport, sendStream } from './sender.js';
import { SequenceSet } from './sequence.js';
import { type BenchParams, clockId, PROTOCOL_VERSION, paramsProblem, sentProblem } from './session.js';
import { checkSizes, sizePicker } from './sizes.js';
import { type ReceiverReport, StreamReceiver } from './stream.js';
import { DATA_HEADER, decode, encodeControlDatagrams, Kind } from './wire.js';

export interface BenchClientOptions extends Partial<Omit<BenchParams, 'size'>> {
  host: string;
  port: number;
  size?: number;
  /** How long to keep saying hello before giving up (default 5 s). */
  connectTimeoutMs?: number;
  transport?: TransportKind | 'auto';
  lookup?: LookupFunction;
  /**
   * Before the stream starts, aborts the run (`AbortError`, and the server is told); once it
   * has, stops the stream early, and the run ends as usual with the receiver's report of what
   * was sent ({@link BenchResult.stopped}).
   */
  signal?: AbortSignal;
  /**
   * Filled in as the run goes, for a status line: datagrams this end sent or received so far,
   * and when the measured part started (real time, ms since the epoch; 0 until it has).
   */
  progress?: BenchProgress;
  /**
   * Each interval as it ends, live: this end's sending (sent, bytes), or, reversed, what it
   * received (loss then counts what has not come yet; the final report is exact).
   */
  onInterval?: (event: LiveInterval) => void;
}

/** An interval as it ends: see {@link BenchClientOptions.onInterval}. */
export type LiveInterval =
  | { side: 'sender'; start: number; end: number; sent: number; bytes: number }
  | { side: 'receiver'; interval: IntervalFigures };

/** How far a run is: see {@link BenchClientOptions.progress}. */
export interface BenchProgress {
  sent: number;
  received: number;
  startedMs: number;
}

/** Round-trip times of a pingpong run, µs. */
export interface RttFigures {
  sent: number;
  answered: number;
  /** Round trips with no echo by the end (lost either way). */
  lost: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface BenchResult {
  server: Endpoint;
  params: BenchParams;
  sender: SendReport;
  receiver: ReceiverReport;
  /** Pingpong only. */
  rtt?: RttFigures | undefined;
  /** Datagrams the client received that were not the bench's, or garbled. */
  foreign: number;
  garbled: number;
  /** The signal stopped the stream early: the figures cover what was sent until then. */
  stopped: boolean;
}

/** Pingpong one in flight: how long to wait for an echo before sending the next (it is lost). */
const ECHO_TIMEOUT_MS = 1000;

const DEFAULTS = {
  mode: 'throughput',
  size: 1400,
  rate: 0,
  intervalMs: 1000,
  omitMs: 0,
  reverse: false,
  graceMs: 1000,
} as const;

/** Checks what a run asks for. */
/**
 * The parameters a run sends in its hello, from the options and their defaults.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on options no server would run
 */
export function benchParams(options: Omit<BenchClientOptions, 'host' | 'port'>): BenchParams {
  const p: BenchParams = {
    mode: options.mode ?? DEFAULTS.mode,
    size: options.size ?? DEFAULTS.size,
    rate: options.rate ?? DEFAULTS.rate,
    count: options.count,
    durationMs: options.count === undefined ? (options.durationMs ?? 10_000) : options.durationMs,
    intervalMs: options.intervalMs ?? DEFAULTS.intervalMs,
    omitMs: options.omitMs ?? DEFAULTS.omitMs,
    reverse: options.reverse ?? DEFAULTS.reverse,
    graceMs: options.graceMs ?? DEFAULTS.graceMs,
  };
  if (options.isochronous !== undefined) {
    p.isochronous = options.isochronous;
    p.rate = options.isochronous.fps;
    if (options.size === undefined)
      p.size = Math.min(1400, Math.max(FRAME_HEADER, options.isochronous.bytes));
  }
  if (options.sizeDist !== undefined) {
    p.sizeDist = options.sizeDist;
    p.size = checkSizes(options.sizeDist);
  }
  if (!Number.isInteger(p.size) || p.size < DATA_HEADER || p.size > 65507)
    throw new InvalidArgumentError(
      `size ${p.size} is not ${DATA_HEADER}-65507 bytes (the header takes ${DATA_HEADER})`,
    );
  if (!(p.intervalMs >= 10)) throw new InvalidArgumentError(`interval ${p.intervalMs} ms is under 10 ms`);
  if (p.mode === 'pingpong' && p.reverse)
    throw new InvalidArgumentError('pingpong goes both ways: no reverse');
  if (p.isochronous) {
    const { fps, bytes } = p.isochronous;
    if (p.mode !== 'throughput') throw new InvalidArgumentError('isochronous traffic is a throughput run');
    if (!(fps > 0 && fps <= 100_000))
      throw new InvalidArgumentError(`${fps} frames a second is not 1-100000`);
    if (!(Number.isInteger(bytes) && bytes >= FRAME_HEADER && bytes <= 64 * p.size))
      throw new InvalidArgumentError(
        `a frame of ${bytes} bytes is not ${FRAME_HEADER} to ${64 * p.size} (64 datagrams of ${p.size})`,
      );
  }
  const problem = paramsProblem(p);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return p;
}

/**
 * Runs a bench against a server.
 *
 * @throws {TimeoutError} when the server does not answer (hello) or does not report
 */
export async function runBench(options: BenchClientOptions): Promise<BenchResult> {
  const p = benchParams(options);
  const { signal } = options;
  const resolved = await resolveHost(options.host, { signal, lookup: options.lookup });
  const socket = await openUdpSocket({
    type: resolved.family === 'IPv6' ? 'udp6' : 'udp4',
    port: 0,
    recvBufferSize: 8 * 1024 * 1024,
    gro: true, // reversed: the server's GSO buffers arrive whole, split in the addon
    ...(options.transport && { transport: options.transport }),
  });
  try {
    return await run(socket, resolved.address, options, p);
  } finally {
    await socket.close();
  }
}

async function run(
  socket: UdpSocket,
  address: string,
  options: BenchClientOptions,
  p: BenchParams,
): Promise<BenchResult> {
  const { signal, port, progress, onInterval } = options;
  await socket.connect(port, address, signal ? { signal } : {});
  const server = socket.remoteAddress() as Endpoint;
  const mailbox = new Mailbox();
  const realtime = new RealtimeClock();
  const transport = socket.transport;
  let session = 0;
  // Reversed, this end receives the stream.
  let receiver: StreamReceiver | undefined;
  const rtt = latencyHistogram(3);
  // Sequence numbers echoed (the omitted start's too), as a bitmap: a long run stays small.
  const echoes = new SequenceSet();
  // Pingpong at rate 0: one in flight, the next sent when the echo came (or after a second).
  let awaited = -1;
  let wakeEcho = () => {};
  const echoed = (seq: number) =>
    echoes.has(seq)
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          awaited = seq;
          const timer = setTimeout(done, ECHO_TIMEOUT_MS);
          function done() {
            clearTimeout(timer);
            awaited = -1;
            wakeEcho = () => {};
            resolve();
          }
          wakeEcho = done;
        });
  let foreign = 0;
  let garbled = 0;
  const parts = new Reassembler();
  // One nobody awaits is a repeat (each is said until answered), unless no such message exists.
  const control = (message: ControlMessage) => {
    if (!mailbox.deliver(message) && !CONTROL_TYPES.has(message.type)) garbled++;
  };
  const done = socket.consume((m) => {
    const d = decode(m.data);
    const at = realtime.received(m.receivedAt, transport);
    if (d.kind === 'foreign') foreign++;
    else if (d.kind === 'garbled') garbled++;
    else if (d.kind === Kind.Control) control(d.message as ControlMessage);
    else if (d.kind === Kind.Part) {
      const whole = parts.add(d.id, d.index, d.count, d.data);
      if (whole === 'garbled') garbled++;
      else if (whole !== undefined) control(whole);
    } else if (d.session !== session) foreign++;
    else if (d.kind === Kind.Data && receiver !== undefined) {
      receiver.add(d, m.data, at);
      if (progress) progress.received++;
    } else if (d.kind === Kind.Echo) {
      // The first echo of each is timed (not in the omitted start); a duplicate echo is not
      // another round trip.
      if (echoes.add(d.seq)) {
        if (!d.omitted) rtt.recordValue(Math.max(1, Math.round((at - d.sentMs) * 1000)));
        if (d.seq === awaited) wakeEcho();
      }
    } else foreign++;
  });
  done.catch(() => {});
  // A control message's datagrams (its parts, for a large one): made once for all its retries.
  const sendDatagrams = (datagrams: readonly Buffer[]) => socket.sendEach(datagrams);
  const send = (message: ControlMessage) => sendDatagrams(encodeControlDatagrams(session, message));
  // An ICMP port unreachable heard on the receive path: nobody is there; asking ends at once.
  let refusal: Error | undefined;
  socket.onReceiveError((err) => {
    if (err instanceof ConnectionRefusedError) refusal ??= err;
  });
  const fatal = () => refusal;
  const nonce = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const clock = clockId();
  const where = formatEndpoint(server.address, server.port);
  // A server that will not run these parameters says why, instead of welcoming.
  const refused = mailbox.next('refused', (m) => m.nonce === nonce);
  const stopHello = new AbortController();
  const welcome = await Promise.race([
    ask(
      mailbox,
      () => send({ type: 'hello', version: PROTOCOL_VERSION, nonce, clock, params: p }),
      'welcome',
      {
        timeoutMs: options.connectTimeoutMs ?? 5000,
        signal: signal ? AbortSignal.any([signal, stopHello.signal]) : stopHello.signal,
        failure: `no bench server answered at ${where}`,
        fatal,
      },
      (m) => m.nonce === nonce,
    ),
    refused.promise.then((m) => {
      stopHello.abort();
      throw new SocketError(`the bench server at ${where} refused the run: ${String(m.reason)}`);
    }),
  ]).finally(() => refused.cancel());
  session = Number(welcome.session);
  const sharedClock = welcome.clock === clock;
  const step = {
    timeoutMs: 10_000,
    signal,
    fatal,
    failure: `the bench server at ${where} stopped answering`,
  };
  // Once the stream has begun, the signal stops it early and the run still ends with the
  // receiver's report: the end goes on without the signal, bounded by its timeouts.
  const finish = { ...step, signal: undefined };
  // Stopped before the stream began: the server is told, so that it forgets the session now.
  const start = () =>
    ask(mailbox, () => send({ type: 'start' }), 'started', step).catch(async (err) => {
      if (err instanceof AbortError) await send({ type: 'bye' }).catch(() => {});
      throw err;
    });
  if (progress) progress.startedMs = realtime.now() + p.omitMs;
  if (p.reverse) {
    const stream = new StreamReceiver({
      params: p,
      sharedClock,
      now: () => realtime.now(),
      onInterval: (interval) => onInterval?.({ side: 'receiver', interval }),
      kernelDrops: () => socket.kernelDrops,
    });
    receiver = stream;
    const sentMessage = mailbox.next('sent', (m) => sentProblem(m, p) === undefined);
    await start();
    // The server sends, then says so; if it falls silent for 10 s instead, it is gone.
    let watchdog: NodeJS.Timeout | undefined;
    const silent = new Promise<never>((_, reject) => {
      let seen = -1;
      watchdog = setInterval(() => {
        const now = socket.packetsReceived;
        if (now === seen) reject(new TimeoutError(`the bench server at ${where} fell silent for 10s`));
        seen = now;
      }, 10_000);
    });
    // Ctrl-C: the server stops sending, then says what it sent, and the run ends as usual.
    const stopped = new Promise<void>((resolve) => {
      if (signal?.aborted) resolve();
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    void stopped.then(() => ask(mailbox, () => send({ type: 'stop' }), 'stopping', finish).catch(() => {}));
    const sent = (await Promise.race([sentMessage.promise, silent]).finally(() => {
      clearInterval(watchdog);
    })) as unknown as SendReport & ControlMessage;
    stream.ended(sent);
    await new Promise((r) => setTimeout(r, p.graceMs));
    const report = stream.report(sent);
    // The server waits for it: said a few times, as the other control messages are.
    const datagrams = encodeControlDatagrams(session, { type: 'report', ...report });
    for (let i = 0; i < 3; i++) await sendDatagrams(datagrams).catch(() => {});
    return {
      server,
      params: p,
      sender: strip(sent) as unknown as SendReport,
      receiver: report,
      foreign,
      garbled,
      stopped: signal?.aborted === true,
    };
  }
  await start();
  const sender = await sendStream(
    socket,
    {
      session,
      clock: realtime,
      size: p.size,
      rate: p.rate,
      count: p.count,
      durationMs: p.durationMs,
      intervalMs: p.intervalMs,
      omitMs: p.omitMs,
      ...(p.isochronous && { frame: framePieces(p.isochronous.bytes, p.size) }),
      ...(p.sizeDist && { sizes: sizePicker(p.sizeDist, seededRandom(session, 7)) }),
      ...(progress && { progress }),
      ...(onInterval && {
        onInterval: (k: number, sent: number, bytes: number, ms: number) =>
          onInterval({
            side: 'sender',
            start: (k * p.intervalMs) / 1000,
            end: Math.round(k * p.intervalMs + ms) / 1000,
            sent,
            bytes,
          }),
      }),
      ...(p.mode === 'pingpong' && p.rate === 0 && { echoed }),
    },
    signal,
  );
  // Stopped before the omitted start was over: nothing to measure.
  if (signal?.aborted && sender.end === sender.first && p.omitMs > 0) {
    await send({ type: 'bye' }).catch(() => {});
    throwIfAborted(signal);
  }
  // Stopped early by the signal or not, the run ends with the receiver's report.
  const sentDatagrams = encodeControlDatagrams(session, { type: 'sent', ...sender });
  const reported = await ask(mailbox, () => sendDatagrams(sentDatagrams), 'report', {
    ...finish,
    timeoutMs: p.graceMs + 10_000,
  });
  void send({ type: 'bye' }).catch(() => {});
  const receiverReport = strip(reported) as unknown as ReceiverReport;
  const result: BenchResult = {
    server,
    params: p,
    sender,
    receiver: receiverReport,
    foreign,
    garbled,
    stopped: signal?.aborted === true,
  };
  if (p.mode === 'pingpong') {
    const sentCount = sender.end - sender.first;
    const answered = echoes.countIn(sender.first, sender.end);
    const min = rtt.totalCount ? rtt.minNonZeroValue : 0;
    const max = rtt.maxValue;
    // HDR percentiles are equivalent values: kept within what was seen.
    const at = (p: number) => Math.max(min, Math.min(max, rtt.getValueAtPercentile(p)));
    result.rtt = {
      sent: sentCount,
      answered,
      lost: Math.max(0, sentCount - answered),
      min,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max,
      mean: Math.round(rtt.mean),
    };
  }
  return result;
}

/** A control message without its `type`. */
function strip<T extends object>(m: T): Omit<T, 'type'> {
  const { type: _, ...rest } = m as T & { type?: unknown };
  return rest;
}
