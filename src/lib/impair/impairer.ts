/**
 * One direction's impairments, decided per datagram in netem's order (net/sched/sch_netem.c,
 * netem_enqueue): duplicate, loss, corrupt, the queue limit, then reorder or delay and rate.
 * Pure: given the time a datagram arrived and its bytes, it says what becomes of it and of
 * its copy, every choice drawn from its Random (none for an impairment not set), so the same
 * seed and the same input give the same decisions in the same order. Sending is someone
 * else's (proxy.ts).
 */
import { InvalidArgumentError } from '../errors.js';
import { DelayModel, type Distribution, namedDistribution } from './delay.js';
import { type LossModel, type LossSpec, lossModel } from './loss.js';
import type { Random } from './random.js';
import type { LinkTrace, PathTrace } from './trace.js';

/** What one direction does to datagrams. Probabilities are fractions (0.05 for 5 %), times milliseconds. */
export interface Impairments {
  loss?: LossSpec | undefined;
  /** Added to every datagram's time in flight. */
  delay?: number | undefined;
  /** Spread around `delay`, drawn from `distribution` (scale: jitter). */
  jitter?: number | undefined;
  /** Default uniform: delay ± jitter. */
  distribution?: Distribution | undefined;
  /**
   * Jitter may send a datagram before one that arrived earlier (netem's behaviour, the
   * default); false keeps arrival order (each leaves no sooner than the one before).
   */
  reorderByJitter?: boolean | undefined;
  duplicate?: number | undefined;
  /** netem's reorder: after `gap - 1` delayed datagrams, each is sent at once with this probability. */
  reorder?: number | undefined;
  /** Default 1 with `reorder`. */
  gap?: number | undefined;
  /** Flips one random bit. */
  corrupt?: number | undefined;
  /** Cuts the datagram to a random shorter length (0 to its size - 1). */
  truncate?: number | undefined;
  /** Link rate in bytes per second: datagrams leave one after another at this rate. */
  rate?: number | undefined;
  /**
   * Bytes counted per datagram besides the payload, for the rate and slots' byte budgets
   * (default 28: IPv4 and UDP headers; 42 counts Ethernet frames as netem does).
   */
  packetOverhead?: number | undefined;
  /** Datagrams waiting at most (default 1000, netem's `limit`); past it they are dropped. */
  queueLimit?: number | undefined;
  /** Datagrams whose IP packet (payload + 28, the IPv4 and UDP headers) is larger than this are dropped. */
  mtu?: number | undefined;
  /**
   * A link's delivery opportunities (Mahimahi's mm-link trace) instead of `rate`: each datagram
   * leaves at the opportunity that carries its last byte, in arrival order.
   */
  linkTrace?: LinkTrace | undefined;
  /** A measured path (time, delay, loss): its delay adds to `delay`, its loss is drawn besides `loss`. */
  pathTrace?: PathTrace | undefined;
  /**
   * netem's slot: datagrams leave only in slots, as on Wi-Fi or LTE, which aggregate. A slot
   * opens `min` to `max` ms (uniform; or `distribution`, scale `jitter` around `delay`) after
   * the last one closed or after a datagram found none open, and carries at most `packets`
   * datagrams and `bytes` bytes (0 or none: no limit).
   */
  slot?: SlotOptions | undefined;
}

/** See {@link Impairments.slot}. */
export interface SlotOptions {
  min: number;
  max?: number | undefined;
  distribution?: { distribution: Distribution; delay: number; jitter: number } | undefined;
  packets?: number | undefined;
  bytes?: number | undefined;
}

/** Why a datagram was dropped. */
export type DropCause = 'loss' | 'queue' | 'mtu';

/** What becomes of a datagram, or of its duplicate. */
export type Outcome =
  | { action: 'drop'; cause: DropCause; copy: boolean }
  | {
      action: 'send';
      /** When it leaves, on the clock the decision was made with (ms). */
      at: number;
      /** How long it waits (ms): at - arrival. */
      delay: number;
      /** Its bytes: the original, or a changed copy. */
      data: Uint8Array;
      /** The duplicate netem makes, not the original. */
      copy: boolean;
      corrupted: boolean;
      truncated: boolean;
      /** It leaves before a datagram that arrived before it (reorder or jitter). */
      reordered: boolean;
    };

/** An IPv4 packet's headers around a UDP payload: what `mtu` and link traces count besides it. */
export const IP_UDP_HEADERS = 28;

/** The default of {@link Impairments.queueLimit}: netem's. */
export const DEFAULT_QUEUE_LIMIT = 1000;

/**
 * A copy of `data` with one bit flipped, chosen by two draws (the byte, the bit), made even
 * for an empty datagram so that the draws do not depend on sizes; undefined for an empty one.
 */
export function flipBit(data: Uint8Array, random: Random): Uint8Array | undefined {
  const at = Math.floor(random.next() * data.length);
  const bit = Math.floor(random.next() * 8);
  if (data.length === 0) return undefined;
  const bytes = Uint8Array.prototype.slice.call(data) as Uint8Array;
  bytes[at] = (bytes[at] as number) ^ (1 << bit);
  return bytes;
}

/** Checks a set of impairments: throws on one out of range. */
export function checkImpairments(im: Impairments): void {
  for (const key of ['duplicate', 'reorder', 'corrupt', 'truncate'] as const) {
    const v = im[key];
    if (v !== undefined && !(v >= 0 && v <= 1))
      throw new InvalidArgumentError(`${key} ${v} is not a probability (0-1)`);
  }
  for (const key of ['delay', 'jitter', 'packetOverhead'] as const) {
    const v = im[key];
    if (v !== undefined && !(v >= 0 && Number.isFinite(v)))
      throw new InvalidArgumentError(`${key} ${v} is not 0 or more`);
  }
  if (im.rate !== undefined && !(im.rate > 0 && Number.isFinite(im.rate))) {
    throw new InvalidArgumentError(`rate ${im.rate} is not a positive number of bytes per second`);
  }
  for (const key of ['gap', 'queueLimit', 'mtu'] as const) {
    const v = im[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1))
      throw new InvalidArgumentError(`${key} ${v} is not a positive integer`);
  }
  if ((im.reorder ?? 0) > 0 && !((im.delay ?? 0) > 0)) {
    throw new InvalidArgumentError(
      'reorder sends some datagrams ahead of the delayed ones: it needs a delay',
    );
  }
  if (im.linkTrace !== undefined && im.rate !== undefined) {
    throw new InvalidArgumentError('a link trace sets the rate: give one or the other');
  }
  if (im.slot !== undefined) checkSlot(im.slot);
  if (im.mtu !== undefined && im.mtu <= IP_UDP_HEADERS) {
    throw new InvalidArgumentError(
      `mtu ${im.mtu} leaves no room for a payload (the IPv4 and UDP headers take 28)`,
    );
  }
  if (im.gap !== undefined && im.reorder === undefined) {
    throw new InvalidArgumentError('gap applies to reorder: give a reorder probability');
  }
}

/** A slot's own checks. */
function checkSlot(slot: SlotOptions): void {
  if (!(slot.min >= 0) || (slot.max !== undefined && !(slot.max >= slot.min))) {
    throw new InvalidArgumentError('slot: min must be 0 or more, and max at least min');
  }
}

/** Departure times of datagrams not yet gone, in a min-heap: how many wait, and the last. */
class Departures {
  #heap: number[] = [];
  #last = Number.NEGATIVE_INFINITY;

  /** Forgets those gone by `now`; returns how many still wait. */
  waiting(now: number): number {
    const h = this.#heap;
    while (h.length > 0 && (h[0] as number) <= now) {
      const end = h.pop() as number;
      if (h.length === 0) break;
      h[0] = end;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && (h[l + 1] as number) < (h[l] as number) ? l + 1 : l;
        if ((h[c] as number) >= end) break;
        h[i] = h[c] as number;
        h[c] = end;
        i = c;
      }
    }
    return h.length;
  }

  /** The latest departure of those waiting (valid while any wait). */
  get last(): number {
    return this.#last;
  }

  add(at: number): void {
    const h = this.#heap;
    let i = h.push(at) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((h[p] as number) <= at) break;
      h[i] = h[p] as number;
      h[p] = at;
      i = p;
    }
    if (at > this.#last || h.length === 1) this.#last = at;
  }
}

/** One direction's impairments, with their state (loss model, reorder counter, queue). */
export class Impairer {
  readonly impairments: Impairments;
  #random: Random;
  #loss: LossModel | undefined;
  #delay: DelayModel;
  #gap: number;
  #counter = 0;
  #departures = new Departures();
  /** The latest departure of any datagram so far: one leaving before it overtakes. */
  #latest = Number.NEGATIVE_INFINITY;
  /** Where traces start, on the decisions' clock. */
  #origin: number;
  /**
   * The rate's serializer: when the last datagram through it is sent, before any slot holds it
   * (netem's time_to_send, which its slots do not change).
   */
  #rateLast = Number.NEGATIVE_INFINITY;
  /** When the last datagram entered the link trace: it is a FIFO. */
  #linkEntry = Number.NEGATIVE_INFINITY;
  /** netem's slot: when the next opens, what the open one may still carry. */
  #slotNext: number;
  #slotPackets = 0;
  #slotBytes = 0;
  #slotDelay: DelayModel | undefined;

  /** @param origin the time traces start from, on the clock `decide` is given */
  constructor(impairments: Impairments, random: Random, origin = 0) {
    this.#origin = origin;
    this.#slotNext = origin;
    const slot = impairments.slot;
    // As netem: a slot is open from the start, with its whole budget.
    this.#slotPackets = slot?.packets || Number.POSITIVE_INFINITY;
    this.#slotBytes = slot?.bytes || Number.POSITIVE_INFINITY;
    if (slot?.distribution) {
      const d = slot.distribution;
      this.#slotDelay = new DelayModel(d.delay, d.jitter, d.distribution);
    }
    checkImpairments(impairments);
    this.impairments = impairments;
    this.#random = random;
    this.#loss = impairments.loss && lossModel(impairments.loss);
    this.#delay = new DelayModel(
      impairments.delay ?? 0,
      impairments.jitter ?? 0,
      impairments.distribution ?? namedDistribution('uniform'),
    );
    // No reorder (or 0 %): no draw at all, as in netem.
    this.#gap = impairments.reorder ? (impairments.gap ?? 1) : 0;
  }

  /**
   * When a datagram that arrived at `now`, due at `due`, leaves with netem's slots: at the
   * open slot if it was due before the slot opened, else a new slot is drawn from its arrival
   * on, and again from its due time if that one opens before it is due (netem redraws a slot
   * gone stale whenever it looks at the head of its queue: as a datagram is queued, and when
   * it falls due); a slot whose packets or bytes run out closes, and the next is drawn from
   * then.
   */
  #inSlot(now: number, due: number, size: number): number {
    const slot = this.impairments.slot as SlotOptions;
    const max = slot.max ?? slot.min;
    // A fixed gap (min = max) takes no draw.
    const draw = () =>
      this.#slotDelay
        ? this.#slotDelay.draw(this.#random)
        : max === slot.min
          ? slot.min
          : slot.min + (max - slot.min) * this.#random.next();
    const open = (from: number) => {
      this.#slotNext = from + draw();
      this.#slotPackets = slot.packets || Number.POSITIVE_INFINITY;
      this.#slotBytes = slot.bytes || Number.POSITIVE_INFINITY;
    };
    if (this.#slotNext < due) {
      // As netem's dequeue does when it first looks at the datagram (as it is queued): a new
      // slot from then; one that would open before the datagram is due is stale again by
      // then, and redrawn from its due time.
      open(now);
      if (this.#slotNext < due) open(due);
    }
    const at = Math.max(due, this.#slotNext);
    this.#slotPackets--;
    this.#slotBytes -= size;
    if (this.#slotPackets <= 0 || this.#slotBytes <= 0) open(at);
    return at;
  }

  /** Datagrams waiting to leave at `now`. */
  queued(now: number): number {
    return this.#departures.waiting(now);
  }

  /**
   * Decides what becomes of a datagram arriving at `now`: one outcome, or two when it is
   * duplicated (the copy's first, as netem queues it first).
   */
  decide(now: number, data: Uint8Array): Outcome[] {
    const out: Outcome[] = [];
    this.#decide(now, data, false, out);
    return out;
  }

  #decide(now: number, data: Uint8Array, copy: boolean, out: Outcome[]): void {
    const im = this.impairments;
    const random = this.#random;
    if (im.mtu !== undefined && data.length + IP_UDP_HEADERS > im.mtu) {
      out.push({ action: 'drop', cause: 'mtu', copy });
      return;
    }
    let count = 1;
    if (!copy && im.duplicate && random.next() < im.duplicate) count++;
    let lost = this.#loss?.lost(random) ?? false;
    const path = im.pathTrace?.at(now - this.#origin);
    if (path && random.next() < path.loss) lost = true;
    if (lost) count--;
    if (count === 0) {
      out.push({ action: 'drop', cause: 'loss', copy });
      return;
    }
    const original = data;
    let bytes = data;
    let corrupted = false;
    let truncated = false;
    if (im.corrupt && random.next() < im.corrupt) {
      const flipped = flipBit(bytes, random);
      if (flipped !== undefined) {
        bytes = flipped;
        corrupted = true;
      }
    }
    if (im.truncate && random.next() < im.truncate) {
      const length = Math.floor(random.next() * bytes.length);
      if (bytes.length > 0) {
        bytes = bytes.subarray(0, length);
        truncated = true;
      }
    }
    // How many wait now: for the queue limit, and for the rate's serializer below.
    const queued = this.#departures.waiting(now);
    if (queued >= (im.queueLimit ?? DEFAULT_QUEUE_LIMIT)) {
      out.push({ action: 'drop', cause: 'queue', copy });
      if (count > 1) out.push({ action: 'drop', cause: 'queue', copy: true });
      return;
    }
    // The duplicate is the bytes before corruption, and makes a whole pass of its own.
    if (count > 1) this.#decide(now, original, true, out);
    let at: number;
    const gap = this.#gap;
    if (gap === 0 || this.#counter < gap - 1 || !(random.next() < (im.reorder ?? 0))) {
      const delay = this.#delay.draw(random) + (path?.delay ?? 0);
      at = now + delay;
      // The copy's pass (above) may have added one since `queued` was read.
      const waiting = queued > 0 || (count > 1 && this.#departures.waiting(now) > 0);
      if (im.linkTrace !== undefined) {
        this.#linkEntry = Math.max(this.#linkEntry, at);
        at =
          this.#origin + im.linkTrace.depart(this.#linkEntry - this.#origin, bytes.length + IP_UDP_HEADERS);
      } else if (im.rate !== undefined) {
        // A serializer: after the delay, each waits for the one before it to be sent. As in
        // netem, slots come after it: what waits for a slot does not hold the serializer.
        const start = waiting ? Math.max(this.#rateLast, at) : at;
        at = start + ((bytes.length + (im.packetOverhead ?? 28)) * 1000) / im.rate;
        this.#rateLast = at;
      } else if (im.reorderByJitter === false && waiting) {
        at = Math.max(at, this.#departures.last);
      }
      this.#counter++;
    } else {
      at = now;
      this.#counter = 0;
    }
    // Slots gate what was delayed; one sent ahead by reorder skips them, as in netem.
    const ahead = gap !== 0 && this.#counter === 0;
    if (im.slot !== undefined && !ahead) at = this.#inSlot(now, at, bytes.length + (im.packetOverhead ?? 28));
    const reordered = at < this.#latest;
    if (at > this.#latest) this.#latest = at;
    this.#departures.add(at);
    out.push({ action: 'send', at, delay: at - now, data: bytes, copy, corrupted, truncated, reordered });
  }
}
