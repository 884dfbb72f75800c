import { describe, expect, it } from 'vitest';
import {
  decodeHexLine,
  type FramedRecords,
  Framer,
  type Framing,
  InputError,
  MessageTooLargeError,
  parseFraming,
  seededRandom,
} from '../../src/lib/index.js';

const s = (bufs: Buffer[]) => bufs.map((x) => x.toString('latin1'));

/** Frames `input` fed in chunks of `size` bytes. */
function frame(
  framing: 'line' | 'nul' | 'whole' | 'hex',
  input: string | Buffer,
  size = 3,
  max = 100,
): Buffer[] {
  const f = new Framer(framing, max);
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(...f.push(bytes.subarray(i, i + size)));
  out.push(...f.end());
  return out;
}

describe('line framing', () => {
  it.each([1, 2, 3, 7, 1000])('splits lines whatever the chunk size (%i)', (size) => {
    expect(s(frame('line', 'one\ntwo\r\n\nthree', size))).toEqual(['one', 'two', '', 'three']);
  });
  it('sends no extra datagram for a final newline', () => {
    expect(s(frame('line', 'a\nb\n'))).toEqual(['a', 'b']);
    expect(s(frame('line', ''))).toEqual([]);
  });
  it('strips only one trailing CR', () => {
    expect(s(frame('line', 'a\r\r\n'))).toEqual(['a\r']);
  });
  it('copes with the caller reusing its chunk buffer', () => {
    const f = new Framer('line', 100);
    const chunk = Buffer.from('abc');
    expect(f.push(chunk)).toEqual([]);
    chunk.write('xyz');
    expect(s(f.push(Buffer.from('\n')))).toEqual(['abc']);
  });
});

describe('nul and whole framing', () => {
  it('nul: records end at NUL; an unterminated last one counts', () => {
    expect(s(frame('nul', 'a\nb\0c\0d'))).toEqual(['a\nb', 'c', 'd']);
    expect(s(frame('nul', 'x\0'))).toEqual(['x']);
  });
  it('whole: all of it, even empty', () => {
    expect(s(frame('whole', 'a\nb\0c'))).toEqual(['a\nb\0c']);
    expect(s(frame('whole', ''))).toEqual(['']);
  });
});

describe('hex framing', () => {
  it('decodes a line of hex per datagram, spaces allowed', () => {
    expect(frame('hex', '48656c6c6f\n48 65 6C\n\n00ff', 4).map((x) => x.toString('hex'))).toEqual([
      '48656c6c6f',
      '48656c',
      '',
      '00ff',
    ]);
  });
  it('names the line of bad hex', () => {
    expect(() => frame('hex', '00\nzz\n')).toThrow(
      new InputError("line 2: 'zz' is not hex (expected pairs of 0-9a-f)"),
    );
    expect(() => decodeHexLine(Buffer.from('abc'), 4)).toThrow('line 4: odd number of hex digits');
  });
});

/** The error `fn` throws; fails the test when it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

/**
 * Pushes `chunk` again and again, as from an endless device, and returns after which push (1-based)
 * the framer threw, and what; fails after `maxPushes` without an error.
 */
function pushUntilThrow(f: Framer, chunk: Buffer, maxPushes: number): { pushes: number; err: unknown } {
  for (let i = 1; i <= maxPushes; i++) {
    let records: Buffer[];
    try {
      records = f.push(chunk);
    } catch (err) {
      return { pushes: i, err };
    }
    expect(records).toEqual([]);
  }
  throw new Error(`no error after ${maxPushes} pushes`);
}

const tooLarge = (message: string, limit: number) => ({
  name: 'MessageTooLargeError',
  code: 'UDP_ERR_MSG_TOO_LARGE',
  size: limit + 1,
  limit,
  message,
});

describe('size limit', () => {
  const limit = 65507;

  it.each([
    ['whole', Buffer.alloc(4096), 'the input'],
    ['line', Buffer.alloc(4096, 'x'), 'message 1 (line 1)'],
    ['nul', Buffer.alloc(4096, 'x'), 'message 1'],
  ] as const)('%s: an endless record fails in the push that passes the limit', (framing, chunk, where) => {
    const f = new Framer(framing, limit);
    const { pushes, err } = pushUntilThrow(f, chunk, 1000);
    // 16 chunks of 4096 bytes are the first to hold limit + 1 bytes.
    expect(pushes).toBe(Math.ceil((limit + 1) / chunk.length));
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect(err).toMatchObject(tooLarge(`${where} is over the 65507-byte limit (65508 bytes so far)`, limit));
    expect(() => f.push(chunk)).toThrow(err as Error);
    expect(() => f.end()).toThrow(err as Error);
  });

  it('hex: an endless line fails once its digits decode to more than the limit', () => {
    const f = new Framer('hex', limit);
    const chunk = Buffer.from('0a1b2c3d'.repeat(512));
    const { pushes, err } = pushUntilThrow(f, chunk, 1000);
    expect(pushes).toBe(Math.ceil((2 * limit + 2) / chunk.length));
    expect(err).toMatchObject(
      tooLarge('message 1 (line 1) is over the 65507-byte limit (65508 bytes so far)', limit),
    );
  });

  it('hex: an endless line that is not hex (/dev/zero) fails at its first byte', () => {
    const f = new Framer('hex', limit);
    const { pushes, err } = pushUntilThrow(f, Buffer.alloc(4096), 1000);
    expect(pushes).toBe(1);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({
      code: 'UDP_ERR_INPUT',
      message: "line 1: '\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00' is not hex (expected pairs of 0-9a-f)",
    });
  });

  it('fails in the first push over the limit even when one chunk carries the whole record', () => {
    const f = new Framer('line', 10);
    const err = thrown(() => f.push(Buffer.from(`${'x'.repeat(30)}\nnext\n`)));
    expect(err).toMatchObject(tooLarge('message 1 (line 1) is over the 10-byte limit (11 bytes so far)', 10));
  });

  it('returns the records before the bad one first; the next call throws, and every one after', () => {
    const f = new Framer('line', 5);
    expect(s(f.push(Buffer.from('ok\nfine\ntoo long\nnever\n')))).toEqual(['ok', 'fine']);
    const err = thrown(() => f.push(Buffer.from('more\n')));
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect(err).toMatchObject(tooLarge('message 3 (line 3) is over the 5-byte limit (6 bytes so far)', 5));
    expect(() => f.end()).toThrow(err as Error);
  });

  it('returns the records before a bad one that has not ended yet', () => {
    const f = new Framer('nul', 5);
    expect(s(f.push(Buffer.from(`a\0bb\0${'c'.repeat(6)}`)))).toEqual(['a', 'bb']);
    expect(() => f.push(Buffer.from('\0'))).toThrow('message 3 is over the 5-byte limit (6 bytes so far)');
  });

  it('keeps the records held across chunks before the bad one', () => {
    const f = new Framer('line', 10);
    expect(s(f.push(Buffer.from('o')))).toEqual([]);
    expect(s(f.push(Buffer.from(`k\n${'x'.repeat(8)}`)))).toEqual(['ok']);
    expect(f.push(Buffer.from('xx'))).toEqual([]);
    expect(() => f.push(Buffer.from('x\nnext\n'))).toThrow(
      'message 2 (line 2) is over the 10-byte limit (11 bytes so far)',
    );
  });

  it.each([1, 2, 3, 4, 7, 11, 100])('reports the same error whatever the chunk size (%i)', (size) => {
    const input = `a\nbb\n${'y'.repeat(25)}\nnever\n`;
    expect(() => frame('line', input, size, 10)).toThrow(
      new MessageTooLargeError('message 3 (line 3) is over the 10-byte limit (11 bytes so far)', 11, 10),
    );
  });

  it.each([1, 2, 3, 4, 5, 11, 12, 100])(
    'allows exactly the limit in every framing (chunks of %i)',
    (size) => {
      const y = 'y'.repeat(10);
      expect(s(frame('line', `${y}\n${y}\r\n${y}`, size, 10))).toEqual([y, y, y]);
      expect(s(frame('line', `${y}\r`, size, 10))).toEqual([y]);
      expect(s(frame('nul', `${y}\0${y}`, size, 10))).toEqual([y, y]);
      expect(s(frame('whole', y, size, 10))).toEqual([y]);
      expect(
        frame('hex', `${'ab'.repeat(10)}\n${'cd '.repeat(10)}\r\n`, size, 10).map((x) => x.toString('hex')),
      ).toEqual(['ab'.repeat(10), 'cd'.repeat(10)]);
    },
  );

  it.each([1, 2, 3, 5, 11, 12, 100])(
    'fails one byte over the limit in every framing (chunks of %i)',
    (size) => {
      const y = 'y'.repeat(11);
      const over = (where: string) => `${where} is over the 10-byte limit (11 bytes so far)`;
      expect(() => frame('line', `${y}\n`, size, 10)).toThrow(over('message 1 (line 1)'));
      expect(() => frame('line', y, size, 10)).toThrow(over('message 1 (line 1)'));
      expect(() => frame('nul', `a\0${y}`, size, 10)).toThrow(over('message 2'));
      expect(() => frame('whole', y, size, 10)).toThrow(over('the input'));
      expect(() => frame('hex', `00\n${'ab'.repeat(11)}\n`, size, 10)).toThrow(over('message 2 (line 2)'));
    },
  );

  describe('line: a trailing \\r is not sent, so it does not count', () => {
    const y = 'y'.repeat(10);
    it('a line of limit bytes and \\r is sent without the \\r, when the \\n comes in a later chunk', () => {
      const f = new Framer('line', 10);
      expect(f.push(Buffer.from(`${y}\r`))).toEqual([]);
      expect(s(f.push(Buffer.from('\n')))).toEqual([y]);
    });
    it('and when the input ends after the \\r', () => {
      const f = new Framer('line', 10);
      expect(f.push(Buffer.from(`${y}\r`))).toEqual([]);
      expect(s(f.end())).toEqual([y]);
    });
    it('a byte after that \\r passes the limit, and fails in the push that brings it', () => {
      for (const next of ['z', '\r']) {
        const f = new Framer('line', 10);
        expect(f.push(Buffer.from(`${y}\r`))).toEqual([]);
        expect(() => f.push(Buffer.from(next))).toThrow(
          new MessageTooLargeError('message 1 (line 1) is over the 10-byte limit (11 bytes so far)', 11, 10),
        );
      }
    });
    it('a \\r that is not the last byte counts', () => {
      expect(() => frame('line', `${y}\r\r\n`, 3, 10)).toThrow('(11 bytes so far)');
      expect(() => frame('line', `${'y'.repeat(9)}\rz\n`, 3, 10)).toThrow('(11 bytes so far)');
      expect(s(frame('line', `${'y'.repeat(8)}\rz\r\n`, 3, 10))).toEqual([`${'y'.repeat(8)}\rz`]);
    });
    it('a limit of 0 allows empty lines, with or without \\r', () => {
      expect(s(frame('line', '\n\r\n\r', 1, 0))).toEqual(['', '', '']);
      expect(() => frame('line', '\nx', 1, 0)).toThrow(
        'message 2 (line 2) is over the 0-byte limit (1 byte so far)',
      );
    });
  });

  describe('hex: the limit is in decoded bytes', () => {
    it('spaces do not count', () => {
      expect(frame('hex', `ab${' '.repeat(1000)}cd\n`, 7, 2).map((x) => x.toString('hex'))).toEqual(['abcd']);
    });
    it('an odd digit past the limit at the end of the line is an odd line, not a large one', () => {
      expect(() => frame('hex', `${'ab'.repeat(10)}c\n`, 3, 10)).toThrow(
        new InputError('line 1: odd number of hex digits'),
      );
      expect(() => frame('hex', `${'ab'.repeat(10)}c`, 3, 10)).toThrow('line 1: odd number of hex digits');
    });
    it('names the bad text the same whatever the chunk size', () => {
      for (const size of [1, 2, 3, 5, 9, 100]) {
        expect(() => frame('hex', '00\n00 zz-not-hex\n', size)).toThrow(
          new InputError("line 2: 'zz-not-h' is not hex (expected pairs of 0-9a-f)"),
        );
        expect(() => frame('hex', '00\n00 zz', size)).toThrow("line 2: 'zz' is not hex");
      }
    });
  });
});

it('rejects unknown framings', () => {
  expect(() => parseFraming('csv')).toThrow("unknown framing 'csv' (allowed: line, nul, whole, hex)");
});

/** What `pushRecords` and `endRecords` framed, as Buffers (copied: their arrays are reused). */
function frameRecords(framing: Framing, input: Buffer, size: number, max = 100): Buffer[] {
  const f = new Framer(framing, max);
  const out: Buffer[] = [];
  const take = (r: FramedRecords) => {
    if (r.carried) out.push(Buffer.from(r.carried));
    for (let i = 0; i < r.count; i++) {
      const at = r.offsets[i] as number;
      out.push(Buffer.from(r.data.subarray(at, at + (r.lengths[i] as number))));
    }
  };
  for (let i = 0; i < input.length; i += size) take(f.pushRecords(input.subarray(i, i + size)));
  take(f.endRecords());
  return out;
}

describe('pushRecords: records as offsets and lengths into the chunk', () => {
  it('line: records in place, the one that straddles two chunks carried, CRLF split across them too', () => {
    const f = new Framer('line', 100);
    const first = Buffer.from('one\r\ntwo\nthr');
    const a = f.pushRecords(first);
    expect(a.carried).toBeUndefined();
    // No copy: the records lie in the chunk pushed.
    expect(a.data).toBe(first);
    expect(a.count).toBe(2);
    expect([...a.offsets.subarray(0, 2)]).toEqual([0, 5]);
    expect([...a.lengths.subarray(0, 2)]).toEqual([3, 3]);
    const b = f.pushRecords(Buffer.from('ee\r'));
    expect([b.carried, b.count]).toEqual([undefined, 0]);
    const c = f.pushRecords(Buffer.from('\nfour\n'));
    expect(c.carried?.toString()).toBe('three');
    expect(c.count).toBe(1);
    expect(c.data.toString('latin1', c.offsets[0], (c.offsets[0] as number) + (c.lengths[0] as number))).toBe(
      'four',
    );
    expect(f.records).toBe(4);
    const end = f.endRecords();
    expect([end.carried, end.count]).toEqual([undefined, 0]);
  });

  it('nul: an unterminated last record comes from endRecords, carried', () => {
    const f = new Framer('nul', 100);
    expect(f.pushRecords(Buffer.from('a\0b')).count).toBe(1);
    const end = f.endRecords();
    expect(end.carried?.toString()).toBe('b');
    expect(end.count).toBe(0);
  });

  it('whole and hex: the records decoded, packed into one buffer', () => {
    expect(s(frameRecords('whole', Buffer.from('a\nb'), 2))).toEqual(['a\nb']);
    expect(s(frameRecords('whole', Buffer.alloc(0), 2))).toEqual(['']);
    const f = new Framer('hex', 100);
    const r = f.pushRecords(Buffer.from('41 42\n\n43\n44'));
    expect(r.count).toBe(3);
    expect([...r.lengths.subarray(0, 3)]).toEqual([2, 0, 1]);
    expect(r.data.toString()).toBe('ABC');
    expect(f.endRecords().carried?.toString()).toBe('D');
  });

  it('grows its arrays for a chunk of many records, and reuses them', () => {
    const f = new Framer('line', 100);
    const r = f.pushRecords(Buffer.from('\n'.repeat(5000)));
    expect(r.count).toBe(5000);
    expect(r.offsets[4999]).toBe(4999);
    expect(r.lengths.subarray(0, 5000).every((n) => n === 0)).toBe(true);
    expect(f.pushRecords(Buffer.from('x\n')).offsets).toBe(r.offsets);
  });

  it.each(['line', 'nul', 'hex', 'whole'] as const)(
    '%s: the same records as push(), whatever the chunk size (seeded random input)',
    (framing) => {
      const random = seededRandom(7);
      // Short records of delimiters, CRs, hex digits and spaces, so that every framing finds some.
      const alphabet = Buffer.from('\n\n\r\0 0123456789abcdefxyz');
      const input = Buffer.alloc(4000);
      for (let i = 0; i < input.length; i++)
        input[i] = alphabet[Math.floor(random.next() * alphabet.length)] as number;
      const valid =
        framing === 'hex' ? Buffer.from(input.toString('latin1').replace(/[^0-9a-f\n]/g, '')) : input;
      for (const size of [1, 2, 3, 7, 64, 1000, 5000]) {
        let expected: Buffer[] | Error;
        try {
          expected = frame(framing, valid, size, 4000);
        } catch (err) {
          expected = err as Error;
        }
        if (expected instanceof Error)
          expect(() => frameRecords(framing, valid, size, 4000)).toThrow(expected);
        else expect(s(frameRecords(framing, valid, size, 4000))).toEqual(s(expected));
      }
    },
  );

  it.each([1, 2, 3, 5, 11, 12, 100])('the same limits and errors as push() (chunks of %i)', (size) => {
    const y = 'y'.repeat(10);
    const ok = Buffer.from(`${y}\n${y}\r\n${y}\r`);
    expect(s(frameRecords('line', ok, size, 10))).toEqual([y, y, y]);
    expect(() => frameRecords('line', Buffer.from(`a\n${y}\rz\n`), size, 10)).toThrow(
      new MessageTooLargeError('message 2 (line 2) is over the 10-byte limit (11 bytes so far)', 11, 10),
    );
    expect(() => frameRecords('nul', Buffer.from(`a\0${y}y`), size, 10)).toThrow(
      'message 2 is over the 10-byte limit (11 bytes so far)',
    );
  });

  it('returns the records before a bad one, carried one included; the next call throws', () => {
    const f = new Framer('line', 5);
    expect(f.pushRecords(Buffer.from('o')).count).toBe(0);
    const r = f.pushRecords(Buffer.from('k\nfine\ntoo long\nnever\n'));
    expect(r.carried?.toString()).toBe('ok');
    expect(r.count).toBe(1);
    expect(() => f.pushRecords(Buffer.from('more\n'))).toThrow(
      'message 3 (line 3) is over the 5-byte limit (6 bytes so far)',
    );
    expect(() => f.endRecords()).toThrow('message 3 (line 3)');
    const g = new Framer('line', 5);
    expect(() => g.pushRecords(Buffer.from('too long\n'))).toThrow('message 1 (line 1)');
  });
});
