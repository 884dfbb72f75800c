/**
 * What the main thread and the receive workers of `--workers` say to each other. The main
 * thread owns stdout, stderr, signals and the exit; each worker owns one socket of a
 * SO_REUSEPORT group and formats what it receives into whole records, which it posts in
 * chunks: lines from several workers never interleave.
 */
import type { AccessRule } from '../../lib/index.js';
import type { ListenOptions } from '../commands/listen.js';
import type { Counters } from '../stats.js';

/** A worker's start: the listen options (the access list as its rules) and where to report. */
export interface WorkerData {
  udpkit: 'receiver';
  /** Its place in the group: sockets are bound in order (CPU steering numbers them so). */
  index: number;
  workers: number;
  /** The verb whose hooks to make, and their options (see ReceiverHooks.spec). */
  verb: string;
  spec: unknown;
  opts: Omit<ListenOptions, 'access'> & { access: undefined };
  rules: readonly AccessRule[] | undefined;
  /** With --count: one Int32 of tickets taken, shared by all. */
  claims: SharedArrayBuffer | undefined;
  /** {@link COUNTER_SLOTS} Float64 per worker: its counters, for --stats and the silence. */
  counters: SharedArrayBuffer;
  /** Its output ring: it formats records there, the main thread copies them out. */
  ring: SharedArrayBuffer;
}

/** The bytes of each worker's output ring. */
export const RING_BYTES = 4 * 1024 * 1024;

/** A bench server worker's start. */
export interface BenchWorkerData {
  udpkit: 'bench-server';
  index: number;
  host: string;
  json: boolean;
}

/**
 * Float64 slots per worker in the shared counters, in the order of the names it says when
 * bound: slots 0 and 1 are `received` and `bytes`, kept at each datagram; the rest every 50 ms.
 */
export const COUNTER_SLOTS = 16;

/** Worker to main thread. */
export type WorkerMessage =
  /** Warmed up, ready to bind. */
  | { type: 'ready' }
  | {
      type: 'bound';
      address: string;
      port: number;
      /** The receive buffer the kernel granted. */
      granted: number;
      /** The counters' names, in the order of their slots. */
      names: string[];
    }
  /** It could not start (bind refused, ...): the error to report, as one line. */
  | { type: 'failed'; name: string; code: string | undefined; message: string }
  /** Whole records, formatted: `records` of them in its ring from `start` to `end`. */
  | { type: 'segment'; start: number; end: number; records: number }
  /** Whole records that found no room in the ring: `records` of them in `data` (a copy). */
  | { type: 'out'; data: Uint8Array; records: number }
  /** Whole lines of text (bench server's events), each ending in a newline. */
  | { type: 'lines'; text: string }
  /** It took the last datagram --count allows: everyone stops. */
  | { type: 'count' }
  /** It has stopped, closed its socket and posted all its output: its final counters. */
  | { type: 'done'; counters: Counters };

/** Main thread to worker. */
export type MainMessage =
  /**
   * Bind now, to this port: the one asked for by the first worker, the one it got by the
   * others, in turn (the group numbers its sockets in the order they bind).
   */
  | { type: 'bind'; port: number }
  | { type: 'stop' }
  /** Stop reading (stdout is full) until 'resume'. */
  | { type: 'pause' }
  | { type: 'resume' }
  /** The oldest `count` segments of its ring are copied out: the space is free again. */
  | { type: 'release'; count: number }
  /** Attach the steering program to the group of `workers` sockets. */
  | { type: 'steer' };

/** The value a counter's slot holds when the system cannot tell it. */
export function toSlot(value: number | undefined): number {
  return value === undefined ? Number.NaN : value;
}

/** The counter a slot holds: undefined for NaN. */
export function fromSlot(value: number): number | undefined {
  return Number.isNaN(value) ? undefined : value;
}

/** The port the main thread says to bind, or undefined once it says stop (even before). */
export function bindOrStop(port: Promise<number>, stop: AbortSignal): Promise<number | undefined> {
  if (stop.aborted) return Promise.resolve(undefined);
  return Promise.race([
    port,
    new Promise<undefined>((resolve) =>
      stop.addEventListener('abort', () => resolve(undefined), { once: true }),
    ),
  ]);
}
