/**
 * How `send` reads its input: a file in large chunks, the next one read on the thread pool while
 * the current one is sent, or stdin as the stream it is. Read failures become one-line
 * InputErrors naming the input.
 */
import { close, open, read } from 'node:fs';
import type { Readable } from 'node:stream';
import { AbortError, InputError } from '../lib/index.js';

/** Bytes per read of a file: what one call frames and sends, while the next is read. */
export const FILE_CHUNK = 1 << 20;

/** Options of {@link inputChunks}. */
export interface InputOptions {
  /**
   * A file's chunks alternate between two buffers, so a chunk is valid only until the next is
   * asked for (and records framed in place in it likewise). False gives each chunk its own
   * memory, for a caller that keeps views of them.
   */
  reuse: boolean;
  /** Bytes per read of a file (default {@link FILE_CHUNK}). */
  chunkSize?: number;
}

/**
 * The chunks of the file named (`undefined` or `-`: of `stdin`), in order. A file is read ahead:
 * while the caller handles one chunk, the next is being read on the thread pool.
 *
 * @throws {InputError} `UDP_ERR_INPUT` when the input cannot be read (no such file, permission
 *   denied, a directory), naming it
 * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires, at once, even during a read
 */
export async function* inputChunks(
  file: string | undefined,
  stdin: Readable,
  signal: AbortSignal,
  options: InputOptions,
): AsyncGenerator<Buffer> {
  const fromStdin = file === undefined || file === '-';
  try {
    if (fromStdin) yield* streamChunks(stdin, signal);
    else yield* fileChunks(file, signal, options.chunkSize ?? FILE_CHUNK, options.reuse);
  } catch (err) {
    throw readError(err, fromStdin ? 'stdin' : `'${file}'`);
  }
}

/** The error to report for a failed read of `name`: the system's reason in words. */
function readError(err: unknown, name: string): unknown {
  if (err instanceof AbortError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new InputError(`cannot read ${name}: no such file`, { cause: err });
  if (code === 'EACCES') return new InputError(`cannot read ${name}: permission denied`, { cause: err });
  if (code === 'EISDIR') return new InputError(`cannot read ${name}: it is a directory`, { cause: err });
  return err;
}

async function* streamChunks(input: Readable, signal: AbortSignal): AsyncGenerator<Buffer> {
  const onAbort = () => input.destroy(new AbortError());
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of input) yield chunk as Buffer;
  } finally {
    signal.removeEventListener('abort', onAbort);
    // Release stdin too: a terminal left open would keep the process alive.
    input.destroy();
  }
}

async function* fileChunks(
  path: string,
  signal: AbortSignal,
  chunkSize: number,
  reuse: boolean,
): AsyncGenerator<Buffer> {
  const opening = new Promise<number>((resolve, reject) =>
    open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))),
  );
  let fd: number;
  try {
    fd = await settle((done) => opening.then((v) => done(null, v), done), signal);
  } catch (err) {
    opening.then(
      (late) => close(late, () => {}),
      () => {},
    );
    throw err;
  }
  const buffers = [Buffer.allocUnsafeSlow(chunkSize), Buffer.allocUnsafeSlow(reuse ? chunkSize : 0)];
  let k = 0;
  const readInto = (buf: Buffer) =>
    new Promise<number>((resolve, reject) =>
      read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))),
    );
  let next = readInto(buffers[0] as Buffer);
  try {
    for (;;) {
      const n = await settle<number>((done) => next.then((v) => done(null, v), done), signal);
      if (n === 0) return;
      const chunk = (buffers[k] as Buffer).subarray(0, n);
      k ^= 1;
      // The caller is done with the other buffer's chunk: read the next one into it meanwhile.
      if (!reuse) buffers[k] = Buffer.allocUnsafeSlow(chunkSize);
      next = readInto(buffers[k] as Buffer);
      yield chunk;
    }
  } finally {
    // A read still in flight owns the descriptor until it ends.
    const release = () => close(fd, () => {});
    next.then(release, release);
  }
}

/**
 * The result of a callback-style call, or an AbortError as soon as `signal` fires (what the
 * call then does is left to finish unseen).
 */
function settle<T>(
  start: (done: (err: Error | null, value?: T) => void) => void,
  signal: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(new AbortError());
      return;
    }
    const onAbort = () => reject(new AbortError());
    signal.addEventListener('abort', onAbort, { once: true });
    start((err, value) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value as T);
    });
  });
}
