/**
 * The bench's datagrams on the wire. Every one starts with the magic `UKB1` and a type. A data
 * datagram carries a flags byte (1: sent during --omit), then, big-endian, from byte 8: the
 * session id (64 bits), its sequence number (64 bits) and
 * when it was sent (seconds and nanoseconds since the Unix epoch, 32 bits each), then padding
 * to its size. A control datagram carries the session id (0 before the server gave one) and a
 * JSON message. Decoding never throws: what is not a bench datagram, or is cut short, says so.
 */

export const MAGIC = 0x554b4231; // 'UKB1'
/** Bytes before a data datagram's padding: its smallest size. */
export const DATA_HEADER = 32;
/** Bytes before a control datagram's JSON. */
export const CONTROL_HEADER = 16;

export enum Kind {
  /** A measured datagram. */
  Data = 1,
  /** A pingpong datagram sent back as it came (the type changed). */
  Echo = 2,
  /** A control message: JSON. */
  Control = 3,
  /** A part of a control message too large for one datagram. */
  Part = 4,
}

/** The most JSON one control datagram carries: with the headers, it fits a 1280-byte IPv6 MTU. */
export const CONTROL_MAX = 1200;
/** Bytes before a part's share of the message: the control header, then id, index and count. */
const PART_HEADER = CONTROL_HEADER + 12;
/** The most parts a message may have (20 MB): a report of some 90 000 intervals. */
export const MAX_PARTS = 16_384;

/** A data datagram's flag (its byte 5): sent during --omit, left out of the figures. */
export const OMITTED = 1;

/** A data or echo datagram's header. */
export interface DataHeader {
  kind: Kind.Data | Kind.Echo;
  /** Sent during the omitted start. */
  omitted: boolean;
  session: number;
  /** 0 to 2^53 - 1. */
  seq: number;
  /** When it was sent, ms since the epoch (the sender's clock), to the microsecond. */
  sentMs: number;
}

/** What a received datagram is. */
export type Decoded =
  | DataHeader
  | { kind: Kind.Control; session: number; message: unknown }
  /** Part `index` of `count` of message `id`. */
  | { kind: Kind.Part; session: number; id: number; index: number; count: number; data: Buffer }
  /** Not a bench datagram at all. */
  | { kind: 'foreign' }
  /** A bench datagram cut short or malformed. */
  | { kind: 'garbled' };

/** Writes a data header at `offset` of `buf` (which has room for DATA_HEADER bytes there). */
export function writeDataHeader(
  buf: Buffer,
  offset: number,
  kind: Kind.Data | Kind.Echo,
  session: number,
  seq: number,
  sentMs: number,
  flags = 0,
): void {
  buf.writeUInt32BE(MAGIC, offset);
  buf[offset + 4] = kind;
  buf[offset + 5] = flags;
  buf.writeUInt16BE(0, offset + 6);
  writeU64(buf, offset + 8, session);
  stampDataHeader(buf, offset, seq, sentMs);
}

/** A number of 0 to 2^53 - 1 as 64 bits, big-endian. */
function writeU64(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x100000000), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** 64 bits big-endian as a number, or -1 past 2^53 - 1 (not exact as a number). */
function readU64(buf: Buffer, offset: number): number {
  const hi = u32(buf, offset);
  return hi >= 0x200000 ? -1 : hi * 0x100000000 + u32(buf, offset + 4);
}

/**
 * Reads a data datagram's header in place, at `offset` of `buf` (`length` bytes), into `out`:
 * [session, seq, sentMs, flags]. False for anything else (control, echo, foreign or
 * malformed: `decode` says which). For a flood's datagrams, with no object made per datagram;
 * `decode` gives the same fields.
 */
export function readData(buf: Uint8Array, offset: number, length: number, out: Float64Array): boolean {
  if (length < DATA_HEADER || u32(buf, offset) !== MAGIC || buf[offset + 4] !== Kind.Data) return false;
  const flags = buf[offset + 5] as number;
  const hi = u32(buf, offset + 8);
  const seqHi = u32(buf, offset + 16);
  const nanos = u32(buf, offset + 28);
  if (flags > OMITTED || hi >= 0x200000 || seqHi >= 0x200000 || nanos > 999_999_999) return false;
  out[0] = hi * 0x100000000 + u32(buf, offset + 12);
  out[1] = seqHi * 0x100000000 + u32(buf, offset + 20);
  out[2] = u32(buf, offset + 24) * 1000 + nanos / 1e6;
  out[3] = flags;
  return true;
}

/** A big-endian 32-bit number at `offset`, known to be in bounds (no checks: the hot path). */
function u32(buf: Uint8Array, offset: number): number {
  return (
    (((buf[offset] as number) << 24) |
      ((buf[offset + 1] as number) << 16) |
      ((buf[offset + 2] as number) << 8) |
      (buf[offset + 3] as number)) >>>
    0
  );
}

/** A new session id: random, 48 bits. */
export function newSession(): number {
  return Math.floor(Math.random() * 2 ** 48) + 1;
}

/** Rewrites the sequence number and send time of a data header already in place. */
export function stampDataHeader(buf: Buffer, offset: number, seq: number, sentMs: number): void {
  writeU64(buf, offset + 16, seq);
  const seconds = Math.floor(sentMs / 1000);
  buf.writeUInt32BE(seconds >>> 0, offset + 24);
  buf.writeUInt32BE(Math.min(999_999_999, Math.round((sentMs - seconds * 1000) * 1e6)), offset + 28);
}

/** A control datagram: the magic, its kind, the session, then the message as JSON. */
export function encodeControl(session: number, message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const buf = Buffer.alloc(CONTROL_HEADER + json.length);
  buf.writeUInt32BE(MAGIC, 0);
  buf[4] = Kind.Control;
  writeU64(buf, 8, session);
  json.copy(buf, CONTROL_HEADER);
  return buf;
}

/**
 * A control message as datagrams: one, or, past {@link CONTROL_MAX} bytes of JSON, its parts
 * (the receiver puts them together: {@link Reassembler}). Made once and sent again as they are
 * on each retry, so that the parts of every try add up.
 */
export function encodeControlDatagrams(session: number, message: object): Buffer[] {
  const json = Buffer.from(JSON.stringify(message));
  if (json.length <= CONTROL_MAX) return [encodeControl(session, message)];
  const count = Math.ceil(json.length / CONTROL_MAX);
  if (count > MAX_PARTS) throw new RangeError(`a control message of ${json.length} bytes is too large`);
  const id = (Math.random() * 2 ** 32) >>> 0;
  const out: Buffer[] = [];
  for (let index = 0; index < count; index++) {
    const part = json.subarray(index * CONTROL_MAX, (index + 1) * CONTROL_MAX);
    const buf = Buffer.alloc(PART_HEADER + part.length);
    buf.writeUInt32BE(MAGIC, 0);
    buf[4] = Kind.Part;
    writeU64(buf, 8, session);
    buf.writeUInt32BE(id, 16);
    buf.writeUInt32BE(index, 20);
    buf.writeUInt32BE(count, 24);
    part.copy(buf, PART_HEADER);
    out.push(buf);
  }
  return out;
}

/** What `data` is: a data, echo or control datagram of the bench, or foreign, or garbled. */
export function decode(data: Uint8Array): Decoded {
  if (data.length < 4) return { kind: 'foreign' };
  // A Buffer as it comes (a received datagram): no view made per datagram.
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
  if (u32(buf, 0) !== MAGIC) return { kind: 'foreign' };
  if (buf.length < 5) return { kind: 'garbled' };
  const kind = buf[4];
  if (kind === Kind.Data || kind === Kind.Echo) {
    if (buf.length < DATA_HEADER) return { kind: 'garbled' };
    const session = readU64(buf, 8);
    const seq = readU64(buf, 16);
    const nanos = u32(buf, 28);
    // Past 2^53 a number is not exact: no sender of ours gets there.
    const flags = buf[5] as number;
    if (session < 0 || seq < 0 || nanos > 999_999_999 || flags > OMITTED) return { kind: 'garbled' };
    const omitted = flags === OMITTED;
    return { kind, omitted, session, seq, sentMs: u32(buf, 24) * 1000 + nanos / 1e6 };
  }
  if (kind === Kind.Part) {
    if (buf.length <= PART_HEADER) return { kind: 'garbled' };
    const session = readU64(buf, 8);
    const id = buf.readUInt32BE(16);
    const index = buf.readUInt32BE(20);
    const count = buf.readUInt32BE(24);
    if (session < 0 || count < 2 || count > MAX_PARTS || index >= count) return { kind: 'garbled' };
    return { kind, session, id, index, count, data: buf.subarray(PART_HEADER) };
  }
  if (kind === Kind.Control) {
    if (buf.length < CONTROL_HEADER) return { kind: 'garbled' };
    try {
      const message: unknown = JSON.parse(buf.toString('utf8', CONTROL_HEADER));
      if (typeof message !== 'object' || message === null) return { kind: 'garbled' };
      const session = readU64(buf, 8);
      if (session < 0) return { kind: 'garbled' };
      return { kind, session, message };
    } catch {
      return { kind: 'garbled' };
    }
  }
  return { kind: 'garbled' };
}
