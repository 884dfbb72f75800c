/**
 * Output formats for received datagrams: safe text (control bytes escaped), raw, hex dump,
 * base64 and JSON lines. Pure functions; no I/O.
 */
import { isUtf8 } from 'node:buffer';
import { formatEndpoint } from './address.js';
import { InvalidArgumentError } from './errors.js';
import { ARRIVAL } from './inbox.js';
import { nativeAddon } from './native.js';
import type { ByteSink } from './output.js';
import type { Datagram } from './socket.js';

/** The names of the output formats. */
export const OUTPUT_FORMATS = ['text', 'raw', 'hex', 'base64', 'json'] as const;
/** An output format. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/**
 * Checks an output format name.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` naming the allowed formats
 */
export function parseOutputFormat(name: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(name)) return name as OutputFormat;
  throw new InvalidArgumentError(`unknown format '${name}' (allowed: ${OUTPUT_FORMATS.join(', ')})`);
}

const HEX = '0123456789abcdef';

/**
 * The length of the valid UTF-8 sequence starting at `i`, or 0 when the bytes there are not
 * one (overlong forms, surrogates and code points past U+10FFFF are invalid).
 */
function utf8SequenceLength(buf: Uint8Array, i: number): number {
  const b0 = buf[i] as number;
  const end = buf.length;
  const cont = (j: number, lo = 0x80, hi = 0xbf) =>
    j < end && (buf[j] as number) >= lo && (buf[j] as number) <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

/** One range of {@link UNSAFE_CODE_POINTS}. */
export interface UnsafeCodePointRange {
  /** The first code point of the range. */
  readonly first: number;
  /** The last code point of the range, included. */
  readonly last: number;
  /** What the range holds, for documentation. */
  readonly name: string;
}

/**
 * The code points that output never shows raw, as inclusive ranges in ascending order: each is
 * valid UTF-8 yet unsafe on a terminal or in a line-based log, because a terminal may obey it,
 * a tool may break the line there, it can make text read backwards, or it is invisible and
 * makes two different payloads look the same. `text` output writes them as `\u{NNNN}`;
 * `json` output writes them as `\uNNNN` in the `text` field (together with DEL, U+007F, which
 * `text` output already writes as `\x7f`). Both escapings are derived from this one list.
 */
export const UNSAFE_CODE_POINTS: readonly UnsafeCodePointRange[] = Object.freeze(
  [
    { first: 0x0080, last: 0x009f, name: 'C1 controls (U+0085 next line and U+009B CSI among them)' },
    { first: 0x00ad, last: 0x00ad, name: 'soft hyphen' },
    { first: 0x034f, last: 0x034f, name: 'combining grapheme joiner' },
    { first: 0x061c, last: 0x061c, name: 'Arabic letter mark (bidi)' },
    { first: 0x115f, last: 0x1160, name: 'Hangul choseong and jungseong fillers' },
    { first: 0x17b4, last: 0x17b5, name: 'Khmer inherent vowels' },
    { first: 0x180b, last: 0x180f, name: 'Mongolian variation selectors and vowel separator' },
    { first: 0x200b, last: 0x200d, name: 'zero width space, non-joiner and joiner' },
    { first: 0x200e, last: 0x200f, name: 'left-to-right and right-to-left marks (bidi)' },
    { first: 0x2028, last: 0x2029, name: 'line and paragraph separators' },
    { first: 0x202a, last: 0x202e, name: 'bidi embeddings, pop and overrides' },
    { first: 0x2060, last: 0x2060, name: 'word joiner' },
    { first: 0x2061, last: 0x2064, name: 'invisible operators' },
    { first: 0x2065, last: 0x2065, name: 'reserved default-ignorable' },
    { first: 0x2066, last: 0x2069, name: 'bidi isolates' },
    { first: 0x206a, last: 0x206f, name: 'deprecated format characters' },
    { first: 0x3164, last: 0x3164, name: 'Hangul filler' },
    { first: 0xfe00, last: 0xfe0f, name: 'variation selectors' },
    { first: 0xfeff, last: 0xfeff, name: 'zero width no-break space (byte order mark)' },
    { first: 0xffa0, last: 0xffa0, name: 'halfwidth Hangul filler' },
    { first: 0xfff0, last: 0xfff8, name: 'reserved default-ignorable' },
    { first: 0xfff9, last: 0xfffb, name: 'interlinear annotation characters' },
    { first: 0x13430, last: 0x1343f, name: 'Egyptian hieroglyph format controls' },
    { first: 0x1bca0, last: 0x1bca3, name: 'shorthand format controls' },
    { first: 0x1d173, last: 0x1d17a, name: 'musical symbol format controls' },
    { first: 0xe0000, last: 0xe0fff, name: 'tags and variation selectors supplement' },
  ].map((range) => Object.freeze(range)),
);

/** {@link UNSAFE_CODE_POINTS} as a bit per code point up to the last one, for a test in one lookup. */
const UNSAFE_MAX = Math.max(...UNSAFE_CODE_POINTS.map((range) => range.last));
const unsafeBits = new Uint8Array((UNSAFE_MAX >>> 3) + 1);
for (const { first, last } of UNSAFE_CODE_POINTS) {
  for (let cp = first; cp <= last; cp++) {
    unsafeBits[cp >>> 3] = (unsafeBits[cp >>> 3] as number) | (1 << (cp & 7));
  }
}

/** True for the code points of {@link UNSAFE_CODE_POINTS}. */
function isUnsafeCodePoint(cp: number): boolean {
  return cp <= UNSAFE_MAX && ((unsafeBits[cp >>> 3] as number) & (1 << (cp & 7))) !== 0;
}

/**
 * Renders bytes as one line of safe text. Printable UTF-8 passes through; everything that
 * could drive a terminal, break the line or hide in it is escaped, and the escaping is
 * reversible: `\n`, `\r`, `\t`, `\\` for a backslash, `\xNN` (lower-case hex) for other
 * control bytes (U+0000-U+001F, DEL) and for each byte that is not part of valid UTF-8
 * (overlong forms, surrogates, past U+10FFFF, truncated), `\u{NNNN}` (at least four lower-case
 * hex digits) for the code points of {@link UNSAFE_CODE_POINTS}: C1 controls, line and
 * paragraph separators, bidi controls, zero-width and other invisible characters.
 * The string form of {@link escapeInto}.
 */
export function escapeText(buf: Uint8Array): string {
  const d = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (escapeScratch.length < d.length * 4) escapeScratch = Buffer.allocUnsafe(d.length * 4);
  return escapeScratch.toString('utf8', 0, escapeInto(d, escapeScratch, 0));
}
let escapeScratch = Buffer.allocUnsafe(4096);

/**
 * Formats a time in milliseconds since the epoch as ISO 8601 UTC with microseconds:
 * `2026-11-24T10:00:00.123456Z`.
 */
export function formatTimestamp(epochMs: number): string {
  const whole = Math.floor(epochMs);
  const micros = Math.floor((epochMs - whole) * 1000);
  // Datagrams come many to a millisecond: format the date once per millisecond.
  if (whole !== lastStampMs) {
    lastStampMs = whole;
    lastStampPrefix = new Date(whole).toISOString().slice(0, -1);
  }
  return `${lastStampPrefix}${micros < 10 ? '00' : micros < 100 ? '0' : ''}${micros}Z`;
}
let lastStampMs = Number.NaN;
let lastStampPrefix = '';

/**
 * A hex dump in the layout of `hexdump -C`: offset, sixteen bytes in two groups of eight,
 * and the printable ASCII between bars. One string, each line ending in `\n`; empty for no
 * bytes.
 */
export function hexDump(buf: Uint8Array): string {
  const need = Math.ceil(buf.length / 16) * 80;
  if (scratch.length < need) scratch = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
  return scratch.toString('latin1', 0, hexDumpInto(buf, scratch, 0));
}

/** Reused output space: the dump becomes a string before the next call. */
let scratch = Buffer.allocUnsafe(8192);

/** Options of {@link createFormatter}. */
export interface FormatterOptions {
  /** Prefix `text` lines and `hex` headers with the receive time (ISO 8601, UTC). */
  timestamps?: boolean;
  /**
   * Add where each datagram arrived to `text` lines and `hex` headers, when the socket knows
   * it (see `Datagram.to`): ` to 10.0.0.1 on eth0 ttl 64`. `json` always has it.
   */
  destination?: boolean;
}

/**
 * What is known of where a datagram arrived, in both forms: ` to 10.0.0.1 on eth0 ttl 64` for
 * `text` and `hex`, `,"to":..,"interface":..,"ttl":..` for `json`; '' when nothing is. Made
 * once per arrival object and TTL (a flood to one address, from one distance, shares them).
 * An interface name is written in ASCII (`\xNN` in text, `\uNNNN` in json), like all the rest.
 */
function arrivalParts(msg: Datagram): { text: string; json: string } {
  const arrival = msg[ARRIVAL];
  const cached = arrival === undefined ? undefined : arrivalCache.get(arrival);
  if (cached !== undefined && cached.ttl === msg.ttl) return cached;
  let text = '';
  let json = '';
  if (msg.to !== undefined) {
    text += ` to ${msg.to}`;
    json += `,"to":${JSON.stringify(msg.to)}`;
  }
  if (msg.interface !== undefined) {
    text += ` on ${escapeText(Buffer.from(msg.interface))}`;
    json += `,"interface":${JSON.stringify(msg.interface).replace(/[^\x20-\x7e]/g, jsonEscape)}`;
  }
  if (msg.ttl !== undefined) {
    text += ` ttl ${msg.ttl}`;
    json += `,"ttl":${msg.ttl}`;
  }
  const parts = { ttl: msg.ttl, text, json };
  if (arrival !== undefined) arrivalCache.set(arrival, parts);
  return parts;
}
const arrivalCache = new WeakMap<object, { ttl: number | undefined; text: string; json: string }>();
const NO_ARRIVAL = { text: '', json: '' };
const noArrival = () => NO_ARRIVAL;

/** ` to 10.0.0.1 on eth0 ttl 64`: what is known of where a datagram arrived, or ''. */
export function arrivalText(msg: Datagram): string {
  return arrivalParts(msg).text;
}

/** Turns one datagram into its output: a string, or bytes for `raw`. Always ends in `\n`. */
export type Formatter = (msg: Datagram) => string | Uint8Array;

const NEWLINE = Buffer.from('\n');

/**
 * A formatter for `format`:
 * - `text`: `Received message: <escaped text> from 1.2.3.4:5`
 * - `raw`: the payload bytes and a newline
 * - `hex`: a header `Received N bytes from 1.2.3.4:5` and a `hexdump -C` style dump
 * - `base64`: the payload in base64, one line
 * - `json`: `{"ts","from":{"address","port","family"},"to"?,"interface"?,"ttl"?,"size","text"?,
 *   "base64"}`, `to`, `interface` and `ttl` when the socket knows them, `text` only
 *   when the payload is valid UTF-8, with DEL and {@link UNSAFE_CODE_POINTS} written as
 *   `\uNNNN` besides what JSON escapes
 */
export function createFormatter(format: OutputFormat, options: FormatterOptions = {}): Formatter {
  const stamp = options.timestamps ? (msg: Datagram) => `${formatTimestamp(msg.receivedAt)} ` : () => '';
  const where = options.destination ? arrivalParts : noArrival;
  switch (format) {
    case 'text':
      return (msg) =>
        `${stamp(msg)}Received message: ${escapeText(msg.data)} from ${formatEndpoint(msg.from.address, msg.from.port)}${where(msg).text}\n`;
    case 'raw':
      return (msg) => Buffer.concat([msg.data, NEWLINE]);
    case 'hex':
      return (msg) =>
        `${stamp(msg)}Received ${msg.data.length} byte${msg.data.length === 1 ? '' : 's'} from ${formatEndpoint(msg.from.address, msg.from.port)}${where(msg).text}\n${hexDump(msg.data)}`;
    case 'base64':
      return (msg) => `${msg.data.toString('base64')}\n`;
    case 'json':
      return (msg) => {
        const d = msg.data;
        const json = jsonText(d);
        const text = json === undefined ? '' : `,"text":${json}`;
        return `{"ts":"${formatTimestamp(msg.receivedAt)}",${fromJson(msg.from)}${arrivalParts(msg).json},"size":${d.length}${text},"base64":"${d.toString('base64')}"}\n`;
      };
  }
}

/** `"from":{...}` of a sender, made once per sender object (a flood reuses one). */
const fromJsonCache = new WeakMap<object, string>();
function fromJson(from: Datagram['from']): string {
  let json = fromJsonCache.get(from);
  if (json === undefined) {
    json = `"from":${JSON.stringify({ address: from.address, port: from.port, family: from.family })}`;
    fromJsonCache.set(from, json);
  }
  return json;
}

/**
 * The `text` of a `json` line: the payload as a JSON string, or undefined when it is not valid
 * UTF-8. Besides what JSON.stringify escapes (quote, backslash, U+0000-U+001F), DEL and the code
 * points of {@link UNSAFE_CODE_POINTS} are written as `\uNNNN`, so neither a tool that splits
 * lines at U+0085 or U+2028 nor a terminal showing the file meets them raw. JSON.parse gives
 * back the exact text.
 */
function jsonText(d: Buffer): string | undefined {
  if (!isUtf8(d)) return undefined;
  const text = d.toString('utf8');
  const json = JSON.stringify(text);
  // As many characters as bytes: all ASCII, as most payloads are, where only DEL can need more.
  if (text.length === d.length ? !text.includes('\x7f') : !JSON_UNSAFE.test(json)) return json;
  return json.replace(JSON_UNSAFE_ALL, jsonEscape);
}
const JSON_UNSAFE_CLASS = `[\\u{7f}${UNSAFE_CODE_POINTS.map(
  ({ first, last }) => `\\u{${first.toString(16)}}-\\u{${last.toString(16)}}`,
).join('')}]`;
const JSON_UNSAFE = new RegExp(JSON_UNSAFE_CLASS, 'u');
const JSON_UNSAFE_ALL = new RegExp(JSON_UNSAFE_CLASS, 'gu');
/** `\uNNNN` for each UTF-16 unit of `ch`, as JSON writes a character it escapes. */
function jsonEscape(ch: string): string {
  let escaped = '';
  for (let k = 0; k < ch.length; k++) escaped += `\\u${ch.charCodeAt(k).toString(16).padStart(4, '0')}`;
  return escaped;
}

/** The object a `json` line holds. */
export interface JsonRecord {
  ts: string;
  from: { address: string; port: number; family: string };
  to?: string;
  interface?: string;
  ttl?: number;
  size: number;
  text?: string;
  base64: string;
}

/** The `json` format's record of one datagram. */
export function toJsonRecord(msg: Datagram): JsonRecord {
  const { address, port, family } = msg.from;
  // Keys in the order the line has them.
  const record: JsonRecord = {
    ts: formatTimestamp(msg.receivedAt),
    from: { address, port, family },
    size: 0,
    base64: '',
  };
  if (msg.to !== undefined) record.to = msg.to;
  if (msg.interface !== undefined) record.interface = msg.interface;
  if (msg.ttl !== undefined) record.ttl = msg.ttl;
  record.size = msg.data.length;
  if (isUtf8(msg.data)) record.text = msg.data.toString('utf8');
  record.base64 = msg.data.toString('base64');
  return record;
}

/** Writes one datagram's output straight into a {@link ByteSink}, no string in between. */
export type ByteFormatter = (msg: Datagram, out: ByteSink) => void;

const HEX_BYTES = Buffer.from(HEX, 'latin1');
const TEXT_PREFIX = Buffer.from('Received message: ');

/** ` from 1.2.3.4:5\n` of each sender object, made once (a flood reuses one object). */
const fromLineCache = new WeakMap<object, Buffer>();
function fromLine(from: Datagram['from']): Buffer {
  let bytes = fromLineCache.get(from);
  if (bytes === undefined) {
    bytes = Buffer.from(` from ${formatEndpoint(from.address, from.port)}\n`, 'latin1');
    fromLineCache.set(from, bytes);
  }
  return bytes;
}

/** Copies `src[start, end)` to `dst` at `o`: byte by byte when short, memcpy when long. */
function copyRun(src: Buffer, start: number, end: number, dst: Buffer, o: number): number {
  if (end - start > 24) return o + src.copy(dst, o, start, end);
  for (let k = start; k < end; k++) dst[o++] = src[k] as number;
  return o;
}

/**
 * {@link escapeText} into bytes: writes the escaped form of `d` into `buf` at `o` (which must
 * have room for 4 bytes per input byte) and returns where it ended.
 */
export function escapeInto(d: Buffer, buf: Buffer, o: number): number {
  const n = d.length;
  let run = 0;
  let i = 0;
  // Received datagrams are 4-byte aligned: then skip plain bytes four at a time, through one
  // word view per underlying buffer (a view per call would be garbage per datagram).
  const words = n >= 32 && (d.byteOffset & 3) === 0 ? wordsOf(d.buffer) : undefined;
  const base = d.byteOffset >>> 2;
  const wordEnd = base + (n >>> 2);
  while (i < n) {
    if (words !== undefined && (i & 3) === 0) {
      let w = base + (i >>> 2);
      while (w < wordEnd && isPlainWord(words[w] as number)) w++;
      i = (w - base) << 2;
      if (i >= n) break;
    }
    const c = d[i] as number;
    if (c >= 0x20 && c < 0x7f && c !== 0x5c) {
      i++;
      continue;
    }
    if (c >= 0x80) {
      const len = utf8SequenceLength(d, i);
      if (len > 0) {
        const c1 = (d[i + 1] as number) & 0x3f;
        const cp =
          len === 2
            ? ((c & 0x1f) << 6) | c1
            : len === 3
              ? ((c & 0x0f) << 12) | (c1 << 6) | ((d[i + 2] as number) & 0x3f)
              : ((c & 0x07) << 18) |
                (c1 << 12) |
                (((d[i + 2] as number) & 0x3f) << 6) |
                ((d[i + 3] as number) & 0x3f);
        if (!isUnsafeCodePoint(cp)) {
          i += len; // valid, printable UTF-8 stays in the run
          continue;
        }
        // \u{NNNN}: at least four hex digits, at most 10 bytes for 4 input bytes.
        o = copyRun(d, run, i, buf, o);
        buf[o++] = 0x5c;
        buf[o++] = 0x75;
        buf[o++] = 0x7b;
        for (let shift = cp > 0xfffff ? 20 : cp > 0xffff ? 16 : 12; shift >= 0; shift -= 4) {
          buf[o++] = HEX_BYTES[(cp >>> shift) & 15] as number;
        }
        buf[o++] = 0x7d;
        i += len;
        run = i;
        continue;
      }
    }
    o = copyRun(d, run, i, buf, o);
    buf[o++] = 0x5c;
    if (c === 0x0a) buf[o++] = 0x6e;
    else if (c === 0x0d) buf[o++] = 0x72;
    else if (c === 0x09) buf[o++] = 0x74;
    else if (c === 0x5c) buf[o++] = 0x5c;
    else {
      buf[o++] = 0x78;
      buf[o++] = HEX_BYTES[c >> 4] as number;
      buf[o++] = HEX_BYTES[c & 15] as number;
    }
    i++;
    run = i;
  }
  return copyRun(d, run, n, buf, o);
}

let wordsBuffer: ArrayBufferLike | undefined;
let wordsView: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
/** A Uint32Array over all of `buffer`, kept for the next call on the same buffer. */
function wordsOf(buffer: ArrayBufferLike): Uint32Array<ArrayBufferLike> {
  if (buffer !== wordsBuffer) {
    wordsBuffer = buffer;
    wordsView = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
  }
  return wordsView;
}

/**
 * True when all four bytes of `x` are plain (printable ASCII, not a backslash): no byte under
 * 0x20, over 0x7e or equal to 0x5c. Word arithmetic, exact as a yes/no.
 */
function isPlainWord(x: number): boolean {
  const y = x ^ 0x5c5c5c5c;
  return ((((x - 0x20202020) & ~x) | (x + 0x01010101) | x | ((y - 0x01010101) & ~y)) & 0x80808080) === 0;
}

/**
 * {@link hexDump} into bytes: writes the dump of `d` into `buf` at `o` (room for 80 bytes per
 * 16 input bytes) and returns where it ended.
 */
export function hexDumpInto(d: Uint8Array, buf: Buffer, o: number): number {
  // The addon's loop is several times faster; the one below is the same layout in TypeScript.
  return nativeAddon && d.length >= 16 ? nativeAddon.hexDumpInto(d, buf, o) : hexDumpIntoJs(d, buf, o);
}

/** {@link hexDumpInto} in TypeScript, for when the native addon is not there. */
export function hexDumpIntoJs(d: Uint8Array, buf: Buffer, o: number): number {
  const n = d.length;
  for (let off = 0; off < n; off += 16) {
    for (let shift = 28; shift >= 0; shift -= 4) buf[o++] = HEX_BYTES[(off >>> shift) & 15] as number;
    buf[o++] = 0x20;
    buf[o++] = 0x20;
    const end = off + 16 < n ? off + 16 : n;
    let k = off;
    for (; k < end; k++) {
      if (k === off + 8) buf[o++] = 0x20;
      const c = d[k] as number;
      buf[o++] = HEX_BYTES[c >> 4] as number;
      buf[o++] = HEX_BYTES[c & 15] as number;
      buf[o++] = 0x20;
    }
    if (k < off + 16) {
      // A short last line: pad to the ASCII column.
      const pad = (off + 16 - k) * 3 + (k <= off + 8 ? 1 : 0);
      buf.fill(0x20, o, o + pad);
      o += pad;
    }
    buf[o++] = 0x20;
    buf[o++] = 0x7c;
    for (k = off; k < end; k++) {
      const c = d[k] as number;
      buf[o++] = c >= 0x20 && c < 0x7f ? c : 0x2e;
    }
    buf[o++] = 0x7c;
    buf[o++] = 0x0a;
  }
  return o;
}

/**
 * A formatter that writes into a {@link ByteSink}, for output at line rate: the same bytes as
 * {@link createFormatter} gives, without a string per datagram where the format allows
 * (`text`, `hex`, `raw`).
 */
export function createByteFormatter(format: OutputFormat, options: FormatterOptions = {}): ByteFormatter {
  const stamped = options.timestamps === true;
  const writeStamp = (msg: Datagram, buf: Buffer, o: number) =>
    o + buf.write(`${formatTimestamp(msg.receivedAt)} `, o, 'latin1');
  const where = options.destination ? arrivalParts : noArrival;
  switch (format) {
    case 'text':
      return (msg, out) => {
        const d = msg.data;
        const tail = fromLine(msg.from);
        const arrived = where(msg).text;
        const buf = out.room(64 + d.length * 4 + tail.length + arrived.length);
        let o = out.used;
        if (stamped) o = writeStamp(msg, buf, o);
        o += TEXT_PREFIX.copy(buf, o);
        o = escapeInto(d, buf, o);
        // ` from 1.2.3.4:5\n`, with where it arrived before the newline when asked.
        if (arrived === '') o += tail.copy(buf, o);
        else {
          o += tail.copy(buf, o, 0, tail.length - 1);
          o += buf.write(arrived, o, 'latin1');
          buf[o++] = 0x0a;
        }
        out.used = o;
      };
    case 'hex':
      return (msg, out) => {
        const d = msg.data;
        const header = `Received ${d.length} byte${d.length === 1 ? '' : 's'} from ${formatEndpoint(msg.from.address, msg.from.port)}${where(msg).text}\n`;
        const buf = out.room(64 + header.length + Math.ceil(d.length / 16) * 80);
        let o = out.used;
        if (stamped) o = writeStamp(msg, buf, o);
        o += buf.write(header, o, 'latin1');
        out.used = hexDumpInto(d, buf, o);
      };
    case 'raw':
      return (msg, out) => {
        const d = msg.data;
        const buf = out.room(d.length + 1);
        const o = out.used + d.copy(buf, out.used);
        buf[o] = 0x0a;
        out.used = o + 1;
      };
    case 'json':
      // Pieces written straight in: only the text (when there is one) needs UTF-8 encoding;
      // the rest, base64 included, is ASCII and copied as it is.
      return (msg, out) => {
        const d = msg.data;
        const n = d.length;
        const text = jsonText(d);
        const b64Length = Math.ceil(n / 3) * 4;
        const head = `{"ts":"${formatTimestamp(msg.receivedAt)}",${fromJson(msg.from)}${arrivalParts(msg).json},"size":${n}`;
        const buf = out.room(32 + head.length + b64Length + (text === undefined ? 0 : text.length * 3));
        let o = out.used;
        o += buf.write(head, o, 'latin1');
        if (text !== undefined) {
          o += buf.write(',"text":', o, 'latin1');
          o += buf.write(text, o, 'utf8');
        }
        o += buf.write(',"base64":"', o, 'latin1');
        o = nativeAddon
          ? nativeAddon.base64Into(d, buf, o)
          : o + buf.write(d.toString('base64'), o, 'latin1');
        buf[o++] = 0x22;
        buf[o++] = 0x7d;
        buf[o++] = 0x0a;
        out.used = o;
      };
    default: {
      const asString = createFormatter(format, options) as (msg: Datagram) => string;
      return (msg, out) => {
        const s = asString(msg);
        const buf = out.room(s.length * 3);
        out.used += buf.write(s, out.used);
      };
    }
  }
}
