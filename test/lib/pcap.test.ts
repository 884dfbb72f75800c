/**
 * PcapWriter's bytes, checked without any outside tool: the file header, each record's
 * header and time, and the IP and UDP checksums verified by summing every 16-bit word again
 * (RFC 1071: a packet with its checksum in place sums to 0xffff).
 */
import { describe, expect, it } from 'vitest';
import { PcapWriter } from '../../src/lib/index.js';

/** A ByteSink that keeps everything in memory. */
function memory() {
  let buf = Buffer.alloc(1 << 20);
  const sink = {
    used: 0,
    room(n: number): Buffer {
      if (sink.used + n > buf.length) buf = Buffer.concat([buf, Buffer.alloc(n + buf.length)]);
      return buf;
    },
    commit() {},
    bytes: () => buf.subarray(0, sink.used),
  };
  return sink;
}

/** The one's complement sum of 16-bit words (an odd last byte padded with 0), folded. */
function sum16(parts: number[][]): number {
  let s = 0;
  for (const bytes of parts) {
    for (let i = 0; i < bytes.length; i += 2) s += ((bytes[i] as number) << 8) + (bytes[i + 1] ?? 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

interface Record {
  seconds: number;
  micros: number;
  ip: Buffer;
}

function records(file: Buffer): Record[] {
  const out: Record[] = [];
  for (let o = 24; o < file.length; ) {
    const length = file.readUInt32LE(o + 8);
    expect(file.readUInt32LE(o + 12)).toBe(length);
    out.push({
      seconds: file.readUInt32LE(o),
      micros: file.readUInt32LE(o + 4),
      ip: file.subarray(o + 16, o + 16 + length),
    });
    o += 16 + length;
  }
  return out;
}

/** Checks a record's headers and checksums; returns its UDP ports and payload. */
function check(ip: Buffer): { from: number; to: number; payload: Buffer; udpChecksum: number } {
  const version = (ip[0] as number) >> 4;
  const v4 = version === 4;
  const header = v4 ? 20 : 40;
  const udp = ip.subarray(header);
  let pseudo: number[];
  if (v4) {
    expect(ip.readUInt16BE(2)).toBe(ip.length);
    expect(ip[9]).toBe(17);
    expect(sum16([[...ip.subarray(0, 20)]])).toBe(0xffff);
    pseudo = [...ip.subarray(12, 20), 0, 17, udp.length >> 8, udp.length & 0xff];
  } else {
    expect(version).toBe(6);
    expect(ip.readUInt16BE(4)).toBe(udp.length);
    expect(ip[6]).toBe(17);
    pseudo = [...ip.subarray(8, 40), 0, 0, udp.length >> 8, udp.length & 0xff, 0, 0, 0, 17];
  }
  expect(udp.readUInt16BE(4)).toBe(udp.length);
  expect(sum16([pseudo, [...udp]])).toBe(0xffff);
  return {
    from: udp.readUInt16BE(0),
    to: udp.readUInt16BE(2),
    payload: udp.subarray(8),
    udpChecksum: udp.readUInt16BE(6),
  };
}

const v4 = (address: string, port: number) => ({ address, port, family: 'IPv4' as const });
const v6 = (address: string, port: number) => ({ address, port, family: 'IPv6' as const });

describe('PcapWriter', () => {
  it('writes a libpcap header (microseconds, link type RAW) and records that check out', () => {
    const sink = memory();
    const pcap = new PcapWriter(sink);
    const at = 1_764_288_000_123.456; // ms since the epoch
    pcap.write(at, v4('127.0.0.1', 40000), v4('10.1.2.3', 53), Buffer.from('even'));
    pcap.write(at + 1, v4('127.0.0.1', 40000), v4('10.1.2.3', 53), Buffer.from('odd'));
    pcap.write(at + 2, v4('127.0.0.1', 1), v4('127.0.0.2', 2), Buffer.alloc(0));
    pcap.write(at + 3, v6('::1', 9000), v6('fe80::1', 9001), Buffer.from('six'));
    // Seen by an IPv6 socket, an IPv4 client is ::ffff:a.b.c.d: written as IPv4.
    pcap.write(at + 4, v6('::ffff:127.0.0.9', 7), v4('127.0.0.1', 8), Buffer.from('mapped'));
    const file = sink.bytes();
    expect([file.readUInt32LE(0), file.readUInt16LE(4), file.readUInt16LE(6)]).toEqual([0xa1b2c3d4, 2, 4]);
    expect([file.readUInt32LE(16), file.readUInt32LE(20)]).toEqual([262144, 101]);
    const recs = records(file);
    expect(recs.map((r) => [r.seconds, r.micros])).toEqual([
      [1_764_288_000, 123_456],
      [1_764_288_000, 124_456],
      [1_764_288_000, 125_456],
      [1_764_288_000, 126_456],
      [1_764_288_000, 127_456],
    ]);
    expect(recs.map((r) => check(r.ip)).map((u) => `${u.from}>${u.to}:${u.payload}`)).toEqual([
      '40000>53:even',
      '40000>53:odd',
      '1>2:',
      '9000>9001:six',
      '7>8:mapped',
    ]);
    expect([...(recs[4]?.ip.subarray(12, 20) ?? [])]).toEqual([127, 0, 0, 9, 127, 0, 0, 1]);
    expect(recs[3]?.ip.length).toBe(40 + 8 + 3);
  });

  it('a UDP checksum that comes to 0 is written as 0xffff (RFC 768)', () => {
    const from = v4('127.0.0.1', 1000);
    const to = v4('127.0.0.1', 2000);
    // Learn the checksum with a zero word, then make that word equal to it: the sum becomes
    // 0xffff and the checksum 0, which UDP sends as all ones (0 means "none").
    const probe = memory();
    new PcapWriter(probe).write(0, from, to, Buffer.alloc(2));
    const c = check(records(probe.bytes())[0]?.ip as Buffer).udpChecksum;
    const word = Buffer.alloc(2);
    word.writeUInt16BE(c);
    const sink = memory();
    new PcapWriter(sink).write(0, from, to, word);
    expect(check(records(sink.bytes())[0]?.ip as Buffer).udpChecksum).toBe(0xffff);
  });
});
