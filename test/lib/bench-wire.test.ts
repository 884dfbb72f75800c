/** The bench's datagrams: what is written reads back; what is not ours, or cut, says so. */
import { describe, expect, it } from 'vitest';
import {
  DATA_HEADER,
  decode,
  encodeControl,
  Kind,
  MAGIC,
  stampDataHeader,
  writeDataHeader,
} from '../../src/lib/bench/wire.js';
import { seededRandom } from '../../src/lib/index.js';

describe('bench wire format', () => {
  it('a data header reads back: session, 64-bit sequence number, send time to the nanosecond', () => {
    const buf = Buffer.alloc(100);
    const sentMs = 1_764_288_000_123.4568;
    writeDataHeader(buf, 0, Kind.Data, 2 ** 47 + 5, 2 ** 40 + 3, sentMs);
    expect(buf.readUInt32BE(0)).toBe(MAGIC);
    const d = decode(buf);
    expect(d).toMatchObject({ kind: Kind.Data, session: 2 ** 47 + 5, seq: 2 ** 40 + 3 });
    expect(d.kind === Kind.Data && Math.abs(d.sentMs - sentMs)).toBeLessThan(0.000_01);
    // The seconds and nanoseconds as written (a double of ms since the epoch holds about 0.2 us).
    expect(buf.readUInt32BE(24)).toBe(1_764_288_000);
    expect(Math.abs(buf.readUInt32BE(28) - 123_456_789)).toBeLessThan(500);
    stampDataHeader(buf, 0, 7, 1000.5);
    expect(decode(buf)).toMatchObject({ kind: Kind.Data, seq: 7, sentMs: 1000.5 });
    expect(decode(buf.subarray(0, DATA_HEADER))).toMatchObject({ seq: 7 });
  });

  it('a control message reads back', () => {
    const d = decode(encodeControl(42, { type: 'hello', version: 1 }));
    expect(d).toEqual({ kind: Kind.Control, session: 42, message: { type: 'hello', version: 1 } });
  });

  it('foreign and garbled datagrams say so, and nothing throws on random bytes', () => {
    expect(decode(Buffer.from('hello world, not a bench datagram'))).toEqual({ kind: 'foreign' });
    expect(decode(Buffer.alloc(0))).toEqual({ kind: 'foreign' });
    const data = Buffer.alloc(DATA_HEADER);
    writeDataHeader(data, 0, Kind.Data, 1, 1, 0);
    expect(decode(data.subarray(0, DATA_HEADER - 1))).toEqual({ kind: 'garbled' });
    const control = encodeControl(1, { type: 'stop' });
    expect(decode(control.subarray(0, control.length - 1))).toEqual({ kind: 'garbled' });
    const unknown = Buffer.from(data);
    unknown[4] = 9;
    expect(decode(unknown)).toEqual({ kind: 'garbled' });
    // A sequence number past 2^53 is not one of ours.
    const huge = Buffer.from(data);
    huge.writeUInt32BE(0xffffffff, 16);
    expect(decode(huge)).toEqual({ kind: 'garbled' });
    const random = seededRandom(11);
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.alloc(Math.floor(random.next() * 64));
      for (let k = 0; k < b.length; k++) b[k] = Math.floor(random.next() * 256);
      // Half of them with the magic, so that the bench's own parsing is what is tried.
      if (i % 2 === 0 && b.length >= 5) {
        b.writeUInt32BE(MAGIC, 0);
        b[4] = 1 + (i % 3);
      }
      expect(() => decode(b)).not.toThrow();
    }
  });
});
