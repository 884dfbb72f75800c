import { describe, expect, it } from 'vitest';
import { UNSAFE_CODE_POINTS } from '../../src/lib/format.js';
import {
  createByteFormatter,
  createFormatter,
  type Datagram,
  escapeInto,
  escapeText,
  formatTimestamp,
  hexDump,
  hexDumpIntoJs,
  parseOutputFormat,
} from '../../src/lib/index.js';
import { nativeAddon } from '../../src/lib/native.js';

const at = Date.UTC(2026, 10, 24, 10, 0, 0, 123) + 0.456;
function dgram(data: Buffer | string, address = '127.0.0.1', port = 54321): Datagram {
  return {
    data: typeof data === 'string' ? Buffer.from(data) : data,
    from: { address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' },
    receivedAt: at,
  };
}
const b = (...bytes: number[]) => Buffer.from(bytes);
const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, k) => first + k);
const hex = (n: number, digits: number) => n.toString(16).padStart(digits, '0');

/**
 * The code points that are valid UTF-8 yet must not reach a terminal or a log raw, written out
 * here from the specification, independently of the library's UNSAFE_CODE_POINTS.
 */
const ALREADY_ESCAPED = [
  ...range(0x80, 0x9f), // C1 controls
  0x2028, // line separator
  0x2029, // paragraph separator
  ...range(0x202a, 0x202e), // bidi embeddings and overrides
  ...range(0x2066, 0x2069), // bidi isolates
];
const NEWLY_ESCAPED = [
  0x200b, // zero width space
  0x200c, // zero width non-joiner
  0x200d, // zero width joiner
  0xfeff, // zero width no-break space
  0x2060, // word joiner
  ...range(0x2061, 0x2064), // invisible operators
  0x200e, // left-to-right mark
  0x200f, // right-to-left mark
  0x061c, // Arabic letter mark
  0x00ad, // soft hyphen
  0x180e, // Mongolian vowel separator
  ...range(0xfff9, 0xfffb), // interlinear annotation
  // The rest of Unicode's Default_Ignorable_Code_Point, and the invisible format controls:
  0x034f, // combining grapheme joiner
  0x115f, // Hangul choseong filler
  0x1160, // Hangul jungseong filler
  0x17b4, // Khmer vowel inherent aq
  0x17b5, // Khmer vowel inherent aa
  ...range(0x180b, 0x180d), // Mongolian free variation selectors
  0x180f, // Mongolian free variation selector four
  0x2065, // reserved
  ...range(0x206a, 0x206f), // deprecated format characters
  0x3164, // Hangul filler
  ...range(0xfe00, 0xfe0f), // variation selectors
  0xffa0, // halfwidth Hangul filler
  ...range(0xfff0, 0xfff8), // reserved
  ...range(0x13430, 0x1343f), // Egyptian hieroglyph format controls
  ...range(0x1bca0, 0x1bca3), // shorthand format controls
  ...range(0x1d173, 0x1d17a), // musical symbol format controls
  ...range(0xe0000, 0xe0fff), // tags, variation selectors supplement
];
const UNSAFE_SPEC = new Set([...ALREADY_ESCAPED, ...NEWLY_ESCAPED]);
/** What `json` output must never leave raw, beyond what JSON itself escapes: DEL too. */
const JSON_SPEC = [0x7f, ...UNSAFE_SPEC];

/**
 * Every code point of the BMP but the surrogates, every 251st above it, and every unsafe one
 * above it, in payload-sized groups.
 */
function codePointGroups(): number[][] {
  const groups: number[][] = [];
  for (let start = 0; start < 0x10000; start += 0x4000) {
    groups.push(range(start, start + 0x3fff).filter((cp) => cp < 0xd800 || cp > 0xdfff));
  }
  groups.push([...range(0, (0x10ffff - 0x10000) / 251).map((k) => 0x10000 + k * 251), 0x10ffff]);
  // The unsafe ones above the BMP, every one.
  groups.push(NEWLY_ESCAPED.filter((cp) => cp > 0xffff));
  return groups;
}

/** Characters that must never reach a terminal: C0, DEL, the unsafe set, U+FFFD. */
const isUnsafe = (ch: string) => {
  const c = ch.codePointAt(0) as number;
  return c < 0x20 || c === 0x7f || UNSAFE_SPEC.has(c) || c === 0xfffd;
};

/**
 * The code point and length of the UTF-8 sequence at `i`, or undefined when the bytes there are
 * not a valid one: decoded by the book (lead byte, continuation bytes), then overlong forms,
 * surrogates and code points past U+10FFFF rejected.
 */
function decodeUtf8At(bytes: Uint8Array, i: number): { cp: number; len: number } | undefined {
  const lead = bytes[i] as number;
  let len: number;
  let cp: number;
  if (lead >= 0xc0 && lead <= 0xdf) [len, cp] = [2, lead & 0x1f];
  else if (lead >= 0xe0 && lead <= 0xef) [len, cp] = [3, lead & 0x0f];
  else if (lead >= 0xf0 && lead <= 0xf7) [len, cp] = [4, lead & 0x07];
  else return undefined;
  if (i + len > bytes.length) return undefined;
  for (let k = 1; k < len; k++) {
    const next = bytes[i + k] as number;
    if ((next & 0xc0) !== 0x80) return undefined;
    cp = cp * 64 + (next & 0x3f);
  }
  const shortest = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000;
  if (cp < shortest || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return undefined;
  return { cp, len };
}

/** The escaping rules of text output, a byte at a time, as simple as they can be written. */
function referenceEscape(bytes: Uint8Array): Buffer {
  const out: number[] = [];
  const put = (ascii: string) => {
    for (const ch of ascii) out.push(ch.charCodeAt(0));
  };
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i] as number;
    if (c === 0x5c) put('\\\\');
    else if (c === 0x0a) put('\\n');
    else if (c === 0x0d) put('\\r');
    else if (c === 0x09) put('\\t');
    else if (c < 0x20 || c === 0x7f) put(`\\x${hex(c, 2)}`);
    else if (c < 0x80) out.push(c);
    else {
      const seq = decodeUtf8At(bytes, i);
      if (seq === undefined) put(`\\x${hex(c, 2)}`);
      else if (UNSAFE_SPEC.has(seq.cp)) put(`\\u{${hex(seq.cp, 4)}}`);
      else out.push(...bytes.subarray(i, i + seq.len));
      i += seq === undefined ? 1 : seq.len;
      continue;
    }
    i++;
  }
  return Buffer.from(out);
}

/** A seeded generator of numbers in [0, 1): mulberry32. */
function mulberry32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Byte sequences that are not valid UTF-8, one kind of invalidity each. */
const INVALID_SEQUENCES = [
  [0xc0, 0xaf], // overlong '/'
  [0xc1, 0xbf], // overlong
  [0xe0, 0x80, 0xaf], // overlong, three bytes
  [0xe0, 0x9f, 0xbf], // overlong, the largest
  [0xf0, 0x80, 0x80, 0xaf], // overlong, four bytes
  [0xf0, 0x8f, 0xbf, 0xbf], // overlong, the largest
  [0xed, 0xa0, 0x80], // surrogate D800
  [0xed, 0xbf, 0xbf], // surrogate DFFF
  [0xf4, 0x90, 0x80, 0x80], // U+110000
  [0xf5, 0x80, 0x80, 0x80], // lead byte past U+10FFFF
  [0xf8, 0x88, 0x80, 0x80, 0x80], // five-byte form
  [0xfe],
  [0xff],
  [0x80], // lone continuation bytes
  [0xbf],
  [0xe2, 0x41], // lead byte, then no continuation
  [0xf0, 0x9f, 0x41],
];

/** Seeded inputs that exercise every rule of text escaping, plain ASCII runs between. */
function escapeInputs(seed: number, count: number): Buffer[] {
  const rand = mulberry32(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(list: readonly T[]) => list[int(list.length)] as T;
  // The BMP's unsafe code points, and the ends and a middle of each range above it: drawn
  // evenly, the 4096 tag characters would crowd out the rest.
  const unsafe = [...UNSAFE_SPEC].filter(
    (cp) => cp <= 0xffff || !UNSAFE_SPEC.has(cp - 1) || !UNSAFE_SPEC.has(cp + 1) || cp % 97 === 0,
  );
  const neighbours = unsafe.flatMap((cp) => [cp - 1, cp + 1]).filter((cp) => !UNSAFE_SPEC.has(cp));
  const plain = (length: number) =>
    Array.from({ length }, () => {
      const c = 0x20 + int(0x5f);
      return c === 0x5c ? 0x61 : c;
    });
  const utf8 = (cp: number) => [...Buffer.from(String.fromCodePoint(cp))];
  const validCodePoint = () => {
    const kind = int(3);
    if (kind === 0) return 0xa0 + int(0x800 - 0xa0);
    if (kind === 1) {
      const cp = 0x800 + int(0x10000 - 0x800);
      return cp >= 0xd800 && cp <= 0xdfff ? 0x4e2d : cp;
    }
    return 0x10000 + int(0x110000 - 0x10000);
  };
  const truncated = () => {
    const whole = utf8(pick([0xe9, 0x2713, 0x1f600, 0x10fffd, 0x200b]));
    return whole.slice(0, 1 + int(whole.length - 1));
  };
  const pieces: (() => number[])[] = [
    () => plain(32 + int(68)),
    () => plain(32 + int(68)),
    () => plain(1 + int(7)),
    () => [pick([...range(0x00, 0x1f), 0x7f])],
    () => [0x5c],
    () => utf8(validCodePoint()),
    () => utf8(pick(unsafe)),
    () => utf8(pick(neighbours)),
    () => pick(INVALID_SEQUENCES),
    truncated,
    () => [int(256)],
  ];
  return Array.from({ length: count }, () => {
    const bytes: number[] = [];
    for (let k = 2 + int(12); k > 0; k--) bytes.push(...(pick(pieces) as () => number[])());
    if (rand() < 0.3) bytes.push(...truncated());
    return Buffer.from(bytes);
  });
}

/**
 * `bytes` at `offset` of a larger buffer whose other bytes are continuation bytes, so that
 * decoding past either end would change the output.
 */
function placed(bytes: Uint8Array, offset: number): Buffer {
  const whole = new Uint8Array(new ArrayBuffer(offset + bytes.length + 8)).fill(0x9c);
  whole.set(bytes, offset);
  return Buffer.from(whole.buffer, offset, bytes.length);
}

/** A ByteSink over one big buffer, the same for every sink: one is used at a time. */
const sinkBuffer = Buffer.alloc(1 << 20);
function sink() {
  const buf = sinkBuffer;
  return {
    used: 0,
    room(n: number) {
      if (buf.length - this.used < n) throw new Error('test sink too small');
      return buf;
    },
    text(encoding: BufferEncoding = 'latin1') {
      return buf.toString(encoding, 0, this.used);
    },
  };
}

describe('escapeText', () => {
  it.each([
    ['plain ASCII', Buffer.from('Hello'), 'Hello'],
    ['empty', Buffer.alloc(0), ''],
    ['newline, CR, tab', Buffer.from('a\nb\rc\td'), 'a\\nb\\rc\\td'],
    ['ESC sequences', Buffer.from('\x1b[31mred\x1b[0m'), '\\x1b[31mred\\x1b[0m'],
    ['NUL and DEL', b(0, 0x7f), '\\x00\\x7f'],
    ['backslash, reversibly', Buffer.from('C:\\dir'), 'C:\\\\dir'],
    ['invalid UTF-8', b(0x68, 0xff, 0x69), 'h\\xffi'],
    ['valid UTF-8', Buffer.from('héllo wörld ✓ 😀'), 'héllo wörld ✓ 😀'],
    ['a truncated sequence', b(0xe2, 0x9c), '\\xe2\\x9c'],
    ['an overlong encoding', b(0xc0, 0xaf), '\\xc0\\xaf'],
    ['an encoded surrogate', b(0xed, 0xa0, 0x80), '\\xed\\xa0\\x80'],
    ['C1 control CSI (U+009B)', b(0xc2, 0x9b), '\\u{009b}'],
    ['bidi override (U+202E)', Buffer.from('a\u202eb'), 'a\\u{202e}b'],
    ['line separator (U+2028)', Buffer.from('a\u2028b'), 'a\\u{2028}b'],
  ])('%s', (_name, input, expected) => {
    expect(escapeText(input)).toBe(expected);
  });
  it('never leaves a control byte in its output, whatever the input', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed & 0xff;
    };
    for (let n = 0; n < 500; n++) {
      const input = Buffer.from(Array.from({ length: 1 + (n % 40) }, rand));
      expect([...escapeText(input)].filter(isUnsafe)).toEqual([]);
    }
  });
});

describe('the unsafe code points', () => {
  it('UNSAFE_CODE_POINTS lists exactly the specified set, in ascending, disjoint ranges', () => {
    const listed = UNSAFE_CODE_POINTS.flatMap(({ first, last }) => range(first, last));
    expect(listed).toEqual([...UNSAFE_SPEC].sort((x, y) => x - y));
    expect(Object.isFrozen(UNSAFE_CODE_POINTS) && UNSAFE_CODE_POINTS.every(Object.isFrozen)).toBe(true);
    for (const [k, { first, last, name }] of UNSAFE_CODE_POINTS.entries()) {
      expect(first).toBeLessThanOrEqual(last);
      expect(name).not.toBe('');
      if (k > 0) expect(first).toBeGreaterThan((UNSAFE_CODE_POINTS[k - 1] as { last: number }).last);
    }
  });
  it.each(NEWLY_ESCAPED.map((cp) => [`U+${hex(cp, 4).toUpperCase()}`, cp]))(
    'escapeText writes %s as \\u{NNNN}',
    (_name, cp) => {
      const ch = String.fromCodePoint(cp);
      expect(escapeText(Buffer.from(`a${ch}b`))).toBe(`a\\u{${hex(cp, 4)}}b`);
      expect(escapeText(Buffer.from(`${ch}${ch}`))).toBe(`\\u{${hex(cp, 4)}}\\u{${hex(cp, 4)}}`);
    },
  );
  it('escapeText treats every code point as the specification says', () => {
    for (const cps of codePointGroups()) {
      const d = Buffer.from(String.fromCodePoint(...cps));
      expect(Buffer.from(escapeText(d)).equals(referenceEscape(d))).toBe(true);
    }
  });
});

describe('formatTimestamp', () => {
  it('prints ISO 8601 UTC with microseconds', () => {
    expect(formatTimestamp(at)).toBe('2026-11-24T10:00:00.123456Z');
    expect(formatTimestamp(Date.UTC(2026, 0, 1))).toBe('2026-01-01T00:00:00.000000Z');
  });
});

describe('hexDump', () => {
  it('lays out 16 bytes a line like hexdump -C', () => {
    expect(hexDump(Buffer.from('Hello World'))).toBe(
      '00000000  48 65 6c 6c 6f 20 57 6f  72 6c 64                 |Hello World|\n',
    );
    const two = hexDump(Buffer.from('0123456789abcdef\x00\xff', 'latin1'));
    expect(two).toBe(
      '00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n' +
        '00000010  00 ff                                             |..|\n',
    );
  });
  it('is empty for no bytes', () => {
    expect(hexDump(Buffer.alloc(0))).toBe('');
  });
});

describe('createFormatter', () => {
  it('text: the classic line, escaped, IPv6 in brackets', () => {
    const text = createFormatter('text');
    expect(text(dgram('Hello'))).toBe('Received message: Hello from 127.0.0.1:54321\n');
    expect(text(dgram('a\nb', '::1', 9))).toBe('Received message: a\\nb from [::1]:9\n');
    expect(text(dgram(''))).toBe('Received message:  from 127.0.0.1:54321\n');
  });
  it('text and hex with timestamps', () => {
    expect(createFormatter('text', { timestamps: true })(dgram('Hi'))).toBe(
      '2026-11-24T10:00:00.123456Z Received message: Hi from 127.0.0.1:54321\n',
    );
    expect(createFormatter('hex', { timestamps: true })(dgram('A'))).toBe(
      '2026-11-24T10:00:00.123456Z Received 1 byte from 127.0.0.1:54321\n' +
        '00000000  41                                                |A|\n',
    );
  });
  it('raw: the bytes and a newline', () => {
    expect(createFormatter('raw')(dgram(b(0, 0xff, 10)))).toEqual(b(0, 0xff, 10, 10));
  });
  it('hex: header with sender and size, then the dump', () => {
    expect(createFormatter('hex')(dgram('Hi'))).toBe(
      'Received 2 bytes from 127.0.0.1:54321\n00000000  48 69                                             |Hi|\n',
    );
    expect(createFormatter('hex')(dgram(''))).toBe('Received 0 bytes from 127.0.0.1:54321\n');
  });
  it('base64: one line', () => {
    expect(createFormatter('base64')(dgram(b(0, 1, 2, 0xff)))).toBe('AAEC/w==\n');
  });
  it('json: text only when the payload is valid UTF-8', () => {
    const format = createFormatter('json');
    const json = (d: Datagram) => format(d) as string;
    expect(JSON.parse(json(dgram('Hé\n')))).toEqual({
      ts: '2026-11-24T10:00:00.123456Z',
      from: { address: '127.0.0.1', port: 54321, family: 'IPv4' },
      size: 4,
      text: 'Hé\n',
      base64: Buffer.from('Hé\n').toString('base64'),
    });
    const binary = JSON.parse(json(dgram(b(0xff, 0), '::1', 7)));
    expect(binary).toEqual({
      ts: '2026-11-24T10:00:00.123456Z',
      from: { address: '::1', port: 7, family: 'IPv6' },
      size: 2,
      base64: '/wA=',
    });
    expect(json(dgram('x')).endsWith('}\n')).toBe(true);
    expect(json(dgram('a\nb')).split('\n')).toHaveLength(2);
  });
  it('text: each unsafe code point escaped, by both formatters', () => {
    const strings = createFormatter('text');
    const bytes = createByteFormatter('text');
    for (const cp of [...NEWLY_ESCAPED, ...ALREADY_ESCAPED]) {
      const expected = `Received message: a\\u{${hex(cp, 4)}}b from 127.0.0.1:54321\n`;
      const msg = dgram(`a${String.fromCodePoint(cp)}b`);
      expect(strings(msg)).toBe(expected);
      const out = sink();
      bytes(msg, out);
      expect(out.text('utf8')).toBe(expected);
    }
  });
  it('json: DEL, C1, separators and the invisible set \\u-escaped, the text round-tripping', () => {
    const strings = createFormatter('json');
    const bytes = createByteFormatter('json');
    const lines = (msg: Datagram) => {
      const out = sink();
      bytes(msg, out);
      return [strings(msg) as string, out.text('utf8')];
    };
    for (const cp of JSON_SPEC) {
      const ch = String.fromCodePoint(cp);
      for (const text of [`a${ch}b`, `${ch}`, `héllo ${ch}😀${ch} "q" \\ \t`]) {
        const data = Buffer.from(text);
        for (const line of lines(dgram(data))) {
          expect(line.includes(ch), `U+${hex(cp, 4)} raw in ${line}`).toBe(false);
          // JSON writes a character past U+FFFF as its two UTF-16 units.
          const units = [...Array.from({ length: ch.length }, (_, k) => ch.charCodeAt(k))];
          expect(line).toContain(units.map((u) => `\\u${hex(u, 4)}`).join(''));
          expect(line.indexOf('\n')).toBe(line.length - 1);
          const record = JSON.parse(line);
          expect(record.text).toBe(text);
          expect(Buffer.from(record.base64, 'base64').equals(data)).toBe(true);
        }
      }
    }
  });
  it('json: every code point round-trips, none of the unsafe ones left raw', () => {
    const text = codePointGroups()
      .map((cps) => String.fromCodePoint(...cps))
      .join('');
    const data = Buffer.from(text);
    const line = createFormatter('json')(dgram(data)) as string;
    expect(JSON.parse(line).text === text).toBe(true);
    expect(JSON.parse(line).base64 === data.toString('base64')).toBe(true);
    const unsafe = new Set(JSON_SPEC);
    const raw: string[] = [];
    for (const ch of line) if (unsafe.has(ch.codePointAt(0) as number)) raw.push(ch);
    expect(raw).toEqual([]);
    expect(line.indexOf('\n')).toBe(line.length - 1);
  });
  it('json: a plain payload is what JSON.stringify gives', () => {
    const text = 'Hello, "world" \\ \u00e9 \u{1f600} \u0001';
    const line = createFormatter('json')(dgram(text)) as string;
    expect(line).toContain(`,"text":${JSON.stringify(text)},`);
  });
  it('rejects unknown formats, listing the allowed ones', () => {
    expect(() => parseOutputFormat('xml')).toThrow(
      "unknown format 'xml' (allowed: text, raw, hex, base64, json)",
    );
  });
});

describe('createByteFormatter', () => {
  it('writes the same bytes as the string formatters, for every format and any payload', () => {
    let seed = 99;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const samples = [
      Buffer.alloc(0),
      Buffer.from('Hello'),
      Buffer.from('héllo ✓ \u202e \\ \x1b[0m\n'),
      Buffer.from([0xc2, 0x9b, 0xff, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x98, 0x80]),
      Buffer.from('x'.repeat(100)),
      ...Array.from({ length: 200 }, (_, n) =>
        Buffer.from(
          Array.from({ length: rand() % 90 }, () => (n % 3 === 0 ? 32 + (rand() % 95) : rand() & 0xff)),
        ),
      ),
    ];
    for (const format of ['text', 'hex', 'raw', 'base64', 'json'] as const) {
      for (const timestamps of [false, true]) {
        const strings = createFormatter(format, { timestamps });
        const bytes = createByteFormatter(format, { timestamps });
        for (const [i, data] of samples.entries()) {
          const msg = dgram(data, i % 2 ? '::1' : '127.0.0.1', 1000 + i);
          const out = sink();
          bytes(msg, out);
          const expected = strings(msg);
          expect(out.text()).toBe(Buffer.from(expected as string | Uint8Array).toString('latin1'));
        }
      }
    }
  });
});

describe('escapeInto on aligned buffers (word at a time)', () => {
  it('finds an unsafe byte at every position of every word', () => {
    const unsafe = [0x00, 0x1b, 0x0a, 0x5c, 0x7f, 0x80, 0xff, 0xc2];
    for (let size = 28; size <= 72; size += 11) {
      for (let at = 0; at < size; at++) {
        const d = Buffer.alloc(size, 0x61); // own memory: 4-byte aligned
        d[at] = unsafe[(size + at) % unsafe.length] as number;
        const out = Buffer.alloc(size * 4);
        expect(out.toString('latin1', 0, escapeInto(d, out, 0))).toBe(referenceEscape(d).toString('latin1'));
      }
    }
  });
});

describe('escapeInto against a reference escaper', () => {
  it('escapes seeded random inputs as the reference does, at every alignment', () => {
    for (const [n, input] of escapeInputs(20261124, 1500).entries()) {
      const expected = referenceEscape(input).toString('latin1');
      for (let offset = 0; offset < 8; offset++) {
        const d = placed(input, offset);
        // Exactly the room the contract asks for, past a few bytes that must stay untouched.
        const out = Buffer.alloc(5 + d.length * 4);
        const end = escapeInto(d, out, 5);
        expect(end, `input ${n} at offset ${offset} overran its room`).toBeLessThanOrEqual(out.length);
        expect(out.toString('latin1', 5, end), `input ${n} at offset ${offset}`).toBe(expected);
        expect(out.subarray(0, 5).every((x) => x === 0)).toBe(true);
      }
      expect(Buffer.from(escapeText(input)).toString('latin1'), `escapeText, input ${n}`).toBe(expected);
    }
  });
  it('the inputs reach the word-at-a-time path and every kind of piece', () => {
    const inputs = escapeInputs(20261124, 1500);
    const all = Buffer.concat(inputs);
    expect(inputs.filter((d) => d.length >= 32).length).toBeGreaterThan(1000);
    // Every unsafe code point of the BMP, and the ends of each range above it.
    const wanted = [...UNSAFE_SPEC].filter(
      (cp) => cp <= 0xffff || !UNSAFE_SPEC.has(cp - 1) || !UNSAFE_SPEC.has(cp + 1),
    );
    for (const cp of wanted)
      expect(all.includes(Buffer.from(String.fromCodePoint(cp))), `U+${hex(cp, 4)}`).toBe(true);
    for (const seq of INVALID_SEQUENCES) expect(all.includes(Buffer.from(seq))).toBe(true);
  });
});

describe.runIf(nativeAddon || process.env.CI)('native output helpers', () => {
  it('write the same hex dump and base64 as the TypeScript code, for any bytes', () => {
    const addon = nativeAddon as NonNullable<typeof nativeAddon>;
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 300; n++) {
      const size = n < 40 ? n : rand() % 2000;
      const data = Buffer.from(Array.from({ length: size }, () => rand() & 0xff));
      const a = Buffer.alloc(size * 5 + 200);
      const b = Buffer.alloc(size * 5 + 200);
      expect(a.toString('latin1', 3, addon.hexDumpInto(data, a, 3))).toBe(
        b.toString('latin1', 3, hexDumpIntoJs(data, b, 3)),
      );
      expect(a.toString('latin1', 0, addon.base64Into(data, a, 0))).toBe(data.toString('base64'));
    }
    expect(() => addon.hexDumpInto(Buffer.alloc(100), Buffer.alloc(10), 0)).toThrow('no room for the dump');
  });
});
