import { describe, expect, it } from 'vitest';
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
/** Characters that must never reach a terminal: C0, DEL, C1, separators, bidi, U+FFFD. */
const isUnsafe = (ch: string) => {
  const c = ch.codePointAt(0) as number;
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x2028 ||
    c === 0x2029 ||
    (c >= 0x202a && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069) ||
    c === 0xfffd
  );
};

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
  it('rejects unknown formats, listing the allowed ones', () => {
    expect(() => parseOutputFormat('xml')).toThrow(
      "unknown format 'xml' (allowed: text, raw, hex, base64, json)",
    );
  });
});

describe('createByteFormatter', () => {
  /** A ByteSink over one big buffer. */
  function sink() {
    const buf = Buffer.alloc(1 << 20);
    return {
      used: 0,
      room(n: number) {
        if (buf.length - this.used < n) throw new Error('test sink too small');
        return buf;
      },
      text() {
        return buf.toString('latin1', 0, this.used);
      },
    };
  }
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
        expect(out.toString('latin1', 0, escapeInto(d, out, 0))).toBe(
          Buffer.from(escapeText(d)).toString('latin1'),
        );
      }
    }
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
