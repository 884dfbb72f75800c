/**
 * Isochronous traffic, as VoIP and games send it: a frame of so many bytes so many times a
 * second, each frame in one or more datagrams. What a receiver says of the frames: complete,
 * missed (a piece never came), and late: complete, but later than one frame period past the
 * best the path did (the least time from a frame's sending to its last piece arriving), which
 * is when a player with one frame of buffer would have had to skip it. Pure.
 */

/** Where a data datagram of a frame says which frame and which piece: after the 32-byte header. */
export const FRAME_FIELDS = 32;
/** The smallest datagram of a frame: the header and the frame fields. */
export const FRAME_HEADER = 40;

/** The datagram sizes of one frame of `bytes`, in pieces of at most `size`. */
export function framePieces(bytes: number, size: number): number[] {
  const pieces: number[] = [];
  for (let left = bytes; left > 0; left -= size) pieces.push(Math.max(FRAME_HEADER, Math.min(size, left)));
  return pieces;
}

export function writeFrame(buf: Buffer, offset: number, frame: number, piece: number, pieces: number): void {
  buf.writeUInt32BE(frame >>> 0, offset + FRAME_FIELDS);
  buf.writeUInt16BE(piece, offset + FRAME_FIELDS + 4);
  buf.writeUInt16BE(pieces, offset + FRAME_FIELDS + 6);
}

/** A datagram's frame fields, or undefined when it is too short or they make no sense. */
export function readFrame(data: Uint8Array): { frame: number; piece: number; pieces: number } | undefined {
  if (data.length < FRAME_HEADER) return undefined;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const frame = buf.readUInt32BE(FRAME_FIELDS);
  const piece = buf.readUInt16BE(FRAME_FIELDS + 4);
  const pieces = buf.readUInt16BE(FRAME_FIELDS + 6);
  return pieces > 0 && piece < pieces ? { frame, piece, pieces } : undefined;
}

/** The frames of a run. */
export interface FrameFigures {
  sent: number;
  complete: number;
  missed: number;
  late: number;
  /** The least time from a frame's sending to its last piece, ms (clocks apart: with their offset). */
  bestMs: number | undefined;
  periodMs: number;
}

interface Frame {
  pieces: number;
  got: number;
  seen: number[];
  sentMs: number;
  doneMs: number;
}

export class FrameTracker {
  readonly periodMs: number;
  #frames = new Map<number, Frame>();

  constructor(periodMs: number) {
    this.periodMs = periodMs;
  }

  /** A piece arrived (duplicates are the caller's to leave out). */
  add(frame: number, piece: number, pieces: number, sentMs: number, arrivedMs: number): void {
    let f = this.#frames.get(frame);
    if (f === undefined) {
      f = { pieces, got: 0, seen: [], sentMs, doneMs: 0 };
      this.#frames.set(frame, f);
    }
    if (f.seen.includes(piece) || pieces !== f.pieces) return;
    f.seen.push(piece);
    f.got++;
    f.sentMs = Math.min(f.sentMs, sentMs);
    f.doneMs = Math.max(f.doneMs, arrivedMs);
  }

  /** The figures once the sender says it sent frames `first` to `first + sent - 1`. */
  figures(first: number, sent: number): FrameFigures {
    let complete = 0;
    let best = Number.POSITIVE_INFINITY;
    const done: number[] = [];
    for (let k = first; k < first + sent; k++) {
      const f = this.#frames.get(k);
      if (f === undefined || f.got < f.pieces) continue;
      complete++;
      const took = f.doneMs - f.sentMs;
      done.push(took);
      if (took < best) best = took;
    }
    const late = done.filter((took) => took > best + this.periodMs).length;
    return {
      sent,
      complete,
      missed: sent - complete,
      late,
      bestMs: Number.isFinite(best) ? Math.round(best * 1000) / 1000 : undefined,
      periodMs: this.periodMs,
    };
  }
}
