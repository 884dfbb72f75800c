/** Where a command's bulk output goes, and how a command waits for it at the end. */
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { type BatchWriter, OutputError } from '../lib/index.js';

/**
 * A destination for a BatchWriter writing to stdout. A pipe or socket gets a non-blocking
 * stream, so a reader that stops reading makes writes wait without blocking any thread: a
 * write blocked in the thread pool would even keep the process from exiting. A file, a
 * terminal or /dev/null gets the descriptor itself: a regular file written on the main thread,
 * the others with fs.writev on the thread pool (see BatchWriter).
 */
export function stdoutTarget(): Writable | number {
  return stdoutIsStream() ? new Socket({ fd: 1, readable: false, writable: true }) : 1;
}

/** Whether stdout is a pipe or a socket (written as a stream), rather than a descriptor. */
export function stdoutIsStream(): boolean {
  try {
    const st = fstatSync(1);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false; // a closed stdout: the descriptor's writes will fail and say so
  }
}

/** How long output may still take once a signal has stopped the command. */
export const OUTPUT_GRACE_MS = 1000;

/**
 * Waits until `out` has written everything it holds, however long a slow reader takes, as any
 * Unix filter does. Only a signal cuts the wait short: when `signal` fires during the wait,
 * what is left is abandoned at once; when it had fired already (the signal is what ended the
 * command), the reader gets {@link OUTPUT_GRACE_MS} more. Abandoned records are counted in
 * `out.dropped`.
 *
 * @returns how many records were abandoned
 */
export async function finishOutput(out: BatchWriter, signal: AbortSignal): Promise<number> {
  const wait = signal.aborted ? AbortSignal.timeout(OUTPUT_GRACE_MS) : signal;
  if (await out.flush({ signal: wait })) return 0;
  return out.error ? 0 : out.abandon();
}

/** Errors that mean the reader went away: the end of a pipeline, not a failure. */
const READER_GONE = new Set(['EPIPE', 'ECONNRESET']);

/**
 * The runtime failure to report for an output error, or undefined when there was none or the
 * reader simply went away (`udpkit listen | head -1`).
 */
export function outputFailure(err: Error | undefined): OutputError | undefined {
  if (err === undefined) return undefined;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && READER_GONE.has(code)) return undefined;
  return OutputError.fromSystemError(err);
}

/** An output file named by an option that cannot be written: `cannot write --svg x.svg: no such file or directory (ENOENT)`. */
export function outputFileError(option: string, file: string, err: unknown): OutputError {
  const base = err instanceof Error ? OutputError.fromSystemError(err) : new OutputError(String(err));
  return new OutputError(base.message.replace('cannot write output', `cannot write ${option} ${file}`), {
    cause: err,
  });
}
