/** What a command may touch: its streams and the signal that says stop. Only main.ts makes one. */
import type { Readable, Writable } from 'node:stream';

/** The streams and stop signal a command runs with. */
export interface CliIO {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  /** Fires on Ctrl-C (SIGINT) or SIGTERM; the command stops cleanly and reports. */
  signal: AbortSignal;
  /** The command line's arguments, after the program's name, as Node decoded them. */
  argv: readonly string[];
  /**
   * The same arguments as the bytes this process was given (Node decodes them as UTF-8,
   * losing bytes that are not), where the system tells them; undefined where it does not.
   */
  argvBytes?: readonly Buffer[] | undefined;
}

/** Exit statuses. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** `n datagram(s)`, for people. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Lets a signal that has arrived but not been handled yet reach its handler: a command that
 * finished at the moment of a Ctrl-C (a producer killed by the same Ctrl-C closes stdin) then
 * reports itself stopped, with its summary and exit status, rather than done.
 */
export async function settleSignals(): Promise<void> {
  // The first turn may still be this loop iteration; the second comes after a poll phase,
  // where libuv hands pending signals to their handlers.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}
