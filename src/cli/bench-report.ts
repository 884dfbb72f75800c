/**
 * How `udpkit bench` says what it measured: the final JSON document (a stable schema,
 * docs/bench.md), interval lines and the summary for people. Pure.
 */
import type { BenchResult, RttFigures } from '../lib/bench/client.js';
import type { DelayFigures, IntervalFigures, StreamFigures } from '../lib/bench/receiver.js';

/** The counts an interval and the summary both give. */
interface JsonCounts {
  sent: number;
  received: number;
  lost: number;
  lost_percent: number;
  duplicates: number;
  reordered: number;
}

/** One interval of the JSON document. */
export interface JsonInterval extends JsonCounts {
  start: number;
  end: number;
  bytes: number;
  pps: number;
  bits_per_second: number;
  jitter_ms: number;
  delay_ms: DelayFigures | null;
}

/** The summary of the JSON document. */
export interface JsonSummary extends JsonCounts {
  reorder_extent: { max: number; mean: number };
  loss_runs: { count: number; mean: number; max: number };
  unexpected: number;
  seconds: number;
  bytes: number;
  offered_pps: number;
  offered_bits_per_second: number;
  pps: number;
  bits_per_second: number;
  jitter_ms: number;
  delay_ms: (DelayFigures & { absolute: boolean }) | null;
  sender_errors: number;
  receiver_kernel_drops: number | null;
  foreign: number;
  garbled: number;
  frames?: {
    sent: number;
    complete: number;
    missed: number;
    late: number;
    best_ms: number | null;
    period_ms: number;
  };
  rtt_us?: Omit<RttFigures, 'sent'>;
}

/** `bench client --json`'s document. */
export interface BenchDocument {
  version: 1;
  mode: string;
  reverse: boolean;
  server: { address: string; port: number; family: string };
  params: Record<string, unknown>;
  summary: JsonSummary;
  intervals: JsonInterval[];
}

const percent = (part: number, whole: number) => (whole > 0 ? Math.round((part / whole) * 1e6) / 1e4 : 0);
const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;
/** A percentage for people: two decimals (the document keeps four). */
const twoDigits = (p: number) => round(p, 2);

export function jsonInterval(i: IntervalFigures): JsonInterval {
  const seconds = i.end - i.start;
  return {
    start: i.start,
    end: i.end,
    sent: i.sent,
    received: i.received,
    lost: i.lost,
    lost_percent: percent(i.lost, i.sent),
    duplicates: i.duplicates,
    reordered: i.reordered,
    bytes: i.bytes,
    pps: round(i.received / seconds, 1),
    bits_per_second: Math.round((i.bytes * 8) / seconds),
    jitter_ms: i.jitterMs,
    delay_ms: i.delay ?? null,
  };
}

/** The final document of `bench client --json`. */
export function jsonDocument(r: BenchResult): BenchDocument {
  const f: StreamFigures = r.receiver.figures;
  const sender = r.sender;
  const seconds = round(Math.max(0.001, (sender.endMs - sender.startMs) / 1000), 6);
  return {
    version: 1,
    mode: r.params.mode,
    reverse: r.params.reverse,
    server: r.server,
    params: {
      size: r.params.size,
      rate: r.params.rate,
      count: r.params.count ?? null,
      duration_ms: r.params.durationMs ?? null,
      interval_ms: r.params.intervalMs,
      omit_ms: r.params.omitMs,
      grace_ms: r.params.graceMs,
      size_dist: r.params.sizeDist ?? null,
      isochronous: r.params.isochronous ?? null,
    },
    summary: {
      sent: f.sent,
      received: f.received,
      lost: f.lost,
      lost_percent: percent(f.lost, f.sent),
      duplicates: f.duplicates,
      reordered: f.reordered,
      reorder_extent: f.reorderExtent,
      loss_runs: {
        count: f.lossRuns.count,
        mean: f.lossRuns.count === 0 ? 0 : round(f.lossRuns.lost / f.lossRuns.count),
        max: f.lossRuns.max,
      },
      unexpected: f.unexpected,
      seconds,
      bytes: f.bytes,
      offered_pps: round(f.sent / seconds, 1),
      offered_bits_per_second: Math.round((sender.bytes * 8) / seconds),
      pps: round((f.received - f.duplicates) / seconds, 1),
      bits_per_second: Math.round((f.bytes * 8) / seconds),
      jitter_ms: f.jitterMs,
      delay_ms: f.delay ? { ...f.delay, absolute: r.receiver.sharedClock } : null,
      sender_errors: sender.errors,
      receiver_kernel_drops: r.receiver.kernelDrops ?? null,
      foreign: r.foreign,
      garbled: r.garbled,
      ...(r.receiver.frames && {
        frames: {
          sent: r.receiver.frames.sent,
          complete: r.receiver.frames.complete,
          missed: r.receiver.frames.missed,
          late: r.receiver.frames.late,
          best_ms: r.receiver.frames.bestMs ?? null,
          period_ms: r.receiver.frames.periodMs,
        },
      }),
      ...(r.rtt && { rtt_us: (({ sent: _, ...rest }) => rest)(r.rtt) }),
    },
    intervals: r.receiver.intervals.map(jsonInterval),
  };
}

/** A rate in bits per second, as people read it: `559.9 Mbit/s`. */
export function formatBits(bps: number): string {
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let v = bps;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** Seconds for people: to the millisecond, with at least one decimal (1.0, 0.25, 10.533). */
export function formatSeconds(t: number): string {
  return t.toFixed(3).replace(/0{1,2}$/, '');
}

/** An interval line of the receiver's report. */
export function intervalLine(i: JsonInterval): string {
  const delay = i.delay_ms ? `  delay p50/p99 ${i.delay_ms.p50}/${i.delay_ms.p99} ms` : '';
  return `${formatSeconds(i.start)}-${formatSeconds(i.end)} s  received ${i.received}  lost ${i.lost}/${i.sent} (${twoDigits(i.lost_percent)} %)  ${formatBits(i.bits_per_second)}  jitter ${i.jitter_ms} ms${delay}${i.duplicates ? `  dup ${i.duplicates}` : ''}${i.reordered ? `  reordered ${i.reordered}` : ''}`;
}

/** The summary lines of a run, for people. */
export function summaryLines(doc: BenchDocument): string[] {
  const s = doc.summary;
  const lines = [
    `sent ${s.sent}, received ${s.received - s.duplicates} (+${s.duplicates} duplicates), lost ${s.lost} (${twoDigits(s.lost_percent)} %) in ${s.loss_runs.count} runs (mean ${s.loss_runs.mean}, max ${s.loss_runs.max}), reordered ${s.reordered} (extent max ${s.reorder_extent.max})`,
    `${formatSeconds(s.seconds)} s: offered ${formatBits(s.offered_bits_per_second)}, achieved ${formatBits(s.bits_per_second)} (${s.pps} datagrams/s), jitter ${s.jitter_ms} ms`,
  ];
  if (s.delay_ms) {
    lines.push(
      `one-way delay ${s.delay_ms.absolute ? '' : '(above the least: the ends do not share a clock) '}min ${s.delay_ms.min} / p50 ${s.delay_ms.p50} / p99 ${s.delay_ms.p99} / max ${s.delay_ms.max} ms`,
    );
  }
  if (s.frames) {
    const f = s.frames;
    lines.push(
      `frames: sent ${f.sent}, complete ${f.complete}, missed ${f.missed}, late ${f.late} (more than one ${round(f.period_ms)} ms period past the best, ${f.best_ms} ms)`,
    );
  }
  if (s.rtt_us) {
    const t = s.rtt_us;
    lines.push(
      `round trip µs: min ${t.min}, p50 ${t.p50}, p90 ${t.p90}, p99 ${t.p99}, p99.9 ${t.p999}, max ${t.max} (${t.answered} answered, ${t.lost} lost)`,
    );
  }
  lines.push(
    `sender errors ${s.sender_errors}, receiver kernel drops ${s.receiver_kernel_drops ?? 'unknown'}`,
  );
  return lines;
}
