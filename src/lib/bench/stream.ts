/**
 * The receiving end of a bench stream, whichever end that is (the server, or the client of a
 * reversed run): its statistics, its frames (isochronous), its live intervals, and the report
 * it makes once the sender says what it sent.
 */
import { type FrameFigures, FrameTracker, readFrame } from './frames.js';
import { liveIntervals } from './live.js';
import { type IntervalFigures, ReceiveStats, type StreamFigures } from './receiver.js';
import type { SendReport } from './sender.js';
import type { BenchParams } from './session.js';
import type { DataHeader } from './wire.js';

/** What a stream's receiver reports at the end. */
export interface ReceiverReport {
  figures: StreamFigures;
  intervals: IntervalFigures[];
  /** The receiving socket's kernel drops over the run (a receive buffer full), if known. */
  kernelDrops: number | undefined;
  sharedClock: boolean;
  /** Isochronous runs: what became of the frames. */
  frames?: FrameFigures | undefined;
}

/** Options of {@link StreamReceiver}. */
export interface StreamReceiverOptions {
  params: BenchParams;
  /** Whether the sender's clock is this end's: delays absolute, else above the least. */
  sharedClock: boolean;
  /** The clock of the arrival times (ms since the epoch). */
  now: () => number;
  /** Each live interval as it ends. */
  onInterval: (interval: IntervalFigures) => void;
  /** The receiving socket's kernel drops so far, where the transport can tell. */
  kernelDrops: () => number | undefined;
}

export class StreamReceiver {
  readonly stats: ReceiveStats;
  readonly #frames: FrameTracker | undefined;
  readonly #stopLive: (end?: number) => void;
  readonly #options: StreamReceiverOptions;
  readonly #dropsAtStart: number | undefined;

  constructor(options: StreamReceiverOptions) {
    const { params } = options;
    this.#options = options;
    // Intervals from the first arrival: lined up with the sender's, whatever the exchange took.
    this.stats = new ReceiveStats({ intervalMs: params.intervalMs, sharedClock: options.sharedClock });
    this.#frames = params.isochronous ? new FrameTracker(1000 / params.isochronous.fps) : undefined;
    this.#dropsAtStart = options.kernelDrops();
    this.#stopLive = liveIntervals(
      this.stats,
      params.omitMs,
      params.intervalMs,
      options.onInterval,
      options.now,
    );
  }

  /** A data datagram of the stream, received at `at`. The omitted start's are left out. */
  add(d: DataHeader, data: Buffer, at: number): void {
    if (d.omitted || !this.stats.add(d.seq, d.sentMs, at, data.length) || !this.#frames) return;
    const f = readFrame(data);
    if (f) this.#frames.add(f.frame, f.piece, f.pieces, d.sentMs, at);
  }

  /** Whether runs may be taken whole: not when each datagram carries a frame's piece. */
  get takesRuns(): boolean {
    return this.#frames === undefined;
  }

  /**
   * `n` data datagrams numbered `seq` on, `size` bytes each, sent at `sentMs` and received at
   * `at` (a GRO buffer's): as `add` would take each. Only when {@link takesRuns}.
   */
  addRun(seq: number, n: number, sentMs: number, at: number, size: number, omitted: boolean): void {
    if (!omitted) this.stats.addRun(seq, n, sentMs, at, size);
  }

  /** The sender said what it sent: the live view ends with the interval in progress. */
  ended(sent: SendReport): void {
    this.#stopLive(sent.end);
  }

  /** Stops the live view (the session is forgotten). */
  stop(): void {
    this.#stopLive();
  }

  /** The report of what arrived of what the sender says it sent. */
  report(sent: SendReport): ReceiverReport {
    const now = this.#options.kernelDrops();
    return {
      figures: this.stats.figures(sent.end, sent.first),
      intervals: this.stats.intervals(sent.boundaries),
      kernelDrops: now === undefined ? undefined : now - (this.#dropsAtStart ?? 0),
      sharedClock: this.#options.sharedClock,
      ...(this.#frames &&
        sent.frames && { frames: this.#frames.figures(sent.frames.first, sent.frames.sent) }),
    };
  }
}
