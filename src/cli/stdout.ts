/** Where a command's bulk output goes: the right kind of handle for what stdout is. */
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';

/**
 * A destination for a BatchWriter writing to stdout. A pipe or socket gets a non-blocking
 * stream, so a reader that stops reading makes writes wait (and udpkit count what does not
 * fit) without blocking any thread: a write blocked in the thread pool would even keep the
 * process from exiting. A file, a terminal or /dev/null gets the descriptor itself, written
 * with fs.writev on the thread pool.
 */
export function stdoutTarget(): Writable | number {
  try {
    const st = fstatSync(1);
    if (st.isFIFO() || st.isSocket()) return new Socket({ fd: 1, readable: false, writable: true });
  } catch {
    // A closed stdout: the descriptor's writes will fail and say so.
  }
  return 1;
}
