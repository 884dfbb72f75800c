/**
 * What both ends of a bench run agree on: the parameters the client sends in its hello, and
 * how each end tells whether the other shares its clock (the same host).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { checkSizes, type SizeDistribution } from './sizes.js';

export const PROTOCOL_VERSION = 1;

/** A run's parameters, as the client's hello carries them. */
export interface BenchParams {
  mode: 'throughput' | 'pingpong';
  /** Bytes per datagram. */
  size: number;
  /** Datagrams per second; 0: as fast as possible (throughput) or one in flight (pingpong). */
  rate: number;
  count?: number | undefined;
  durationMs?: number | undefined;
  intervalMs: number;
  omitMs: number;
  /** The server sends, the client receives. */
  reverse: boolean;
  /** How long the receiver waits after the sender's last datagram before counting losses. */
  graceMs: number;
  /** Isochronous: frames a second and bytes a frame (sent in pieces of at most `size`). */
  isochronous?: { fps: number; bytes: number } | undefined;
  /** Sizes drawn per datagram instead of `size` (then the largest of them). */
  sizeDist?: SizeDistribution | undefined;
}

/**
 * This host, as far as its clock goes: the kernel's boot id (one per boot) with the host
 * name. Two ends that give the same share a clock, so one-way delays are absolute.
 */
export function clockId(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()}/${boot}`;
}

/** How a problem names each number: as the client's options say it. */
const LABELS: Record<string, string> = {
  size: 'size (bytes)',
  rate: 'rate (datagrams/s)',
  count: 'count',
  durationMs: 'duration (ms)',
  intervalMs: 'interval (ms)',
  omitMs: 'omit (ms)',
  graceMs: 'grace (ms)',
};

/**
 * Whether a hello's parameters are ones this end will run: what a client sent may be anything.
 * Returns what is wrong, or undefined.
 */
export function paramsProblem(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return 'no parameters';
  const q = p as Record<string, unknown>;
  const num = (k: string, min: number, max: number, optional = false) => {
    const v = q[k];
    if (optional && (v === undefined || v === null)) return undefined;
    return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
      ? undefined
      : `${LABELS[k] ?? k} is not ${min}-${max}`;
  };
  if (q.mode !== 'throughput' && q.mode !== 'pingpong') return 'mode is not throughput or pingpong';
  if (typeof q.reverse !== 'boolean') return 'reverse is not true or false';
  if (q.isochronous !== undefined) {
    const iso = q.isochronous as { fps?: unknown; bytes?: unknown } | null;
    const size = typeof q.size === 'number' ? q.size : 0;
    if (
      typeof iso !== 'object' ||
      iso === null ||
      typeof iso.fps !== 'number' ||
      !(iso.fps > 0 && iso.fps <= 100_000) ||
      typeof iso.bytes !== 'number' ||
      !(Number.isInteger(iso.bytes) && iso.bytes >= 40 && iso.bytes <= 64 * size)
    )
      return 'isochronous is not frames a second (up to 100000) and 40 bytes or more a frame, in at most 64 pieces';
  }
  if (q.sizeDist !== undefined) {
    try {
      checkSizes(q.sizeDist as SizeDistribution);
    } catch (err) {
      return (err as Error).message;
    }
  }
  return (
    num('size', 32, 65507) ??
    num('rate', 0, 1e9) ??
    num('count', 1, Number.MAX_SAFE_INTEGER, true) ??
    num('durationMs', 1, 2_147_483_647, true) ??
    num('intervalMs', 10, 3_600_000) ??
    num('omitMs', 0, 3_600_000) ??
    num('graceMs', 0, 3_600_000)
  );
}

/**
 * Whether a sender's account of what it sent (the `sent` message) can be taken for a run of
 * these parameters: sequence numbers whole and in order, as many interval boundaries as the
 * run can have. Returns what is wrong, or undefined.
 */
export function sentProblem(m: unknown, p: BenchParams): string | undefined {
  if (typeof m !== 'object' || m === null) return 'no report of what was sent';
  const q = m as Record<string, unknown>;
  const whole = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const { first, end, boundaries } = q;
  if (!whole(first) || !whole(end) || first > end) return 'first and end are not sequence numbers in order';
  // One boundary an interval, and the end; a count-bound run at most one interval a datagram.
  const most =
    p.durationMs !== undefined ? Math.ceil(p.durationMs / p.intervalMs) + 2 : Math.min(end - first, 1e7) + 2;
  if (!Array.isArray(boundaries) || boundaries.length < 2 || boundaries.length > most)
    return 'boundaries are not one an interval';
  let last = first;
  for (const b of boundaries) {
    if (!whole(b) || b < last || b > end) return 'boundaries are not sequence numbers in order';
    last = b;
  }
  if (boundaries[0] !== first || last !== end) return 'boundaries do not run from first to end';
  for (const k of ['bytes', 'errors', 'startMs', 'endMs'])
    if (typeof q[k] !== 'number' || !Number.isFinite(q[k])) return `${k} is not a number`;
  const frames = q.frames as Record<string, unknown> | undefined;
  if (frames !== undefined && !(whole(frames?.first) && whole(frames?.sent))) return 'frames are not counts';
  return undefined;
}
