import { describe, expect, it } from 'vitest';
import {
  decodeHexLine,
  Framer,
  InputError,
  MessageTooLargeError,
  parseFraming,
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

describe('size limit', () => {
  it('names the exact size and the limit, after the records before it', () => {
    const f = new Framer('line', 10);
    expect(s(f.push(Buffer.from('ok\n')))).toEqual(['ok']);
    expect(f.push(Buffer.from('x'.repeat(8)))).toEqual([]);
    expect(f.push(Buffer.from('x'.repeat(30)))).toEqual([]);
    let err: unknown;
    try {
      f.push(Buffer.from('xx\r\nnext\n'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect(err).toMatchObject({
      code: 'UDP_ERR_MSG_TOO_LARGE',
      size: 40,
      limit: 10,
      message: 'message 2 (line 2) is 40 bytes, over the 10-byte limit',
    });
  });
  it('returns the records before a bad one in the same chunk, then throws', () => {
    const f = new Framer('line', 5);
    expect(s(f.push(Buffer.from('ok\nfine\ntoo long\nnever\n')))).toEqual(['ok', 'fine']);
    expect(() => f.push(Buffer.from('more\n'))).toThrow(
      'message 3 (line 3) is 8 bytes, over the 5-byte limit',
    );
    expect(() => f.end()).toThrow(MessageTooLargeError);
  });
  it('allows exactly the limit', () => {
    expect(frame('line', `${'y'.repeat(10)}\n`, 4, 10)[0]).toHaveLength(10);
    expect(frame('line', `${'y'.repeat(10)}\r\n`, 4, 10)[0]).toHaveLength(10);
    expect(frame('whole', 'y'.repeat(10), 4, 10)[0]).toHaveLength(10);
  });
  it('counts a huge record without holding it', () => {
    const f = new Framer('whole', 1000);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 100; i++) f.push(chunk);
    expect(() => f.end()).toThrow('the input is 6553600 bytes, over the 1000-byte limit');
  });
  it('measures oversized hex in decoded bytes', () => {
    expect(() => frame('hex', `${'ab '.repeat(20)}\n`, 5, 10)).toThrow(
      'message 1 (line 1) is 20 bytes, over the 10-byte limit',
    );
  });
  it('nul records are numbered without lines', () => {
    expect(() => frame('nul', `a\0${'b'.repeat(20)}\0`, 5, 10)).toThrow(
      'message 2 is 20 bytes, over the 10-byte limit',
    );
  });
});

it('rejects unknown framings', () => {
  expect(() => parseFraming('csv')).toThrow("unknown framing 'csv' (allowed: line, nul, whole, hex)");
});
