/**
 * `udpkit send --wait`: send the messages, then wait for the replies and print each in
 * listen's formats; send again after a --timeout, up to --retries times. The socket is
 * connected to the target, so an ICMP port unreachable fails the run at once.
 */
import {
  AbortError,
  BatchWriter,
  createByteFormatter,
  type Endpoint,
  formatEndpoint,
  type OutputFormat,
  TimeoutError,
  UdpSocket,
  type UdpSocketOptions,
} from '../../lib/index.js';
import { parseCount, parseDuration, UsageError } from '../args.js';
import { type CliIO, EXIT_OK, settleSignals } from '../io.js';
import { finishOutput, outputFailure, stdoutTarget } from '../stdout.js';

/** What --wait and its options ask for. */
export interface WaitOptions {
  /** Replies to wait for; undefined: one per datagram sent. */
  expect: number | undefined;
  /** Milliseconds to wait for the replies after each sending. */
  timeout: number;
  /** Sendings after the first, each after a timeout. */
  retries: number;
  format: OutputFormat;
  timestamps: boolean;
}

/** The raw values of --wait's options. */
export interface WaitFlags {
  wait?: boolean;
  expect?: string;
  timeout?: string;
  retries?: string;
  format?: string;
  timestamps?: boolean;
}

/** The default of --timeout. */
export const DEFAULT_WAIT_TIMEOUT_MS = 1000;

/**
 * Parses --wait and its options; undefined without --wait. Pure.
 *
 * @throws {UsageError} on a bad value, or an option of --wait without it
 */
export function parseWaitFlags(flags: WaitFlags, format: OutputFormat | undefined): WaitOptions | undefined {
  if (!flags.wait) {
    const stray = (['expect', 'timeout', 'retries'] as const).find((k) => flags[k] !== undefined);
    if (stray) throw new UsageError(`--${stray} applies to replies: use it with --wait`);
    if (format !== undefined || flags.timestamps) {
      throw new UsageError('--format and --timestamps apply to replies: use them with --wait');
    }
    return undefined;
  }
  let retries = 0;
  if (flags.retries !== undefined) {
    if (!/^\d+$/.test(flags.retries.trim())) {
      throw new UsageError(`retries '${flags.retries}' is not a whole number (0 or more)`);
    }
    retries = Number(flags.retries);
  }
  return {
    expect: flags.expect === undefined ? undefined : parseCount(flags.expect, 'expect'),
    timeout: flags.timeout === undefined ? DEFAULT_WAIT_TIMEOUT_MS : parseDuration(flags.timeout, 'timeout'),
    retries,
    format: format ?? 'text',
    timestamps: flags.timestamps ?? false,
  };
}

/**
 * Sends `records` to `target:port` from a socket connected there, and prints the replies. A
 * target that is a group or a broadcast address (`anyone`) is not connected to: whoever
 * answers, from its own address, is heard.
 * Resolves to the exit status once the expected replies came; rejects with a
 * {@link TimeoutError} when they did not, or with the ICMP error the target answered.
 */
export async function runRequest(
  target: Endpoint,
  records: readonly Buffer[],
  wait: WaitOptions,
  io: CliIO,
  socketOptions: UdpSocketOptions,
  prepare: (socket: UdpSocket) => Promise<void>,
  anyone = false,
): Promise<number> {
  const to = formatEndpoint(target.address, target.port);
  const expect = wait.expect ?? records.length;
  // json says where each reply arrived, as listen's does (native transport).
  // Many requests at once come back as a burst: room for it, as listen has (a reply the kernel
  // drops for want of it is said below).
  const socket = new UdpSocket({
    ...socketOptions,
    metadata: wait.format === 'json',
    ...(records.length > 16 && { recvBufferSize: 4 * 1024 * 1024 }),
  });
  const out = new BatchWriter(stdoutTarget());
  const format = createByteFormatter(wait.format, { timestamps: wait.timestamps });
  let replies = 0;
  let kernelDrops: number | undefined;
  let failure: Error | undefined;
  let wake = () => {};
  const stopErrors = socket.onReceiveError((err) => {
    failure ??= err;
    wake();
  });
  try {
    await prepare(socket);
    if (anyone) {
      if (socket.state === 'unbound') await socket.bind({ signal: io.signal });
    } else await socket.connect(target.port, target.address, { signal: io.signal });
    // Exactly `expect` replies are taken: more that came stay unread, on either transport.
    const consuming = socket.consume(
      (msg) => {
        format(msg, out);
        out.commit();
        if (++replies >= expect) wake();
      },
      { signal: io.signal, limit: expect },
    );
    consuming.catch(() => {});
    for (let attempt = 0; attempt <= wait.retries && replies < expect && !failure; attempt++) {
      try {
        if (anyone) await socket.sendEach(records as Buffer[], target.port, target.address);
        else await socket.sendEach(records as Buffer[]);
      } catch (err) {
        failure ??= err as Error; // an ICMP report of an earlier sending
        break;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait.timeout);
        io.signal.addEventListener('abort', done, { once: true });
        function done() {
          clearTimeout(timer);
          io.signal.removeEventListener('abort', done);
          wake = () => {};
          resolve();
        }
        wake = done;
        if (replies >= expect || failure || io.signal.aborted) done();
      });
      if (io.signal.aborted) break;
    }
  } finally {
    stopErrors();
    kernelDrops = socket.kernelDrops;
    await socket.close();
    await finishOutput(out, io.signal);
    await settleSignals();
  }
  const output = outputFailure(out.error);
  if (output) throw output;
  if (io.signal.aborted) {
    io.stderr.write(
      `udpkit send: stopped with ${replies} of ${expect} ${replies === 1 ? 'reply' : 'replies'}\n`,
    );
    throw new AbortError(undefined, { cause: io.signal.reason });
  }
  if (failure) throw failure;
  if (replies < expect) {
    const tries = wait.retries + 1;
    throw new TimeoutError(
      `${replies === 0 ? 'no reply' : `${replies} of ${expect} replies`} from ${to} within ${formatMs(wait.timeout)}${
        tries > 1 ? ` (sent ${tries} times)` : ''
      }${kernelDrops ? `; the kernel dropped ${kernelDrops} before they could be read (receive buffer full)` : ''}`,
    );
  }
  return EXIT_OK;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
