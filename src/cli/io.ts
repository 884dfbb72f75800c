/** What a command may touch: its streams and the signal that says stop. Only main.ts makes one. */
import type { Readable, Writable } from 'node:stream';

/** The streams and stop signal a command runs with. */
export interface CliIO {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  /** Fires on Ctrl-C (SIGINT) or SIGTERM; the command stops cleanly and reports. */
  signal: AbortSignal;
  /**
   * The command line's arguments as the bytes the shell passed (Node decodes them as UTF-8,
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
