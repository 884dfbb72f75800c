/**
 * Input framing: how a byte stream (stdin, a file) is cut into datagrams. Pure and
 * incremental: feed chunks as they arrive, take the complete records back.
 */
import { InputError, InvalidArgumentError, MessageTooLargeError } from './errors.js';

/** The names of the framings. */
export const FRAMINGS = ['line', 'nul', 'whole', 'hex'] as const;
/**
 * How input becomes datagrams:
 * - `line`: one datagram per line; the `\n` and a trailing `\r` are not sent
 * - `nul`: one datagram per NUL-terminated record
 * - `whole`: all of the input as one datagram
 * - `hex`: one datagram per line of hex digits (whitespace between them allowed)
 */
export type Framing = (typeof FRAMINGS)[number];

/**
 * Checks a framing name.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` naming the allowed framings
 */
export function parseFraming(name: string): Framing {
  if ((FRAMINGS as readonly string[]).includes(name)) return name as Framing;
  throw new InvalidArgumentError(`unknown framing '${name}' (allowed: ${FRAMINGS.join(', ')})`);
}

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === CR || c === 0x0b || c === 0x0c;
}

/**
 * Cuts a byte stream into datagrams. A record over `maxSize` bytes is not held in memory: the
 * framer counts its length and throws a {@link MessageTooLargeError} naming it when the record
 * ends, so every record before it can be sent and none after it is.
 */
export class Framer {
  readonly framing: Framing;
  readonly maxSize: number;
  #parts: Buffer[] = [];
  #partBytes = 0;
  /** Bytes of the current record past the point where it was known to be too large. */
  #overflowBytes = -1;
  #overflowHexDigits = 0;
  #lastByte = -1;
  #records = 0;
  #ended = false;
  /** An error found mid-chunk, thrown by the next call so the records before it go first. */
  #failed: Error | undefined;

  /**
   * @param framing how to cut the input
   * @param maxSize the largest datagram allowed, in bytes
   */
  constructor(framing: Framing, maxSize: number) {
    this.framing = parseFraming(framing);
    if (!Number.isInteger(maxSize) || maxSize < 0) {
      throw new InvalidArgumentError(`maxSize ${maxSize} is not a non-negative integer`);
    }
    this.maxSize = maxSize;
  }

  /** Records framed so far. */
  get records(): number {
    return this.#records;
  }

  /**
   * Feeds a chunk of input; returns the records it completed, in order. Records that lie wholly
   * in the chunk are views of it (no copy): don't change a chunk after pushing it. When a record in the
   * chunk is bad, the records before it are returned and the next call (`push` or `end`)
   * throws, so a caller sends everything up to the bad record and nothing after it.
   *
   * @throws {MessageTooLargeError} `UDP_ERR_MSG_TOO_LARGE` when a completed record is too large
   * @throws {InputError} `UDP_ERR_INPUT` on a `hex` line that is not hex
   */
  push(chunk: Uint8Array): Buffer[] {
    if (this.#failed) throw this.#failed;
    if (this.#ended) throw new InvalidArgumentError('push after end');
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.framing === 'whole') {
      this.#append(buf);
      return [];
    }
    const delimiter = this.framing === 'nul' ? NUL : LF;
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const at = buf.indexOf(delimiter, start);
      if (at < 0) break;
      // A record wholly inside this chunk is a view of it, not a copy.
      const whole = this.#parts.length === 0 && this.#overflowBytes < 0 && at - start <= this.#rawLimit();
      if (whole) this.#lastByte = at > start ? (buf[at - 1] as number) : -1;
      else this.#append(buf.subarray(start, at));
      try {
        out.push(this.#takeRecord(whole ? buf.subarray(start, at) : undefined));
      } catch (err) {
        if (out.length === 0) throw err;
        this.#failed = err as Error;
        return out;
      }
      start = at + 1;
    }
    if (start < buf.length) this.#append(buf.subarray(start));
    return out;
  }

  /**
   * Ends the input; returns the last record: an unterminated final line or record, or for
   * `whole` all of the input (empty input makes one empty datagram).
   *
   * @throws the errors of {@link Framer.push}
   */
  end(): Buffer[] {
    if (this.#failed) throw this.#failed;
    if (this.#ended) return [];
    this.#ended = true;
    const pending = this.#partBytes > 0 || this.#overflowBytes >= 0;
    if (this.framing === 'whole' || pending) return [this.#takeRecord()];
    return [];
  }

  /** The raw bytes a record may hold before it is surely too large. */
  #rawLimit(): number {
    // A hex line spends at least two characters per byte, and may space them out.
    return this.framing === 'hex'
      ? this.maxSize * 3 + 2
      : this.framing === 'line'
        ? this.maxSize + 1
        : this.maxSize;
  }

  #append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#lastByte = bytes[bytes.length - 1] as number;
    if (this.#overflowBytes >= 0) {
      this.#countOverflow(bytes);
      return;
    }
    if (this.#partBytes + bytes.length > this.#rawLimit()) {
      // Too large already: keep counting, stop holding.
      this.#overflowBytes = 0;
      this.#overflowHexDigits = 0;
      for (const part of this.#parts) this.#countOverflow(part);
      this.#parts = [];
      this.#partBytes = 0;
      this.#countOverflow(bytes);
      return;
    }
    // Copy: the caller may reuse its chunk.
    this.#parts.push(Buffer.from(bytes));
    this.#partBytes += bytes.length;
  }

  #countOverflow(bytes: Buffer): void {
    this.#overflowBytes += bytes.length;
    if (this.framing === 'hex') {
      for (const c of bytes) if (isHexDigit(c)) this.#overflowHexDigits++;
    }
  }

  /** Ends the current record: `direct` when it lies wholly in one chunk, else the parts held. */
  #takeRecord(direct?: Buffer): Buffer {
    const n = ++this.#records;
    const lastByte = this.#lastByte;
    this.#lastByte = -1;
    if (this.#overflowBytes >= 0) {
      let size = this.#overflowBytes;
      if (this.framing === 'line' && lastByte === CR) size--;
      if (this.framing === 'hex') size = Math.floor(this.#overflowHexDigits / 2);
      this.#overflowBytes = -1;
      this.#overflowHexDigits = 0;
      throw this.#tooLarge(n, size);
    }
    let record =
      direct ??
      (this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#partBytes));
    this.#parts = [];
    this.#partBytes = 0;
    if (this.framing === 'line' && record.length > 0 && record[record.length - 1] === CR) {
      record = record.subarray(0, record.length - 1);
    }
    if (this.framing === 'hex') record = decodeHexLine(record, n);
    if (record.length > this.maxSize) throw this.#tooLarge(n, record.length);
    return record;
  }

  #tooLarge(n: number, size: number): MessageTooLargeError {
    const where =
      this.framing === 'whole' ? 'the input' : `message ${n}${this.framing === 'nul' ? '' : ` (line ${n})`}`;
    return new MessageTooLargeError(
      `${where} is ${size} bytes, over the ${this.maxSize}-byte limit`,
      size,
      this.maxSize,
    );
  }
}

/**
 * Decodes one line of hex: pairs of digits, optionally separated by whitespace.
 *
 * @throws {InputError} `UDP_ERR_INPUT` naming the line and the offending text
 */
export function decodeHexLine(line: Uint8Array, lineNumber = 1): Buffer {
  const out = Buffer.allocUnsafe(line.length >> 1);
  let n = 0;
  let high = -1;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as number;
    if (isSpace(c)) continue;
    if (!isHexDigit(c)) {
      const shown = Buffer.from(line.subarray(i, i + 8))
        .toString('latin1')
        .replace(/[^\x20-\x7e]/g, '?');
      throw new InputError(`line ${lineNumber}: '${shown}' is not hex (expected pairs of 0-9a-f)`);
    }
    const v = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
    if (high < 0) high = v;
    else {
      out[n++] = (high << 4) | v;
      high = -1;
    }
  }
  if (high >= 0) throw new InputError(`line ${lineNumber}: odd number of hex digits`);
  return out.subarray(0, n);
}
