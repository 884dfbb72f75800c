/**
 * Load-test payloads, laid out like the C blaster's: an 8-byte big-endian sequence number,
 * then the letters a to z repeated.
 */
import { InvalidArgumentError } from './errors.js';

/** The smallest generated datagram: the sequence number alone. */
export const MIN_SEQUENCED_SIZE = 8;

/**
 * Makes a buffer of `count` datagrams of `size` bytes, back to back, filler in place; the
 * sequence numbers are written by {@link numberDatagrams}.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` when `size` is under 8
 */
export function createSequencedBatch(size: number, count: number): Buffer {
  if (!Number.isInteger(size) || size < MIN_SEQUENCED_SIZE) {
    throw new InvalidArgumentError(
      `size ${size} is too small: at least ${MIN_SEQUENCED_SIZE} bytes hold the sequence number`,
    );
  }
  const buf = Buffer.alloc(size * count);
  for (let d = 0; d < count; d++) {
    const base = d * size;
    for (let j = MIN_SEQUENCED_SIZE; j < size; j++) buf[base + j] = 97 + ((j - MIN_SEQUENCED_SIZE) % 26);
  }
  return buf;
}

/** Writes sequence numbers `first`, `first + 1`, ... into the first `count` datagrams. */
export function numberDatagrams(buf: Buffer, size: number, count: number, first: number): void {
  for (let d = 0; d < count; d++) {
    const seq = first + d;
    const at = d * size;
    buf.writeUInt32BE(Math.floor(seq / 0x100000000), at);
    buf.writeUInt32BE(seq >>> 0, at + 4);
  }
}

/** The sequence number at the start of a generated datagram. */
export function readSequence(data: Uint8Array): number {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return b.readUInt32BE(0) * 0x100000000 + b.readUInt32BE(4);
}
