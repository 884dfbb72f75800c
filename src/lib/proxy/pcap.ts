/**
 * A pcap file of what passes a proxy, as Wireshark and tshark read it: libpcap's format
 * (microsecond timestamps), link type RAW (101: each record an IP packet, version 4 or 6), with
 * the IP and UDP headers the datagrams had or would have on the wire built around each payload
 * (checksums computed), so that each leg shows with its own addresses and ports.
 */
import { type Endpoint, ipv6Bytes } from '../address.js';
import type { ByteSink } from '../output.js';

/** The snapshot length the header declares: tcpdump's default, above any record written (an IPv6 one of 65527 bytes of payload is 65575). */
const SNAPLEN = 262144;
const LINKTYPE_RAW = 101;

/** Writes pcap records into a {@link ByteSink} (a BatchWriter on a file): a header first. */
export class PcapWriter {
  #out: ByteSink & { commit(): unknown };
  #id = 0;

  constructor(out: ByteSink & { commit(): unknown }) {
    this.#out = out;
    const buf = out.room(24);
    const o = out.used;
    buf.writeUInt32LE(0xa1b2c3d4, o); // microsecond timestamps, little-endian
    buf.writeUInt16LE(2, o + 4);
    buf.writeUInt16LE(4, o + 6);
    buf.writeInt32LE(0, o + 8);
    buf.writeUInt32LE(0, o + 12);
    buf.writeUInt32LE(SNAPLEN, o + 16);
    buf.writeUInt32LE(LINKTYPE_RAW, o + 20);
    out.used = o + 24;
    out.commit();
  }

  /** One datagram from `from` to `to` at `at` (ms since the epoch). */
  write(at: number, from: Endpoint, to: Endpoint, data: Uint8Array): void {
    const src = addressBytes(from.address);
    const dst = addressBytes(to.address);
    // IPv4 when both ends are (or are IPv4 seen by an IPv6 socket, ::ffff:a.b.c.d).
    const v4 = src.length === 4 && dst.length === 4;
    const s = v4 ? src : as16(src);
    const d = v4 ? dst : as16(dst);
    const ipLength = v4 ? 20 : 40;
    const udpLength = 8 + data.length;
    const total = ipLength + udpLength;
    const out = this.#out;
    const buf = out.room(16 + total);
    let o = out.used;
    const usec = Math.round(at * 1000);
    buf.writeUInt32LE(Math.floor(usec / 1e6), o);
    buf.writeUInt32LE(usec % 1e6, o + 4);
    buf.writeUInt32LE(total, o + 8);
    buf.writeUInt32LE(total, o + 12);
    o += 16;
    const ip = o;
    if (v4) {
      buf[o] = 0x45;
      buf[o + 1] = 0;
      buf.writeUInt16BE(total, o + 2);
      buf.writeUInt16BE(this.#id++ & 0xffff, o + 4);
      buf.writeUInt16BE(0x4000, o + 6); // don't fragment
      buf[o + 8] = 64;
      buf[o + 9] = 17;
      buf.writeUInt16BE(0, o + 10);
      buf.set(s, o + 12);
      buf.set(d, o + 16);
      buf.writeUInt16BE(checksum(buf, o, o + 20, 0), o + 10);
    } else {
      buf.writeUInt32BE(0x60000000, o);
      buf.writeUInt16BE(udpLength, o + 4);
      buf[o + 6] = 17;
      buf[o + 7] = 64;
      buf.set(s, o + 8);
      buf.set(d, o + 24);
    }
    o = ip + ipLength;
    buf.writeUInt16BE(from.port, o);
    buf.writeUInt16BE(to.port, o + 2);
    buf.writeUInt16BE(udpLength, o + 4);
    buf.writeUInt16BE(0, o + 6);
    buf.set(data, o + 8);
    // The pseudo-header's sum: addresses, protocol, UDP length.
    let pseudo = 17 + udpLength;
    for (const bytes of [s, d])
      for (let i = 0; i < bytes.length; i += 2)
        pseudo += ((bytes[i] as number) << 8) | (bytes[i + 1] as number);
    const sum = checksum(buf, o, o + udpLength, pseudo);
    buf.writeUInt16BE(sum === 0 ? 0xffff : sum, o + 6);
    out.used = o + udpLength;
    out.commit();
  }
}

/** The Internet checksum of buf[start, end), with `initial` already summed. */
function checksum(buf: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += ((buf[i] as number) << 8) | (buf[i + 1] as number);
  if ((end - start) % 2 === 1) sum += (buf[end - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** 4 bytes for IPv4 (and IPv4-mapped IPv6), 16 for IPv6. */
function addressBytes(address: string): number[] {
  if (!address.includes(':')) return address.split('.').map(Number);
  const bytes = ipv6Bytes(address);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

function as16(bytes: number[]): number[] {
  return bytes.length === 16 ? bytes : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...bytes];
}
