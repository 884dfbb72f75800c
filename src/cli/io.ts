/** What a command may touch: its streams and the signal that says stop. Only main.ts makes one. */
import type { Readable, Writable } from 'node:stream';

/** The streams and stop signal a command runs with. */
export interface CliIO {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  /** Fires on Ctrl-C (SIGINT) or SIGTERM; the command stops cleanly and reports. */
  signal: AbortSignal;
}

/** Exit statuses. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** `n datagram(s)`, for people. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** How long a command waits at exit for stdout to take what is left. */
export const OUTPUT_DEADLINE_MS = 2000;
