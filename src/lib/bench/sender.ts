/**
 * The bench's sending side: numbered, timestamped datagrams at an offered rate (or as fast as
 * the socket takes them), for a duration or a count, with the sequence number each interval
 * starts at, so that the receiver can say per interval what was sent and what was lost.
 */
import { throwIfAborted } from '../abort.js';
import { ConnectionRefusedError } from '../errors.js';
import { Pacer } from '../pacer.js';
import type { UdpSocket } from '../socket.js';
import type { RealtimeClock } from './clock.js';
import { writeFrame } from './frames.js';
import { Kind, OMITTED, stampDataHeader, writeDataHeader } from './wire.js';

/** What to send. */
export interface SendPlan {
  session: number;
  /** Stamps each datagram's send time. */
  clock: RealtimeClock;
  /** Bytes per datagram, at least {@link DATA_HEADER}; the largest when `sizes` is given. */
  size: number;
  /**
   * Isochronous: `rate` frames a second, each of these datagram sizes (one frame's pieces,
   * at most 64); `count` then counts frames.
   */
  frame?: number[] | undefined;
  /** Each datagram's size, drawn per datagram (a size distribution); none: all `size`. */
  sizes?: (() => number) | undefined;
  /** Datagrams per second; 0: as fast as the socket takes them. */
  rate: number;
  /** Stop after this many (counted ones: after the omitted start). */
  count?: number | undefined;
  /** Stop after this many ms (counted: after the omitted start). */
  durationMs?: number | undefined;
  /** Report intervals, ms. */
  intervalMs: number;
  /** Sent first and left out of the figures, ms. */
  omitMs: number;
  /**
   * One in flight (pingpong at rate 0): after each datagram, wait until this resolves (its echo
   * came, or the wait timed out) before the next.
   */
  echoed?: ((seq: number) => Promise<void>) | undefined;
  /**
   * Each interval as it ends: its number (from 0), datagrams and bytes sent in it, and how long
   * it lasted, ms (the last one may be short).
   */
  onInterval?: ((index: number, sent: number, bytes: number, ms: number) => void) | undefined;
  /** Its `sent` counts the datagrams sent so far, for a status line. */
  progress?: { sent: number } | undefined;
  /** Where to send, for an unconnected socket. */
  port?: number | undefined;
  host?: string | undefined;
}

/** What was sent. */
export interface SendReport {
  /** The first sequence number counted (those before were the omitted start). */
  first: number;
  /** One past the last sent: `end - first` were counted. */
  end: number;
  /** Isochronous: the first frame counted, and how many were. */
  frames?: { first: number; sent: number } | undefined;
  /** The sequence number each interval started at, and `end` last. */
  boundaries: number[];
  /** Bytes counted. */
  bytes: number;
  /** ICMP reports (port unreachable) that refused a send: each such datagram went again. */
  errors: number;
  /** When the counted part started and ended, ms (this clock, since the epoch). */
  startMs: number;
  endMs: number;
}

/**
 * Datagrams per batch: with GSO, the addon sends up to 64 runs of up to 64 equal datagrams
 * in one sendmmsg call, so a batch of 1024 is a handful of buffers. The pacer still decides
 * how many go at once (a paced run sends what is due, often a few).
 */
const BATCH = 1024;

/** Sends as `plan` says until done or `signal` fires; resolves to what was sent. */
export async function sendStream(
  socket: UdpSocket,
  plan: SendPlan,
  signal?: AbortSignal,
): Promise<SendReport> {
  const { size, rate, intervalMs } = plan;
  const buf = Buffer.alloc(size * BATCH);
  for (let i = 0; i < BATCH; i++) writeDataHeader(buf, i * size, Kind.Data, plan.session, 0, 0);
  const lengths = new Uint32Array(BATCH).fill(size);
  // Where each datagram of a batch starts in `buf`: fixed, or packed one after another.
  const offsets = Uint32Array.from({ length: BATCH }, (_, i) => i * size);
  let bytes = 0;
  let bytesBefore = 0;
  // The interval that just ended, to whoever follows the run.
  const intervalEnded = () => {
    const k = boundaries.length - 2;
    const ms = Math.min(intervalMs, wallClock() - startMs - k * intervalMs);
    plan.onInterval?.(k, (boundaries[k + 1] as number) - (boundaries[k] as number), bytes - bytesBefore, ms);
    bytesBefore = bytes;
  };
  const pacer = new Pacer(rate);
  const wallClock = () => plan.clock.now();
  const begin = wallClock();
  const startMs = begin + plan.omitMs;
  let first = plan.omitMs > 0 ? -1 : 0;
  const boundaries: number[] = plan.omitMs > 0 ? [] : [0];
  let seq = 0;
  let errors = 0;
  const stopAt = plan.durationMs === undefined ? Number.POSITIVE_INFINITY : startMs + plan.durationMs;
  const pieces = plan.frame;
  const limit = (plan.count ?? Number.POSITIVE_INFINITY) * (pieces?.length ?? 1);
  let frameNo = 0;
  let firstFrame = -1;
  const aborted = () => signal?.aborted === true;
  // The omitted start's datagrams say so (their flag), so that the receiver leaves them out.
  let flags = plan.omitMs > 0 ? OMITTED : 0;
  const flagAll = () => {
    for (let i = 0; i < BATCH; i++) buf[i * size + 5] = flags;
  };
  flagAll();
  for (;;) {
    if (aborted() || (first >= 0 && seq - first >= limit)) break;
    const batch = plan.echoed || pieces ? 1 : BATCH;
    const want = first >= 0 ? Math.min(batch, limit - (seq - first)) : batch;
    let n: number;
    try {
      n = await pacer.take(want, signal);
    } catch (err) {
      if (aborted()) break;
      throw err;
    }
    // The time decides before anything goes: the end of the omitted start, of an interval, of
    // the run (a datagram due at the very end is not sent).
    const at = wallClock();
    if (first < 0 && at >= startMs) {
      first = seq;
      boundaries.push(seq);
      flags = 0;
      flagAll();
    }
    if (first >= 0) {
      // A new interval: the sequence number it starts at.
      while (
        startMs + boundaries.length * intervalMs <= at &&
        startMs + boundaries.length * intervalMs < stopAt
      ) {
        boundaries.push(seq);
        intervalEnded();
      }
      if (at >= stopAt) break;
      n = Math.min(n, limit - (seq - first));
    }
    if (pieces) {
      // One frame, its pieces back to back.
      n = pieces.length;
      let o = 0;
      for (let i = 0; i < n; i++) {
        lengths[i] = pieces[i] as number;
        offsets[i] = o;
        writeDataHeader(buf, o, Kind.Data, plan.session, seq + i, at, flags);
        writeFrame(buf, o, frameNo, i, n);
        o += pieces[i] as number;
      }
      if (first >= 0 && firstFrame < 0) firstFrame = frameNo;
      frameNo++;
    } else if (plan.sizes) {
      let o = 0;
      for (let i = 0; i < n; i++) {
        const length = plan.sizes();
        lengths[i] = length;
        offsets[i] = o;
        writeDataHeader(buf, o, Kind.Data, plan.session, seq + i, at, flags);
        o += length;
      }
    } else for (let i = 0; i < n; i++) stampDataHeader(buf, i * size, seq + i, at);
    if (first >= 0) for (let i = 0; i < n; i++) bytes += lengths[i] as number;
    for (let done = 0; done < n; ) {
      try {
        await socket.sendPacked(
          done === 0 ? buf : buf.subarray(offsets[done]),
          done === 0 ? lengths : lengths.subarray(done),
          n - done,
          plan.port,
          plan.host,
        );
        done = n;
      } catch (err) {
        // An ICMP report of an earlier datagram refused: this one was not sent; counted, and
        // it and the rest of the batch go again (as blasters do).
        if (!(err instanceof ConnectionRefusedError)) throw err;
        errors++;
        done += err.sent ?? 0;
        throwIfAborted(signal);
      }
    }
    seq += n;
    if (plan.progress) plan.progress.sent = seq;
    if (plan.echoed) await plan.echoed(seq - 1);
  }
  // Stopped during the omitted start: nothing was counted, and no interval ended.
  const started = first >= 0;
  const end = Math.max(seq, started ? first : seq);
  if (!started) first = seq;
  if (boundaries.length === 0) boundaries.push(first);
  boundaries.push(end);
  if (started) intervalEnded();
  return {
    first,
    end,
    boundaries,
    bytes,
    ...(pieces && {
      frames: { first: Math.max(0, firstFrame), sent: firstFrame < 0 ? 0 : frameNo - firstFrame },
    }),
    errors,
    startMs,
    endMs: wallClock(),
  };
}
