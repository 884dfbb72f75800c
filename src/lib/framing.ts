/**
 * Input framing: how a byte stream (stdin, a file) is cut into datagrams. Pure and
 * incremental: feed chunks as they arrive, take the complete records back.
 */
import { InputError, InvalidArgumentError, MessageTooLargeError } from './errors.js';
import { escapeText } from './format.js';

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

/** The value of a hex digit, or -1 for any other byte. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === CR || c === 0x0b || c === 0x0c;
}

/** The error for a `hex` line with a character that is not hex, showing up to 8 bytes from it. */
function notHex(lineNumber: number, shown: Uint8Array): InputError {
  // Escaped as text output escapes it: a control byte or invalid UTF-8 is shown as \xNN.
  const text = escapeText(shown.subarray(0, 8));
  return new InputError(`line ${lineNumber}: '${text}' is not hex (expected pairs of 0-9a-f)`);
}

/**
 * The records one {@link Framer.pushRecords} or {@link Framer.endRecords} completed, in order,
 * with no object per record: first `carried`, when there is one, then record i of `data` is the
 * bytes `data[offsets[i], offsets[i] + lengths[i])` for i below `count`. For `line` and `nul`,
 * `data` is the chunk pushed itself (no copy). Valid until the framer's next call: it reuses
 * the arrays.
 */
export interface FramedRecords {
  /**
   * A record not in `data`, which comes before those in it: one that began in an earlier chunk
   * and ended in this one (a copy), or the last record, from `endRecords`.
   */
  readonly carried: Buffer | undefined;
  /** The memory the records lie in. */
  readonly data: Buffer;
  /** Where record i starts in `data`; at least `count` long. */
  readonly offsets: Uint32Array;
  /** The length of record i (a `line`'s delimiter and trailing `\r` not counted); at least `count` long. */
  readonly lengths: Uint32Array;
  /** How many records lie in `data`. */
  readonly count: number;
}

/** The records of `framed` as Buffers, the ones in its data as views of it. */
function recordList(framed: FramedRecords): Buffer[] {
  const { carried, data, offsets, lengths, count } = framed;
  const out: Buffer[] = carried === undefined ? [] : [carried];
  for (let i = 0; i < count; i++) {
    const at = offsets[i] as number;
    out.push(data.subarray(at, at + (lengths[i] as number)));
  }
  return out;
}

const EMPTY = Buffer.alloc(0);
const NO_OFFSETS = new Uint32Array(0);

/**
 * Cuts a byte stream into datagrams. A record over `maxSize` bytes fails at the byte that takes
 * it over the limit, in the `push` that brings that byte, and is neither held nor read to its
 * end: an endless source (`/dev/zero`, a stream with no delimiter) fails after `maxSize + 1`
 * bytes instead of being counted forever. Likewise a `hex` line fails at its first character
 * that is not hex. Every record before the bad one is returned first, so a caller can send
 * them all and none after it.
 */
export class Framer {
  readonly framing: Framing;
  readonly maxSize: number;
  /** Copies of the current record's bytes so far (`line`, `nul`, `whole`). */
  #parts: Buffer[] = [];
  #partBytes = 0;
  /** Whether the current record has any input yet, so `end()` knows an unterminated one. */
  #started = false;
  /** `hex`: the current line decoded so far; never more than `maxSize` bytes. */
  #hexOut: Buffer | undefined;
  #hexBytes = 0;
  /** `hex`: the value of a digit waiting for the second of its pair, or -1. */
  #hexHigh = -1;
  /** `hex`: the text shown for a character that is not hex, while it waits for up to 8 bytes. */
  #badHex: Buffer | undefined;
  #records = 0;
  /** The arrays of {@link FramedRecords}, reused and grown as chunks need. */
  #offsets = NO_OFFSETS;
  #lengths = NO_OFFSETS;
  #ended = false;
  /** The error that stopped the input; thrown by every later call. */
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

  /** Records framed (returned) so far. */
  get records(): number {
    return this.#records;
  }

  /**
   * Feeds a chunk of input; returns the records it completed, in order. Records that lie wholly
   * in the chunk are views of it (no copy): don't change a chunk after pushing it. When a record
   * goes bad in this chunk, the records before it are returned and the next call (`push` or
   * `end`) throws; when there are none, this call throws. Either way every later call throws
   * the same error, so a caller sends everything up to the bad record and nothing after it.
   *
   * @throws {MessageTooLargeError} `UDP_ERR_MSG_TOO_LARGE` as soon as a record passes `maxSize`
   * bytes (for `hex`, decoded bytes; for `line`, not counting a trailing `\r`). The record is not
   * read further, so its `size` is the bytes counted so far, `maxSize + 1`, not its full size.
   * @throws {InputError} `UDP_ERR_INPUT` at a `hex` character that is not hex, or at the end of a
   * `hex` line with an odd number of digits
   */
  push(chunk: Uint8Array): Buffer[] {
    const buf = this.#accept(chunk);
    if (this.framing === 'line' || this.framing === 'nul') return recordList(this.#frameDelimited(buf));
    return this.#pushListed(buf);
  }

  /**
   * Like {@link Framer.push}, with the records as offsets and lengths into the chunk rather than
   * a Buffer each: for senders of many small records (see `UdpSocket.sendRecords`). A record
   * that began in an earlier chunk comes first, as `carried`. The same records, limits and
   * errors as `push`; for `hex` and `whole`, `data` is a copy holding the decoded records.
   *
   * @throws the errors of {@link Framer.push}
   */
  pushRecords(chunk: Uint8Array): FramedRecords {
    const buf = this.#accept(chunk);
    if (this.framing === 'line' || this.framing === 'nul') return this.#frameDelimited(buf);
    return this.#pack(this.#pushListed(buf));
  }

  /** The chunk as a Buffer, once the framer may take one. */
  #accept(chunk: Uint8Array): Buffer {
    if (this.#failed) throw this.#failed;
    if (this.#ended) throw new InvalidArgumentError('push after end');
    return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }

  /**
   * `line` and `nul`: the records of `buf`, in place. A record left unfinished by an earlier
   * chunk is finished first (`carried`); the rest of the chunk after the last delimiter is held
   * for the next. On a bad record, those before it are returned and the next call throws.
   */
  #frameDelimited(buf: Buffer): FramedRecords {
    const delimiter = this.framing === 'nul' ? NUL : LF;
    const line = this.framing === 'line';
    const max = this.maxSize;
    let carried: Buffer | undefined;
    let count = 0;
    let start = 0;
    try {
      let at = buf.indexOf(delimiter, 0);
      if (at >= 0 && this.#parts.length > 0) {
        carried = this.#endRecord(buf, 0, at);
        start = at + 1;
        at = buf.indexOf(delimiter, start);
      }
      let offsets = this.#offsets;
      let lengths = this.#lengths;
      while (at >= 0) {
        let len = at - start;
        // A line one byte over passes when that byte is its trailing \r, which is not sent.
        if (len > max && !(line && len === max + 1 && buf[at - 1] === CR)) throw this.#tooLarge();
        if (line && len > 0 && buf[at - 1] === CR) len--;
        if (count === offsets.length) {
          this.#grow(count * 2 || 1024);
          offsets = this.#offsets;
          lengths = this.#lengths;
        }
        offsets[count] = start;
        lengths[count] = len;
        count++;
        this.#records++;
        start = at + 1;
        at = buf.indexOf(delimiter, start);
      }
      this.#feed(buf, start, buf.length, false);
    } catch (err) {
      this.#failed = err as Error;
      if (count === 0 && carried === undefined) throw err;
    }
    return { carried, data: buf, offsets: this.#offsets, lengths: this.#lengths, count };
  }

  /** Makes room for `n` records in the reused arrays. */
  #grow(n: number): void {
    const offsets = new Uint32Array(n);
    const lengths = new Uint32Array(n);
    offsets.set(this.#offsets);
    lengths.set(this.#lengths);
    this.#offsets = offsets;
    this.#lengths = lengths;
  }

  /** `records` packed into one buffer, as {@link FramedRecords}. */
  #pack(records: Buffer[]): FramedRecords {
    const count = records.length;
    if (count > this.#offsets.length) this.#grow(Math.max(count, 16));
    let at = 0;
    for (let i = 0; i < count; i++) {
      this.#offsets[i] = at;
      this.#lengths[i] = (records[i] as Buffer).length;
      at += (records[i] as Buffer).length;
    }
    const data = count === 1 ? (records[0] as Buffer) : count === 0 ? EMPTY : Buffer.concat(records, at);
    return { carried: undefined, data, offsets: this.#offsets, lengths: this.#lengths, count };
  }

  /** `hex` and `whole`: the records `buf` completes, each its own Buffer. */
  #pushListed(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    try {
      if (this.framing === 'whole') {
        this.#feed(buf, 0, buf.length, false);
        return out;
      }
      let start = 0;
      for (;;) {
        const at = buf.indexOf(LF, start);
        if (at < 0) break;
        out.push(this.#endRecord(buf, start, at));
        start = at + 1;
      }
      this.#feed(buf, start, buf.length, false);
      return out;
    } catch (err) {
      this.#failed = err as Error;
      if (out.length === 0) throw err;
      return out;
    }
  }

  /**
   * {@link Framer.end}, as {@link FramedRecords}: the last record, if any, is `carried`.
   *
   * @throws the errors of {@link Framer.push}
   */
  endRecords(): FramedRecords {
    const [last] = this.end();
    return { carried: last, data: EMPTY, offsets: this.#offsets, lengths: this.#lengths, count: 0 };
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
    if (this.framing !== 'whole' && !this.#started) return [];
    try {
      return [this.#endRecord(Buffer.alloc(0), 0, 0)];
    } catch (err) {
      this.#failed = err as Error;
      throw err;
    }
  }

  /** Ends the current record with `buf[start, end)`, its last bytes, and returns it. */
  #endRecord(buf: Buffer, start: number, end: number): Buffer {
    let record: Buffer;
    if (this.framing === 'hex') {
      this.#feedHex(buf, start, end, true);
      if (this.#hexHigh >= 0) throw new InputError(`line ${this.#records + 1}: odd number of hex digits`);
      // Copy: the decoding buffer is reused for the next line.
      record = Buffer.from((this.#hexOut as Buffer).subarray(0, this.#hexBytes));
      this.#hexBytes = 0;
    } else if (this.#parts.length === 0) {
      // A record wholly inside this chunk is a view of it, not a copy.
      if (this.#passesLimit(0, buf, start, end)) throw this.#tooLarge();
      record = buf.subarray(start, end);
    } else {
      this.#feed(buf, start, end, true);
      record =
        this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#partBytes);
      this.#parts = [];
      this.#partBytes = 0;
    }
    if (this.framing === 'line' && record.length > 0 && record[record.length - 1] === CR) {
      record = record.subarray(0, record.length - 1);
    }
    this.#started = false;
    this.#records++;
    return record;
  }

  /** Takes `buf[start, end)` into the current record, failing once it passes the limit. */
  #feed(buf: Buffer, start: number, end: number, lineEnds: boolean): void {
    if (this.framing === 'hex') {
      this.#feedHex(buf, start, end, lineEnds);
      return;
    }
    if (start === end) return;
    this.#started = true;
    if (this.#passesLimit(this.#partBytes, buf, start, end)) throw this.#tooLarge();
    // Copy: the caller may reuse its chunk.
    this.#parts.push(Buffer.from(buf.subarray(start, end)));
    this.#partBytes += end - start;
  }

  /** Whether `held` bytes followed by `buf[start, end)` take the record past the limit. */
  #passesLimit(held: number, buf: Buffer, start: number, end: number): boolean {
    const total = held + end - start;
    if (total <= this.maxSize) return false;
    if (this.framing !== 'line' || total > this.maxSize + 1) return true;
    // One byte over: a trailing \r is not sent, so a \r there passes only if a byte follows it;
    // the next byte (or the end of the line) decides. Nothing new leaves the held \r undecided.
    return start < end && buf[end - 1] !== CR;
  }

  /** `hex`: decodes `buf[start, end)` into the current line, failing at once on bad input. */
  #feedHex(buf: Buffer, start: number, end: number, lineEnds: boolean): void {
    if (this.#badHex) {
      this.#collectBadHex(buf.subarray(start, end), lineEnds);
      return;
    }
    if (start < end) this.#started = true;
    this.#hexOut ??= Buffer.allocUnsafe(this.maxSize);
    const out = this.#hexOut;
    let n = this.#hexBytes;
    let high = this.#hexHigh;
    for (let i = start; i < end; i++) {
      const c = buf[i] as number;
      const v = hexValue(c);
      if (v < 0) {
        if (isSpace(c)) continue;
        this.#badHex = Buffer.alloc(0);
        this.#collectBadHex(buf.subarray(i, end), lineEnds);
        return;
      }
      if (high < 0) high = v;
      else {
        if (n === this.maxSize) throw this.#tooLarge();
        out[n++] = (high << 4) | v;
        high = -1;
      }
    }
    this.#hexBytes = n;
    this.#hexHigh = high;
  }

  /**
   * `hex`: gathers the text to show for a bad character, up to 8 bytes of its line, then throws.
   * Only when the chunk ends sooner does it wait for the next one, so the message does not
   * depend on where the input was cut.
   */
  #collectBadHex(bytes: Buffer, lineEnds: boolean): void {
    const shown = Buffer.concat([this.#badHex as Buffer, bytes.subarray(0, 8)]).subarray(0, 8);
    this.#badHex = shown;
    if (shown.length < 8 && !lineEnds) return;
    throw notHex(this.#records + 1, shown);
  }

  /** The error for the current record, which has just passed the limit. */
  #tooLarge(): MessageTooLargeError {
    const n = this.#records + 1;
    const where =
      this.framing === 'whole' ? 'the input' : `message ${n}${this.framing === 'nul' ? '' : ` (line ${n})`}`;
    const soFar = this.maxSize + 1;
    return new MessageTooLargeError(
      `${where} is over the ${this.maxSize}-byte limit (${soFar} byte${soFar === 1 ? '' : 's'} so far)`,
      soFar,
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
    const v = hexValue(c);
    if (v < 0) {
      if (isSpace(c)) continue;
      throw notHex(lineNumber, line.subarray(i, i + 8));
    }
    if (high < 0) high = v;
    else {
      out[n++] = (high << 4) | v;
      high = -1;
    }
  }
  if (high >= 0) throw new InputError(`line ${lineNumber}: odd number of hex digits`);
  return out.subarray(0, n);
}
