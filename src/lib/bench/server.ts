/**
 * `BenchServer`: the far end of a bench run. It answers hellos, receives the measured stream
 * (or sends it, reversed; or echoes it, pingpong) and reports what it received. Many clients
 * may run at once, each in its own session; a datagram of no session, or not the bench's at
 * all, is counted as foreign, and a malformed one as garbled, never as a measurement.
 */
import type { Endpoint } from '../address.js';
import type { ReceivedBatch } from '../batch.js';
import { seededRandom } from '../impair/random.js';
import { openUdpSocket, type UdpSocket } from '../socket.js';
import type { Offloads, TransportKind } from '../transport.js';
import { RealtimeClock } from './clock.js';
import { ask, type ControlMessage, Mailbox, Reassembler } from './control.js';
import { framePieces } from './frames.js';
import type { IntervalFigures } from './receiver.js';
import { type SendReport, sendStream } from './sender.js';
import { type BenchParams, clockId, PROTOCOL_VERSION, paramsProblem, sentProblem } from './session.js';
import { sizePicker } from './sizes.js';
import { type ReceiverReport, StreamReceiver } from './stream.js';
import { decode, encodeControlDatagrams, Kind, newSession, OMITTED, readData } from './wire.js';

/** A session's events, for a server's output. */
export type ServerEvent =
  | { type: 'session'; session: number; client: Endpoint; params: BenchParams }
  | { type: 'interval'; session: number; interval: IntervalFigures }
  | { type: 'report'; session: number; client: Endpoint; report: ReceiverReport; sender?: SendReport }
  | { type: 'sent'; session: number; client: Endpoint; sender: SendReport };

export interface BenchServerOptions {
  address?: string;
  port?: number;
  transport?: TransportKind | 'auto';
  signal?: AbortSignal;
  onEvent?: (event: ServerEvent) => void;
  /** A session silent this long is forgotten (default 30 s). */
  sessionTimeoutMs?: number;
  /** The most sessions at once (default 256): a hello beyond them is refused, saying so. */
  maxSessions?: number;
  /**
   * Join a SO_REUSEPORT group (native transport): one server per thread on the same port. A
   * client's control and data come from one socket, so its whole session reaches one server.
   */
  reusePort?: boolean;
}

interface Session {
  id: number;
  nonce: string;
  client: Endpoint;
  params: BenchParams;
  sharedClock: boolean;
  /** The receiving end of its stream, once started (not reversed). */
  stream: StreamReceiver | undefined;
  /** Reversed: sending now. */
  streaming: boolean;
  /** Reversed: stops the sending early (the client's Ctrl-C), the run then ending as usual. */
  stopSending: AbortController;
  /** The report's timer, during the grace period. */
  reportTimer?: NodeJS.Timeout;
  report: ReceiverReport | undefined;
  /** The report as sent, for the client's retries. */
  reportDatagrams?: Buffer[];
  /** Control messages coming in parts. */
  parts: Reassembler;
  reporting: boolean;
  lastSeen: number;
  mailbox: Mailbox;
  sending: AbortController | undefined;
}

export class BenchServer {
  readonly #socket: UdpSocket;
  readonly #options: BenchServerOptions;
  readonly #sessions = new Map<number, Session>();
  /** The same sessions by their hello's nonce: a repeated hello finds its own. */
  readonly #byNonce = new Map<string, Session>();
  readonly #maxSessions: number;
  readonly #clock = clockId();
  readonly #realtime = new RealtimeClock();
  readonly #sweep: NodeJS.Timeout;
  /** A data header read in place, and the next one's (see readData). */
  readonly #fields = new Float64Array(4);
  readonly #nextFields = new Float64Array(4);
  /** Datagrams that are not the bench's, or of no session here. */
  foreign = 0;
  /** The bench's, but cut short or malformed. */
  garbled = 0;

  /** @internal use {@link startBenchServer} */
  constructor(socket: UdpSocket, options: BenchServerOptions) {
    this.#socket = socket;
    this.#options = options;
    const transport = socket.transport;
    const done = socket.consumeBatches((b) => this.#receiveBatch(b, transport));
    done.catch(() => {});
    const timeout = options.sessionTimeoutMs ?? 30_000;
    this.#maxSessions = options.maxSessions ?? 256;
    this.#sweep = setInterval(
      () => {
        const now = this.#realtime.now();
        // A session that sends is alive, however long its client stays silent (reversed).
        for (const s of this.#sessions.values())
          if (!s.streaming && now - s.lastSeen > timeout) this.#forget(s);
      },
      Math.min(1000, timeout),
    );
    this.#sweep.unref();
  }

  /** The receiving socket's segmentation offloads (see {@link UdpSocket.offloads}). */
  get offloads(): Offloads | undefined {
    return this.#socket.offloads;
  }

  address(): Endpoint {
    return this.#socket.address();
  }

  /** Sessions open now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Kernel drops of the receiving socket so far, if the transport can tell. */
  get kernelDrops(): number | undefined {
    return this.#socket.kernelDrops;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const s of this.#sessions.values()) this.#forget(s);
    await this.#socket.close();
  }

  #emit(event: ServerEvent): void {
    this.#options.onEvent?.(event);
  }

  #send(to: Endpoint, session: number, message: ControlMessage): Promise<void> {
    return this.#sendDatagrams(to, encodeControlDatagrams(session, message));
  }

  /** A control message's datagrams (its parts, for a large one), made once for its retries. */
  #sendDatagrams(to: Endpoint, datagrams: readonly Buffer[]): Promise<void> {
    return this.#socket.sendEach(datagrams, to.port, to.address);
  }

  #forget(s: Session): void {
    s.stream?.stop();
    clearTimeout(s.reportTimer);
    s.sending?.abort();
    this.#sessions.delete(s.id);
    this.#byNonce.delete(s.nonce);
    this.#coalesceFloods();
  }

  /**
   * A batch as received. A flood's data datagrams come in runs: from one sender, numbered one
   * after another, sent at one time (the client stamps a batch once) and received at one time
   * (a GRO buffer). Each datagram's header is read and checked in place; a run is counted at
   * once, exactly as its datagrams one by one would be. Anything else goes through #receive.
   */
  #receiveBatch(b: ReceivedBatch, transport: TransportKind): void {
    const n = b.count;
    const data = b.data;
    const f = this.#fields;
    const g = this.#nextFields;
    for (let i = 0; i < n; ) {
      const len = b.length(i);
      const t = b.receivedAt(i);
      const s = readData(data, b.offset(i), len, f) ? this.#sessions.get(f[0] as number) : undefined;
      if (s?.stream === undefined || !s.stream.takesRuns || s.params.mode === 'pingpong') {
        const m = b.datagram(i);
        this.#receive(m.data, m.from, this.#realtime.received(t, transport));
        i++;
        continue;
      }
      const from = b.from(i);
      const seq = f[1] as number;
      let j = i + 1;
      while (
        j < n &&
        b.length(j) === len &&
        b.receivedAt(j) === t &&
        b.from(j) === from &&
        readData(data, b.offset(j), len, g) &&
        g[0] === f[0] &&
        g[1] === seq + (j - i) &&
        g[2] === f[2] &&
        g[3] === f[3]
      )
        j++;
      const at = this.#realtime.received(t, transport);
      s.lastSeen = at;
      s.stream.addRun(seq, j - i, f[2] as number, at, len, f[3] === OMITTED);
      i = j;
    }
  }

  #receive(data: Buffer, from: Endpoint, receivedAt: number): void {
    const d = decode(data);
    if (d.kind === 'foreign') {
      this.foreign++;
      return;
    }
    if (d.kind === 'garbled') {
      this.garbled++;
      return;
    }
    if (d.kind === Kind.Control) {
      this.#control(d.session, d.message as ControlMessage, from);
      return;
    }
    if (d.kind === Kind.Part) {
      const whole = this.#sessions.get(d.session)?.parts.add(d.id, d.index, d.count, d.data);
      if (whole === 'garbled') this.garbled++;
      else if (whole !== undefined) this.#control(d.session, whole, from);
      else if (!this.#sessions.has(d.session)) this.foreign++;
      return;
    }
    const s = this.#sessions.get(d.session);
    if (s === undefined || s.stream === undefined) {
      this.foreign++;
      return;
    }
    s.lastSeen = receivedAt;
    if (d.kind === Kind.Data) {
      // The omitted start's datagrams are echoed in pingpong but never counted.
      s.stream.add(d, data, receivedAt);
      if (s.params.mode === 'pingpong') {
        // Back as it came, marked as the echo: the client times the round trip on its clock.
        data[4] = Kind.Echo;
        if (!this.#socket.trySend(data, from.port, from.address))
          void this.#socket.send(Buffer.from(data), from.port, from.address).catch(() => {});
      }
    } else this.foreign++;
  }

  #control(id: number, message: ControlMessage, from: Endpoint): void {
    if (typeof message.type !== 'string') {
      this.garbled++;
      return;
    }
    if (message.type === 'hello') {
      this.#hello(message, from);
      return;
    }
    const s = this.#sessions.get(id);
    if (s === undefined) {
      this.foreign++;
      return;
    }
    s.lastSeen = this.#realtime.now();
    if (s.mailbox.deliver(message)) return;
    switch (message.type) {
      case 'start':
        this.#start(s);
        void this.#send(from, s.id, { type: 'started' }).catch(() => {});
        return;
      case 'sent': {
        // What the client says it sent decides the figures: checked, as a hello's parameters.
        if (sentProblem(message, s.params) !== undefined) {
          this.garbled++;
          return;
        }
        this.#sent(s, message as unknown as SendReport & ControlMessage);
        return;
      }
      case 'bye':
        this.#forget(s);
        return;
      case 'stop':
        // Reversed, the client stopped early: the sending ends, then says what it sent.
        s.stopSending.abort();
        void this.#send(from, s.id, { type: 'stopping' }).catch(() => {});
        return;
      case 'report':
        // A repeat of a report already taken (the client says it more than once).
        return;
      default:
        this.garbled++;
    }
  }

  #hello(message: ControlMessage, from: Endpoint): void {
    const nonce = String(message.nonce);
    let s = this.#byNonce.get(nonce);
    if (s === undefined) {
      const params = message.params as BenchParams;
      const problem =
        message.version !== PROTOCOL_VERSION
          ? `protocol version ${String(message.version)} is not ${PROTOCOL_VERSION}`
          : this.#sessions.size >= this.#maxSessions
            ? `the server runs ${this.#maxSessions} sessions already`
            : paramsProblem(params);
      if (problem !== undefined) {
        this.garbled++;
        void this.#send(from, 0, { type: 'refused', nonce, reason: problem }).catch(() => {});
        return;
      }
      s = {
        id: newSession(),
        nonce,
        client: from,
        params,
        sharedClock: message.clock === this.#clock,
        stream: undefined,
        parts: new Reassembler(),
        streaming: false,
        stopSending: new AbortController(),
        report: undefined,
        reporting: false,
        lastSeen: this.#realtime.now(),
        mailbox: new Mailbox(),
        sending: undefined,
      };
      this.#sessions.set(s.id, s);
      this.#byNonce.set(nonce, s);
      this.#emit({ type: 'session', session: s.id, client: from, params });
    }
    void this.#send(from, s.id, { type: 'welcome', nonce, session: s.id, clock: this.#clock }).catch(
      () => {},
    );
  }

  #start(s: Session): void {
    if (s.stream !== undefined || s.sending !== undefined) return;
    if (s.params.reverse) {
      this.#reverse(s);
      return;
    }
    s.stream = new StreamReceiver({
      params: s.params,
      sharedClock: s.sharedClock,
      now: () => this.#realtime.now(),
      onInterval: (interval) => this.#emit({ type: 'interval', session: s.id, interval }),
      kernelDrops: () => this.#socket.kernelDrops,
    });
    this.#coalesceFloods();
  }

  /**
   * Reads a flood once a millisecond rather than per wake-up while throughput runs stream in
   * and no pingpong does: the client's kernel then has no reader to wake per buffer (25
   * against 20 Gbit/s at 1400 B), and receive times stay the kernel's. A pingpong run needs
   * each datagram at once.
   */
  #coalesceFloods(): void {
    let floods = 0;
    let pingpongs = 0;
    for (const s of this.#sessions.values()) {
      if (s.stream === undefined || s.reporting) continue;
      if (s.params.mode === 'pingpong') pingpongs++;
      else floods++;
    }
    this.#socket.setCoalesce(floods > 0 && pingpongs === 0);
  }

  /** The sender says what it sent: after the grace period, the report, kept for its retries. */
  #sent(s: Session, sent: SendReport): void {
    if (s.reportDatagrams !== undefined) {
      void this.#sendDatagrams(s.client, s.reportDatagrams).catch(() => {});
      return;
    }
    if (s.reporting || s.stream === undefined) return;
    s.reporting = true;
    this.#coalesceFloods();
    const stream = s.stream;
    stream.ended(sent);
    s.reportTimer = setTimeout(() => {
      s.report = stream.report(sent);
      this.#emit({ type: 'report', session: s.id, client: s.client, report: s.report, sender: sent });
      s.reportDatagrams = encodeControlDatagrams(s.id, { type: 'report', ...s.report });
      void this.#sendDatagrams(s.client, s.reportDatagrams).catch(() => {});
    }, s.params.graceMs);
  }

  /** Reversed: this end sends, then says what it sent until the client reports. */
  #reverse(s: Session): void {
    const abort = new AbortController();
    s.sending = abort;
    const { params } = s;
    void (async () => {
      try {
        s.streaming = true;
        const sent = await sendStream(
          this.#socket,
          {
            session: s.id,
            clock: this.#realtime,
            size: params.size,
            ...(params.isochronous && { frame: framePieces(params.isochronous.bytes, params.size) }),
            ...(params.sizeDist && { sizes: sizePicker(params.sizeDist, seededRandom(s.id, 7)) }),
            rate: params.rate,
            count: params.count,
            durationMs: params.durationMs,
            intervalMs: params.intervalMs,
            omitMs: params.omitMs,
            port: s.client.port,
            host: s.client.address,
          },
          AbortSignal.any([abort.signal, s.stopSending.signal]),
        ).finally(() => {
          s.streaming = false;
          s.lastSeen = this.#realtime.now();
        });
        this.#emit({ type: 'sent', session: s.id, client: s.client, sender: sent });
        const datagrams = encodeControlDatagrams(s.id, { type: 'sent', ...sent });
        await ask(s.mailbox, () => this.#sendDatagrams(s.client, datagrams), 'report', {
          timeoutMs: params.graceMs + 10_000,
          failure: 'the client did not report',
          signal: abort.signal,
        });
      } catch {
        // The client went away: the session is forgotten when it times out.
      }
    })();
  }
}

/** Starts a bench server: binds (default 0.0.0.0, a free port: read it with `address()`) and serves. */
export async function startBenchServer(options: BenchServerOptions = {}): Promise<BenchServer> {
  const socket = await openUdpSocket({
    address: options.address ?? '0.0.0.0',
    port: options.port ?? 0,
    recvBufferSize: 8 * 1024 * 1024,
    // A client's GSO buffers arrive whole (loopback) and are split in the addon: one read per
    // 64 datagrams. Every datagram is still counted and checked on its own. No receive thread:
    // with the server on one core, its copy into the ring cost more than it saved (1400 B
    // unlimited: 27-30 against 33-35 Gbit/s delivered, 87-92 % of what was offered against
    // 94-95 %); the reads coalesced under a flood leave the loop little to stall.
    gro: true,
    ...(options.reusePort && { reusePort: true }),
    ...(options.transport && { transport: options.transport }),
    ...(options.signal && { signal: options.signal }),
  });
  return new BenchServer(socket, options);
}
