/**
 * `udpkit send`: send each message argument, or each framed record of stdin or a file, as one
 * datagram, and report each one sent.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import {
  AbortError,
  BatchWriter,
  checkSize,
  escapeText,
  FRAMINGS,
  Framer,
  type Framing,
  formatEndpoint,
  InputError,
  type IpFamily,
  maxPayload,
  parseFraming,
  resolveHost,
  UdpSocket,
} from '../../lib/index.js';
import { parseFamilyFlags, parseSendPositionals, UsageError, usage } from '../args.js';
import { type CliIO, EXIT_OK, plural } from '../io.js';

/** What `send` does, once its command line is parsed. */
export interface SendOptions {
  host: string;
  port: number;
  family: IpFamily | undefined;
  /** Messages from the command line; `undefined` means read `file` or stdin. */
  messages: string[] | undefined;
  /** A file to read records from; `undefined` or `-` is stdin. */
  file: string | undefined;
  framing: Framing;
  quiet: boolean;
}

/** The raw option values commander hands over. */
export interface SendFlags {
  framing?: string;
  file?: string;
  quiet?: boolean;
  ipv4?: boolean;
  ipv6?: boolean;
}

export const DEFAULT_SEND_HOST = '127.0.0.1';
export const DEFAULT_SEND_PORT = 12345;

/**
 * Parses `send`'s positionals and flags. Pure.
 *
 * @throws {UsageError} naming the bad value and what is allowed
 */
export function parseSendArgs(positionals: readonly string[], flags: SendFlags): SendOptions {
  const { host, port, messages } = parseSendPositionals(positionals);
  const family = parseFamilyFlags(flags);
  if (port === 0) throw new UsageError('port 0 is not a valid destination (1-65535)');
  if (messages.length > 0 && flags.file !== undefined) {
    throw new UsageError('give messages as arguments or with --file, not both');
  }
  if (messages.length > 0 && flags.framing !== undefined) {
    throw new UsageError('--framing applies to stdin or --file, not to message arguments');
  }
  return {
    host: host ?? (family === 'IPv6' ? '::1' : DEFAULT_SEND_HOST),
    port: port ?? DEFAULT_SEND_PORT,
    family,
    messages: messages.length > 0 ? messages : undefined,
    file: flags.file,
    framing: usage(() => parseFraming(flags.framing ?? 'line')),
    quiet: flags.quiet ?? false,
  };
}

/** Runs `send`; resolves to the exit status. Resolve, size and send failures reject. */
export async function runSend(opts: SendOptions, io: CliIO): Promise<number> {
  const target = await resolveHost(opts.host, { family: opts.family, signal: io.signal });
  const to = formatEndpoint(target.address, opts.port);
  const limit = maxPayload(target.family);
  // Arguments are all known up front: check them all before sending any.
  const argRecords = opts.messages?.map((m) => Buffer.from(m, 'utf8'));
  for (const record of argRecords ?? []) checkSize(record.length, target.family);

  const socket = new UdpSocket({ type: target.family === 'IPv6' ? 'udp6' : 'udp4' });
  const out = new BatchWriter(io.stdout);
  const send = async (record: Buffer) => {
    await socket.send(record, opts.port, target.address);
    if (!opts.quiet) out.write(`Sent message: ${escapeText(record)} to ${to}\n`);
  };
  try {
    if (argRecords) {
      for (const record of argRecords) {
        if (io.signal.aborted) break;
        await send(record);
      }
    } else {
      await sendInput(opts, io, new Framer(opts.framing, limit), send);
    }
  } catch (err) {
    if (!(err instanceof AbortError && io.signal.aborted)) throw err;
  } finally {
    await socket.close();
    await out.flush();
  }
  if (io.signal.aborted) {
    io.stderr.write(
      `udpkit send: sent ${plural(socket.packetsSent, 'datagram')} (${plural(socket.bytesSent, 'byte')})\n`,
    );
  }
  return EXIT_OK;
}

/** Reads stdin or the file, frames it and sends each record in order. */
async function sendInput(
  opts: SendOptions,
  io: CliIO,
  framer: Framer,
  send: (record: Buffer) => Promise<void>,
): Promise<void> {
  const fromStdin = opts.file === undefined || opts.file === '-';
  const input: Readable = fromStdin ? io.stdin : createReadStream(opts.file as string);
  const name = fromStdin ? 'stdin' : `'${opts.file}'`;
  if (fromStdin && io.stdin.isTTY) {
    io.stderr.write(
      `Reading messages from stdin, one datagram per ${opts.framing === 'nul' ? 'NUL-terminated record' : 'line'}; Ctrl-D to end.\n`,
    );
  }
  const onAbort = () => input.destroy(new AbortError());
  io.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of input) {
      for (const record of framer.push(chunk as Buffer)) await send(record);
    }
    for (const record of framer.end()) await send(record);
  } catch (err) {
    if (err instanceof AbortError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`cannot read ${name}: no such file`, { cause: err });
    if (code === 'EACCES') throw new InputError(`cannot read ${name}: permission denied`, { cause: err });
    if (code === 'EISDIR') throw new InputError(`cannot read ${name}: it is a directory`, { cause: err });
    throw err;
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    // Release stdin too: a terminal left open would keep the process alive.
    input.destroy();
  }
}

/** The `send` subcommand. */
export function sendCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command('send')
    .summary('send messages as datagrams and report each one (the classic UDP client)')
    .description(
      `Send each message as one datagram to 127.0.0.1:${DEFAULT_SEND_PORT}, or to the target
given first, and print 'Sent message: <text> to <address>' for each.

The first positionals name the target only when they look like one:
  - a host followed by a port number:  udpkit send 10.0.0.5 9000 hi
  - a single host:port or [v6]:port:    udpkit send [::1]:9000 hi
Otherwise every positional is a message to the default target:
  udpkit send Hello World UDP           three datagrams to 127.0.0.1:${DEFAULT_SEND_PORT}
To send messages that look like a target, name the target first.

With no messages, reads stdin (or --file), one datagram per line.`,
    )
    .argument('[target-and-messages...]', '[host port | host:port] then messages')
    .addOption(
      new Option(
        '--framing <framing>',
        `how stdin or --file becomes datagrams: ${FRAMINGS.join(', ')} (default: line)`,
      ),
    )
    .option('--file <path>', 'read messages from this file instead of stdin (- is stdin)')
    .option('-4', 'IPv4 only')
    .option('-6', 'IPv6 only (default target ::1)')
    .option('-q, --quiet', "don't print a line per message sent")
    .addHelpText(
      'after',
      `
Framings (stdin and --file):
  line   one datagram per line; the newline and a trailing \\r are not sent (default)
  nul    one datagram per NUL-terminated record (find -print0, xargs -0)
  whole  all of the input as one datagram
  hex    one datagram per line of hex digits, spaces allowed: 48 65 6c 6c 6f

Examples:
  udpkit send Hello World UDP            three datagrams to 127.0.0.1:12345
  udpkit send 127.0.0.1 9000 hi          nc order: host, port, then messages
  udpkit send localhost:9000 hi
  printf 'a\\nb\\n' | udpkit send [::1]:9000
  udpkit send 127.0.0.1 9000 --framing whole --file packet.bin

A message over 65507 bytes (IPv4) or 65527 (IPv6) is an error: nothing after it is sent.`,
    )
    .action(async (positionals: string[], flags: Record<string, unknown>) => {
      const opts = parseSendArgs(positionals, {
        ...(flags as SendFlags),
        ipv4: flags['4'] === true,
        ipv6: flags['6'] === true,
      });
      setExit(await runSend(opts, io));
    });
}
