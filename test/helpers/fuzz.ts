/**
 * The fuzzer's parts: seeded payloads of every shape, and checkers that read a verb's output as
 * it streams and hold each record to the payload it came from. The payloads are made again for
 * checking from the same seed, so a run of a million needs no memory for what was sent.
 */
import { TextDecoder } from 'node:util';
import { seededRandom } from '../../src/lib/index.js';

/** The library's seeded generator (the proxy's decisions use it) as a function: the same sequence for the same seed. */
export function random(seed: number): () => number {
  const generator = seededRandom(seed);
  return () => generator.next();
}

/** What may drive a terminal or hide in a line. */
const NASTY = [
  '\x1b[2J\x1b[H', // clear the screen
  '\x1b]0;owned\x07', // OSC: set the terminal's title
  '\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\', // OSC 8 hyperlink
  '\x1bP+q544e\x1b\\', // DCS: ask the terminal to answer
  '\u202eevil\u202c', // right-to-left override
  'zero\u200bwidth\u200d\ufeff',
  '\u2066isolate\u2069',
  '\u0085\u009b31m', // C1 controls, as characters
  '\u2028line\u2029para', // separators
  'tab\there\r\nnew line\0nul',
  'back\\slash \\x41 \\u{202e}', // what looks like an escape already
  ' from 127.0.0.1:1\n{"ts":0}', // what looks like the rest of a line, and a new one
];

/** Invalid UTF-8: lone continuation bytes, cut sequences, overlongs, surrogates, past U+10FFFF. */
const BAD = [0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xff, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0xf4, 0x90];

/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65507;

/**
 * Payloads of every shape from one seed: random bytes, invalid UTF-8, text full of escape
 * sequences, controls, bidi and zero-width characters. Sizes 0 to 65507: mostly short, some
 * long, and a share (`largeShare`) within 16 bytes of the largest.
 */
export class Payloads {
  readonly #r: () => number;
  readonly #largeShare: number;

  constructor(seed: number, largeShare = 0.01) {
    this.#r = random(seed);
    this.#largeShare = largeShare;
  }

  next(): Buffer {
    const r = this.#r;
    const kind = Math.floor(r() * 5);
    const roll = r();
    const size =
      roll < this.#largeShare
        ? MAX_DATAGRAM - Math.floor(r() * 16)
        : roll < this.#largeShare + 0.04
          ? Math.floor(r() * 9000)
          : Math.floor(r() * 300);
    if (kind === 0) {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4) {
        const word = Math.floor(r() * 4294967296);
        for (let k = 0; k < 4 && i + k < size; k++) b[i + k] = (word >>> (8 * k)) & 0xff;
      }
      return b;
    }
    if (kind === 1) {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i++) b[i] = r() < 0.2 ? (BAD[Math.floor(r() * BAD.length)] as number) : 0x61;
      return b;
    }
    const pieces: string[] = [];
    let bytes = 0;
    while (bytes < size) {
      const piece =
        r() < 0.3
          ? (NASTY[Math.floor(r() * NASTY.length)] as string)
          : String.fromCodePoint(
              r() < 0.8 ? 0x20 + Math.floor(r() * 0x5f) : Math.floor(r() * 0x10ffff) & ~0x800,
            );
      pieces.push(piece);
      bytes += Buffer.byteLength(piece);
    }
    return Buffer.from(pieces.join('')).subarray(0, size);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** True when `b` is valid UTF-8. */
export function isUtf8(b: Uint8Array): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/**
 * Characters that must never reach a terminal raw: C0 (but the line's end), DEL, C1, line and
 * paragraph separators, bidi controls and isolates, zero-width characters, the BOM, invisible
 * operators, interlinear annotations. Written apart from the formatter's own list, on purpose.
 */
const INVISIBLE: readonly [number, number][] = [
  [0x00, 0x09],
  [0x0b, 0x1f],
  [0x7f, 0x9f],
  [0xad, 0xad],
  [0x61c, 0x61c],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
];

/** The first character of `s` that must not be there raw: `U+NNNN at i`, or undefined. */
function invisible(s: string): string | undefined {
  let i = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (INVISIBLE.some(([first, last]) => cp >= first && cp <= last))
      return `raw U+${cp.toString(16)} at ${i}`;
    i += ch.length;
  }
  return undefined;
}

/** Undoes `text`'s escaping (`\n \r \t \\ \xNN \u{N}`), independently of the formatter. */
export function unescapeText(s: string): Buffer {
  const out: Buffer[] = [];
  let plain = 0;
  const flush = (end: number) => {
    if (end > plain) out.push(Buffer.from(s.slice(plain, end)));
  };
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') continue;
    flush(i);
    const c = s[i + 1];
    if (c === 'n' || c === 'r' || c === 't' || c === '\\') {
      out.push(Buffer.from(c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : '\\'));
      i += 1;
    } else if (c === 'x') {
      out.push(Buffer.from([Number.parseInt(s.slice(i + 2, i + 4), 16)]));
      i += 3;
    } else if (c === 'u' && s[i + 2] === '{') {
      const end = s.indexOf('}', i);
      out.push(Buffer.from(String.fromCodePoint(Number.parseInt(s.slice(i + 3, end), 16))));
      i = end;
    } else {
      throw new Error(`a lone backslash at ${i}`);
    }
    plain = i + 1;
  }
  flush(s.length);
  return Buffer.concat(out);
}

/**
 * Reads a stream of records as it comes and checks each against the next expected payload.
 * `count` is how many passed; `error` says what the first one that did not was, and then no
 * more is checked.
 */
export abstract class Checker {
  count = 0;
  /** Payload bytes of the records that passed. */
  bytes = 0;
  error: string | undefined;
  readonly #expected: () => Buffer;
  #waiters: (() => void)[] = [];

  constructor(expected: () => Buffer) {
    this.#expected = expected;
  }

  /** Takes the next piece of the stream. */
  abstract feed(chunk: Buffer): void;

  /** Resolves at the next record checked, or after `ms`. */
  progress(ms = 200): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  protected next(): Buffer {
    return this.#expected();
  }

  protected passed(payload: Buffer): void {
    this.count++;
    this.bytes += payload.length;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  protected fail(why: string): undefined {
    this.error ??= `record ${this.count}: ${why}`;
  }
}

/** Records that are lines: each whole line (without its `\n`) is checked by `line`. */
export abstract class LineChecker extends Checker {
  #held: Buffer[] = [];

  feed(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      if (end < 0) break;
      const piece = chunk.subarray(start, end);
      const line = this.#held.length === 0 ? piece : Buffer.concat([...this.#held, piece]);
      this.#held = [];
      start = end + 1;
      if (this.error === undefined) this.line(line);
    }
    if (start < chunk.length) this.#held.push(Buffer.from(chunk.subarray(start)));
  }

  /** Bytes held of a line not yet ended. */
  get partial(): number {
    return this.#held.reduce((a, b) => a + b.length, 0);
  }

  protected abstract line(line: Buffer): undefined;
}

/** The position of the first raw C0 control byte or DEL in `line`, or -1. */
function rawControl(line: Buffer): number {
  return line.findIndex((byte) => byte < 0x20 || byte === 0x7f);
}

/** `listen -f text`: `Received message: <escaped> from <from>`, safe, and giving back the payload. */
export class TextChecker extends LineChecker {
  readonly #suffix: string;

  constructor(expected: () => Buffer, from: string) {
    super(expected);
    this.#suffix = ` from ${from}`;
  }

  protected line(line: Buffer): undefined {
    const payload = this.next();
    const raw = rawControl(line);
    if (raw >= 0) return this.fail(`raw byte ${line[raw]} at ${raw}`);
    if (!isUtf8(line)) return this.fail('not valid UTF-8');
    const s = line.toString('utf8');
    const bad = invisible(s);
    if (bad) return this.fail(bad);
    const prefix = 'Received message: ';
    if (!s.startsWith(prefix) || !s.endsWith(this.#suffix))
      return this.fail(`not a text line: ${s.slice(0, 80)}`);
    let back: Buffer;
    try {
      back = unescapeText(s.slice(prefix.length, s.length - this.#suffix.length));
    } catch (err) {
      return this.fail(String(err));
    }
    if (!back.equals(payload))
      return this.fail(`gives back ${back.length} bytes, not the ${payload.length} sent`);
    this.passed(payload);
  }
}

/** `-f json`: each line parses, is ASCII-safe, and gives back its payload. */
export class JsonChecker extends LineChecker {
  readonly #port: number;

  constructor(expected: () => Buffer, port: number) {
    super(expected);
    this.#port = port;
  }

  protected line(line: Buffer): undefined {
    const payload = this.next();
    const raw = rawControl(line);
    if (raw >= 0) return this.fail(`raw byte ${line[raw]} at ${raw}`);
    const s = line.toString('utf8');
    const bad = invisible(s);
    if (bad) return this.fail(bad);
    let record: { size?: number; base64?: string; text?: string; from?: { port?: number } };
    try {
      record = JSON.parse(s);
    } catch (err) {
      return this.fail(`does not parse: ${String(err)}`);
    }
    if (record.size !== payload.length) return this.fail(`size ${record.size}, sent ${payload.length}`);
    if (record.from?.port !== this.#port) return this.fail(`from port ${record.from?.port}`);
    if (!Buffer.from(record.base64 ?? '', 'base64').equals(payload))
      return this.fail('base64 is not the payload');
    const valid = isUtf8(payload);
    if (valid !== (record.text !== undefined))
      return this.fail(`text ${valid ? 'missing' : 'for invalid UTF-8'}`);
    if (record.text !== undefined && !Buffer.from(record.text).equals(payload))
      return this.fail('text is not the payload');
    this.passed(payload);
  }
}

/** `-f base64`: each line is its payload in base64. */
export class Base64Checker extends LineChecker {
  protected line(line: Buffer): undefined {
    const payload = this.next();
    if (line.toString('latin1') !== payload.toString('base64')) return this.fail('not the payload in base64');
    this.passed(payload);
  }
}

/**
 * `-f hex`: a header `Received N bytes from <from>`, then `hexdump -C` lines (offset, 16 bytes,
 * printable ASCII between bars) that give back the payload.
 */
export class HexChecker extends LineChecker {
  readonly #from: string;
  #payload: Buffer | undefined;
  #dump: number[] = [];
  #lines = 0;

  constructor(expected: () => Buffer, from: string) {
    super(expected);
    this.#from = from;
  }

  protected line(line: Buffer): undefined {
    const raw = rawControl(line);
    if (raw >= 0) return this.fail(`raw byte ${line[raw]} at ${raw}`);
    const s = line.toString('latin1');
    if (this.#payload === undefined) {
      const payload = this.next();
      const n = payload.length;
      if (s !== `Received ${n} byte${n === 1 ? '' : 's'} from ${this.#from}`)
        return this.fail(`header ${s.slice(0, 80)}`);
      this.#payload = payload;
      this.#dump = [];
      this.#lines = Math.ceil(n / 16);
    } else {
      const bar = s.indexOf('|');
      const offset = s.slice(0, 8);
      const bytes = s.slice(8, bar).match(/[0-9a-f]{2}/g) ?? [];
      const ascii = s.slice(bar + 1, -1);
      if (!/^[0-9a-f]{8} {2}$/.test(s.slice(0, 10)) || !s.endsWith('|') || !/^[\x20-\x7e]+$/.test(ascii))
        return this.fail(`dump line ${JSON.stringify(s)}`);
      if (Number.parseInt(offset, 16) !== this.#dump.length) return this.fail(`offset ${offset}`);
      if (bytes.length !== ascii.length) return this.fail(`${bytes.length} bytes, ${ascii.length} shown`);
      for (const pair of bytes) this.#dump.push(Number.parseInt(pair, 16));
      this.#lines--;
    }
    if (this.#lines === 0) {
      const payload = this.#payload;
      this.#payload = undefined;
      if (!Buffer.from(this.#dump).equals(payload)) return this.fail('the dump is not the payload');
      this.passed(payload);
    }
  }
}

/** `-f raw`: the stream is each payload followed by a newline. */
export class RawChecker extends Checker {
  #payload: Buffer | undefined;
  /** Bytes of the current payload (and its newline) matched so far. */
  #at = 0;

  feed(chunk: Buffer): undefined {
    let i = 0;
    while (i < chunk.length && this.error === undefined) {
      this.#payload ??= this.next();
      const p = this.#payload;
      if (this.#at < p.length) {
        const take = Math.min(p.length - this.#at, chunk.length - i);
        if (!chunk.subarray(i, i + take).equals(p.subarray(this.#at, this.#at + take)))
          return this.fail(`bytes ${this.#at}-${this.#at + take} differ`);
        this.#at += take;
        i += take;
        continue;
      }
      if (chunk[i] !== 0x0a) return this.fail(`no newline after ${p.length} bytes`);
      i++;
      this.#payload = undefined;
      this.#at = 0;
      this.passed(p);
    }
  }
}

/** Datagrams checked as they arrive, in order (echo's answers, what a proxy forwards). */
export class DatagramChecker extends Checker {
  feed(datagram: Buffer): undefined {
    if (this.error !== undefined) return;
    const payload = this.next();
    if (!datagram.equals(payload))
      return this.fail(`${datagram.length} bytes, not the ${payload.length} sent`);
    this.passed(payload);
  }
}

/**
 * Sends `n` payloads from `source` with `send`, keeping at most `window` datagrams and
 * `windowBytes` bytes ahead of what `checker` has seen come out: closed-loop, so that no
 * buffer on the way overflows and every datagram must come out. Fails when nothing comes out
 * for `stallMs`.
 */
export async function sendClosedLoop(
  n: number,
  source: Payloads,
  send: (payload: Buffer) => Promise<void>,
  checker: Checker,
  options: { window?: number; windowBytes?: number; stallMs?: number; problem?: () => string } = {},
): Promise<void> {
  const { window = 256, windowBytes = 2 << 20, stallMs = 10_000, problem = () => '' } = options;
  let sentBytes = 0;
  for (let i = 0; i < n; i++) {
    const payload = source.next();
    let waited = Date.now();
    for (;;) {
      if (checker.error !== undefined) return;
      const out = checker.count;
      const ahead = i - out;
      // What has come out, in bytes, is what the checker passed.
      const aheadBytes = sentBytes - checker.bytes;
      if (ahead < window && (ahead === 0 || aheadBytes + payload.length <= windowBytes)) break;
      await checker.progress();
      if (checker.count > out) waited = Date.now();
      else if (Date.now() - waited > stallMs)
        throw new Error(`nothing came out for ${stallMs} ms after ${out} of ${i} sent${problem()}`);
    }
    sentBytes += payload.length;
    await send(payload);
  }
}

/** What a bench server must count a datagram as. */
export type BenchLabel = 'foreign' | 'garbled';

const MAGIC = Buffer.from('UKB1');

/**
 * Datagrams that look like the bench's and are not a measurement: cut short, malformed, of a
 * session that ended (`ended`, replayed) or never was, or garbage under the bench's magic;
 * and `live`'s data cut short, which must not touch the run it belongs to. Each comes with what
 * a bench server must count it as. Written from docs/bench.md's wire format, not the decoder.
 */
export class BenchShapes {
  readonly #r: () => number;
  readonly #random: Payloads;
  readonly #ended: number;
  readonly #live: number;
  #replay = 0;

  constructor(seed: number, ended: number, live: number) {
    this.#r = random(seed);
    this.#random = new Payloads(seed ^ 0x5eed, 0);
    this.#ended = ended;
    this.#live = live;
  }

  next(): [Buffer, BenchLabel] {
    const r = this.#r;
    const pick = Math.floor(r() * 16);
    const session = () => 1 + Math.floor(r() * 2 ** 47);
    switch (pick) {
      case 0: {
        // Not the bench's at all (anything but the magic first).
        const b = this.#random.next();
        if (b.length >= 4 && b.subarray(0, 4).equals(MAGIC)) b[0] = 0;
        return [b, 'foreign'];
      }
      case 1: {
        // Less than the magic (not the bench's), or the magic alone (the bench's, cut short).
        const k = Math.floor(r() * 5);
        return [MAGIC.subarray(0, k), k < 4 ? 'foreign' : 'garbled'];
      }
      case 2: // a data or echo header cut short
        return [this.#data(r() < 0.5 ? 1 : 2, session(), 0).subarray(0, 5 + Math.floor(r() * 27)), 'garbled'];
      case 3: // the live run's data cut short
        return [
          this.#data(1, this.#live, Math.floor(r() * 1000)).subarray(0, 5 + Math.floor(r() * 27)),
          'garbled',
        ];
      case 4: {
        // A data header with a field out of range: flags, nanoseconds, a session or sequence past 2^53.
        const b = this.#data(1, this.#live, 0, 64);
        const which = Math.floor(r() * 4);
        if (which === 0) b[5] = 2 + Math.floor(r() * 254);
        else if (which === 1) b.writeUInt32BE(1_000_000_000 + Math.floor(r() * 3e9), 28);
        else b.writeUInt32BE(0x200000 + Math.floor(r() * 0xffdfffff), which === 2 ? 8 : 16);
        return [b, 'garbled'];
      }
      case 5: // a measured datagram of no session here
        return [this.#data(1, session(), Math.floor(r() * 1e6), 32 + Math.floor(r() * 1400)), 'foreign'];
      case 6: // a session that ended, replayed
        return [this.#data(r() < 0.8 ? 1 : 2, this.#ended, this.#replay++, 1400), 'foreign'];
      case 7: // an echo of no session
        return [this.#data(2, session(), 7, 64), 'foreign'];
      case 8: // a control message that is not JSON, or cut inside its header
        return r() < 0.5
          ? [this.#control(this.#live, this.#random.next()), 'garbled']
          : [this.#control(this.#live, Buffer.alloc(0)).subarray(0, 5 + Math.floor(r() * 11)), 'garbled'];
      case 9: // JSON, but not an object, or an object with no type
        return [
          this.#control(
            0,
            Buffer.from(['1', '"hello"', 'null', '[1,2]', '{}', '{"type":7}'][Math.floor(r() * 6)] as string),
          ),
          'garbled',
        ];
      case 10: // a hello of another protocol version
        return [
          this.#control(0, Buffer.from(JSON.stringify({ type: 'hello', version: 99, nonce: `n${r()}` }))),
          'garbled',
        ];
      case 11: // a message of a session that ended, or never was
        return [
          this.#control(
            r() < 0.5 ? this.#ended : session(),
            Buffer.from(JSON.stringify({ type: r() < 0.5 ? 'start' : 'bye' })),
          ),
          'foreign',
        ];
      case 12: // the live session, a message it does not know, or a 'sent' that does not add up
        return [
          this.#control(
            this.#live,
            Buffer.from(JSON.stringify(r() < 0.5 ? { type: 'launch' } : { type: 'sent', first: 5, end: 1 })),
          ),
          'garbled',
        ];
      case 13: {
        // A part of a message: of no session (foreign), or malformed (garbled).
        const count = Math.floor(r() * 20);
        const index = Math.floor(r() * 25);
        const ok = count >= 2 && index < count;
        return [
          this.#part(
            ok ? session() : this.#live,
            index,
            count,
            Buffer.concat([Buffer.from('{'), this.#random.next().subarray(0, 100)]),
          ),
          ok ? 'foreign' : 'garbled',
        ];
      }
      case 14: // a part with nothing in it
        return [this.#part(this.#live, 0, 2, Buffer.alloc(0)), 'garbled'];
      default: {
        // The magic and a type that does not exist.
        const b = Buffer.concat([
          MAGIC,
          Buffer.from([[0, 5, 6, 0x7f, 0xff][Math.floor(r() * 5)] as number]),
          this.#random.next().subarray(0, 200),
        ]);
        return [b, 'garbled'];
      }
    }
  }

  /** A data (1) or echo (2) datagram: magic, type, flags 0, session, sequence, a send time. */
  #data(type: number, session: number, seq: number, size = 32): Buffer {
    const b = Buffer.alloc(Math.max(size, 32));
    MAGIC.copy(b, 0);
    b[4] = type;
    writeU64(b, 8, session);
    writeU64(b, 16, seq);
    b.writeUInt32BE(Math.floor(Date.now() / 1000), 24);
    return b;
  }

  /** A control datagram: magic, type 3, session at byte 8, the message from byte 16. */
  #control(session: number, message: Buffer): Buffer {
    const b = Buffer.alloc(16);
    MAGIC.copy(b, 0);
    b[4] = 3;
    writeU64(b, 8, session);
    return Buffer.concat([b, message]);
  }

  /** A part (type 4): the control header, then message id, index and count, then its share. */
  #part(session: number, index: number, count: number, share: Buffer): Buffer {
    const b = Buffer.alloc(28);
    MAGIC.copy(b, 0);
    b[4] = 4;
    writeU64(b, 8, session);
    b.writeUInt32BE(42, 16);
    b.writeUInt32BE(index, 20);
    b.writeUInt32BE(count, 24);
    return Buffer.concat([b, share]);
  }
}

/** A number below 2^53 as 64 bits, big-endian, at `offset` of `b`. */
function writeU64(b: Buffer, offset: number, value: number): void {
  b.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  b.writeUInt32BE(value >>> 0, offset + 4);
}
