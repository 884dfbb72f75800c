/**
 * The bench's receive statistics against hand-computed cases: a known arrival log gives known
 * loss, duplicates, reordering (RFC 4737), loss runs (RFC 3357) and jitter (RFC 3550, checked
 * against an independent computation written here).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameTracker, framePieces } from '../../src/lib/bench/frames.js';
import { JitterTracker } from '../../src/lib/bench/jitter.js';
import { liveIntervals } from '../../src/lib/bench/live.js';
import { ReceiveStats } from '../../src/lib/bench/receiver.js';
import { ReorderTracker } from '../../src/lib/bench/reorder.js';
import { SequenceSet } from '../../src/lib/bench/sequence.js';
import { IMIX, sizePicker } from '../../src/lib/bench/sizes.js';
import { seededRandom } from '../../src/lib/index.js';

describe('SequenceSet', () => {
  it('knows a duplicate, counts a range and finds its loss runs, across chunks and words', () => {
    const random = seededRandom(7);
    const set = new SequenceSet();
    const naive = new Set<number>();
    // Dense and sparse stretches, over three 65536-number chunks and a gap of a whole chunk.
    for (let seq = 0; seq < 300_000; seq++) {
      const keep = seq < 70_000 ? random.next() < 0.97 : seq < 140_000 ? false : random.next() < 0.3;
      if (!keep) continue;
      set.add(seq);
      naive.add(seq);
    }
    expect(set.size).toBe(naive.size);
    // Seen before: a duplicate; not seen: new.
    const some = [...naive].slice(0, 3);
    expect(some.map((s) => set.add(s))).toEqual([false, false, false]);
    expect(set.add(70_001)).toBe(true);
    naive.add(70_001);
    expect(set.size).toBe(naive.size);
    for (const [from, to] of [
      [0, 300_000],
      [17, 65_600],
      [65_530, 65_542],
      [69_990, 140_010],
      [131_071, 131_073],
    ] as const) {
      let count = 0;
      let runs = 0;
      let lost = 0;
      let max = 0;
      let run = 0;
      for (let s = from; s < to; s++) {
        if (naive.has(s)) {
          count++;
          if (run > 0) {
            runs++;
            lost += run;
            max = Math.max(max, run);
          }
          run = 0;
        } else run++;
      }
      if (run > 0) {
        runs++;
        lost += run;
        max = Math.max(max, run);
      }
      expect(set.countIn(from, to)).toBe(count);
      expect(set.lossRuns(from, to)).toEqual({ count: runs, lost, max });
    }
  });
});

describe('ReorderTracker (RFC 4737)', () => {
  it('a datagram below the next expected is reordered; its extent reaches back to the first higher arrival', () => {
    const r = new ReorderTracker();
    // Arrivals 0 1 2 5 3 7 4 8: 3 comes one after 5 (extent 1), 4 three after 5 (extent 3).
    const extents = [0, 1, 2, 5, 3, 7, 4, 8].map((s) => r.add(s));
    expect(extents).toEqual([0, 0, 0, 0, 1, 0, 3, 0]);
    expect([r.reordered, r.maxExtent, r.extentSum]).toEqual([2, 3, 4]);
  });

  it("RFC 4737's example: 1 2 3 5 6 7 4 8 9 10 is one datagram reordered, extent 3", () => {
    const r = new ReorderTracker(1);
    for (const s of [1, 2, 3, 5, 6, 7, 4, 8, 9, 10]) r.add(s);
    expect([r.reordered, r.maxExtent]).toEqual([1, 3]);
  });

  it('through its growth and past its window: extents exact within 2^20 arrivals, at least that beyond', () => {
    const r = new ReorderTracker();
    const n = (1 << 20) + 1000;
    // Every other number first, then a late one: 2 4 6 ... then 3 arrives after all of them.
    for (let k = 1; k <= n; k++) r.add(2 * k);
    // 2 * 1001 + 1 is below 2004 and above 2002: its first higher arrival was number 2004,
    // the 1002nd, still in the window; 3 is below 4, the 2nd, forgotten: at least the window.
    expect(r.add(2003)).toBe(n - 1001);
    expect(r.add(3)).toBeGreaterThanOrEqual(1 << 20);
    expect(r.reordered).toBe(2);
  });

  it('keeps floods in order as runs, and gives the extents of RFC 4737 as written over a seeded log', () => {
    // RFC 4737 section 4.2 as written: every in-order arrival kept, the earliest higher found by a walk.
    const naive = (arrivals: number[]) => {
      const kept: { seq: number; at: number }[] = [];
      let next = 0;
      return arrivals.map((seq, at) => {
        if (seq >= next) {
          next = seq + 1;
          kept.push({ seq, at });
          return 0;
        }
        return at - (kept.find((k) => k.seq > seq) as { at: number }).at;
      });
    };
    const random = seededRandom(4737);
    for (let round = 0; round < 20; round++) {
      // Runs in order, gaps, and now and then a datagram held back a few places.
      const sent: number[] = [];
      for (let seq = 0; sent.length < 5000; seq++) if (random.next() > 0.05) sent.push(seq);
      const arrivals = sent.slice();
      for (let i = 0; i < arrivals.length; i++) {
        if (random.next() < 0.02) {
          const j = Math.min(arrivals.length - 1, i + 1 + Math.floor(random.next() * 40));
          const [held] = arrivals.splice(i, 1);
          arrivals.splice(j, 0, held as number);
        }
      }
      const r = new ReorderTracker();
      expect(arrivals.map((seq) => r.add(seq))).toEqual(naive(arrivals));
    }
  });
});

/** RFC 3550 appendix A.8, as written there: transit times, their differences, J += (|D| - J) / 16. */
function rfc3550(packets: { sent: number; received: number }[]): number {
  let jitter = 0;
  let transit: number | undefined;
  for (const p of packets) {
    const t = p.received - p.sent;
    if (transit !== undefined) {
      let d = t - transit;
      if (d < 0) d = -d;
      jitter += (1 / 16) * (d - jitter);
    }
    transit = t;
  }
  return jitter;
}

describe('JitterTracker (RFC 3550)', () => {
  it('matches the RFC computation over a seeded log of 10k arrivals', () => {
    const random = seededRandom(3);
    const packets = Array.from({ length: 10_000 }, (_, i) => ({
      sent: i * 20,
      received: i * 20 + 40 + random.next() * 15,
    }));
    const j = new JitterTracker();
    for (const p of packets) j.add(p.sent, p.received);
    expect(j.jitter).toBeCloseTo(rfc3550(packets), 9);
    // Uniform 0-15 ms: E|D| for the difference of two is 15/3 = 5 ms.
    expect(j.jitter).toBeGreaterThan(3.5);
    expect(j.jitter).toBeLessThan(6.5);
  });

  it('a steady stream has none; a single step of 8 ms gives 0.5 ms', () => {
    const j = new JitterTracker();
    for (let i = 0; i < 10; i++) j.add(i, i + 5);
    expect(j.jitter).toBe(0);
    j.add(10, 10 + 5 + 8);
    expect(j.jitter).toBe(0.5);
  });
});

describe('ReceiveStats', () => {
  it('runs (a GRO buffer of one batch) count exactly as their datagrams one by one, over a seeded log', () => {
    const random = seededRandom(1400);
    for (let round = 0; round < 10; round++) {
      // Buffers of 1 to 46 datagrams, one send and one receive time each; now and then a
      // buffer repeats an earlier number (a duplicate), starts below the next expected (late),
      // or jumps far ahead; some numbers are before the first counted.
      const runs: { seq: number; n: number; sent: number; received: number; size: number }[] = [];
      let seq = 0;
      let t = 1000;
      for (let k = 0; k < 400; k++) {
        const n = 1 + Math.floor(random.next() * 46);
        const u = random.next();
        let at = seq;
        if (u < 0.05 && seq > 100) at = seq - 1 - Math.floor(random.next() * 100);
        else if (u < 0.07) at = seq + (1 << 24) + Math.floor(random.next() * 10);
        else if (u < 0.15) at = seq + Math.floor(random.next() * 30);
        if (at === seq || u >= 0.05) seq = Math.max(seq, at + n);
        t += random.next() * 2;
        runs.push({ seq: at, n, sent: Math.floor(t) - 5 * random.next(), received: t, size: 100 + (k % 3) });
      }
      const options = { intervalMs: 50, sharedClock: true, first: 20 };
      const one = new ReceiveStats(options);
      const whole = new ReceiveStats(options);
      let counted = 0;
      let countedOne = 0;
      for (const r of runs) {
        for (let i = 0; i < r.n; i++) if (one.add(r.seq + i, r.sent, r.received, r.size)) countedOne++;
        counted += whole.addRun(r.seq, r.n, r.sent, r.received, r.size);
      }
      expect(counted).toBe(countedOne);
      const end = seq;
      expect(whole.figures(end)).toEqual(one.figures(end));
      const boundaries = [20, Math.floor(end / 2), end];
      expect(whole.intervals(boundaries)).toEqual(one.intervals(boundaries));
    }
  });

  it('a known arrival log gives known loss, duplicates, reordering, loss runs, and intervals by send and arrival', () => {
    // 10 datagrams sent 10 ms apart from t = 0, 5 in each 50 ms interval (sequence 0-4, 5-9);
    // 6 and 9 never arrive, 3 comes twice, 3 and 4 come late.
    const stats = new ReceiveStats({ startMs: 0, intervalMs: 50, sharedClock: true });
    const log: [number, number][] = [
      [0, 1],
      [1, 11],
      [2, 21],
      [5, 51],
      [3, 52],
      [3, 53],
      [7, 71],
      [4, 72],
      [8, 81],
    ];
    for (const [seq, at] of log) stats.add(seq, seq * 10, at, 100);
    const total = stats.figures(10);
    expect(total).toMatchObject({
      received: 9,
      bytes: 900,
      duplicates: 1,
      reordered: 2,
      reorderExtent: { max: 3, mean: 2 },
      sent: 10,
      lost: 2,
      lossRuns: { count: 2, lost: 2, max: 1 },
      unexpected: 0,
    });
    // Delays: 1 ms for the in-order ones, 22 and 32 for 3 and 4 (the duplicate is not counted).
    expect(total.delay).toMatchObject({ min: 1, max: 32 });
    const [a, b] = stats.intervals([0, 5, 10]);
    // By arrival: 3 in the first interval (0, 1, 2); 6 in the second.
    expect(a).toMatchObject({ start: 0, end: 0.05, received: 3, bytes: 300, duplicates: 0, reordered: 0 });
    expect(b).toMatchObject({ received: 6, duplicates: 1, reordered: 2 });
    // The last interval ends with the last arrival (81 ms), not at its full width.
    expect(b?.end).toBe(0.081);
    // By sending: 3 and 4, late, are the first interval's and not lost; 6 and 9 are the second's.
    expect(a).toMatchObject({ sent: 5, lost: 0 });
    expect(b).toMatchObject({ sent: 5, lost: 2, lossRuns: { count: 2, lost: 2, max: 1 } });
  });

  it("what arrives after the sender's last interval belongs to it, which then ends with the last arrival", () => {
    const stats = new ReceiveStats({ startMs: 0, intervalMs: 100, sharedClock: true });
    // 0-9 sent in the first 100 ms, 10-19 in the next; 18 and 19 still in flight at 200 ms.
    for (let seq = 0; seq < 18; seq++) stats.add(seq, seq * 10, seq * 10 + 5, 100);
    stats.add(18, 180, 203, 100);
    stats.add(19, 190, 206, 100);
    const all = stats.intervals([0, 10, 20]);
    expect(all).toHaveLength(2);
    expect(all[1]).toMatchObject({ start: 0.1, end: 0.206, sent: 10, received: 10, lost: 0, bytes: 1000 });
    expect(all[1]?.delay).toMatchObject({ min: 5, max: 23 });
    expect(all.reduce((a, i) => a + i.received, 0)).toBe(stats.figures(20).received);
  });

  it('loss is never negative nor above 100 %, whatever arrives', () => {
    const stats = new ReceiveStats({ startMs: 0, intervalMs: 1000, sharedClock: true });
    // Numbers past what the sender says it sent are not its own: unexpected, not negative loss.
    for (const seq of [0, 1, 1, 2, 50, 51]) stats.add(seq, 0, 1, 10);
    expect(stats.figures(3)).toMatchObject({ sent: 3, lost: 0, unexpected: 2, duplicates: 1 });
    expect(stats.figures(0)).toMatchObject({ sent: 0, lost: 0 });
    const none = new ReceiveStats({ startMs: 0, intervalMs: 1000, sharedClock: true });
    expect(none.figures(100)).toMatchObject({
      sent: 100,
      lost: 100,
      received: 0,
      lossRuns: { count: 1, max: 100 },
    });
  });

  it('--omit: datagrams before the first counted are left out; clocks apart give delays above the least', () => {
    const stats = new ReceiveStats({ startMs: 1000, intervalMs: 1000, sharedClock: false, first: 3 });
    expect(stats.add(2, 0, 900, 10)).toBe(false);
    // The sender's clock is 5 s behind: delays of 5001, 5003, 5002 ms are 0, 2, 1 above the least.
    stats.add(3, 0, 5001, 10);
    stats.add(4, 1, 5004, 10);
    stats.add(5, 2, 5004, 10);
    expect(stats.figures(6)).toMatchObject({
      received: 3,
      sent: 3,
      lost: 0,
      delay: { min: 0, max: 2, mean: 1 },
    });
  });
});

describe('liveIntervals', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('each interval as it ends, at its full length across a silence, from the highest seen', () => {
    vi.useFakeTimers({ now: 0 });
    const stats = new ReceiveStats({ startMs: 500, intervalMs: 1000, sharedClock: true });
    const seen: { start: number; end: number; sent: number; received: number; lost: number }[] = [];
    const stop = liveIntervals(stats, 500, 1000, (i) => seen.push(i));
    // Omitted half a second; then 0-9 arrive in the first interval with 4 and 7 missing, and the
    // second hears nothing (a link down): it still spans its whole second.
    vi.advanceTimersByTime(500);
    for (const seq of [0, 1, 2, 3, 5, 6, 8, 9]) stats.add(seq, 0, 600 + seq * 10, 100);
    expect(seen).toEqual([]);
    // Each end of an interval a millisecond late (Node's timers may fire early).
    vi.advanceTimersByTime(1001);
    expect(seen).toMatchObject([{ start: 0, end: 1, sent: 10, received: 8, lost: 2 }]);
    vi.advanceTimersByTime(1000);
    expect(seen[1]).toMatchObject({ start: 1, end: 2, sent: 0, received: 0, lost: 0 });
    stop();
    vi.advanceTimersByTime(5000);
    expect(seen).toHaveLength(2);
  });

  it('stopped during the omitted start, it never ticks', () => {
    vi.useFakeTimers({ now: 0 });
    const stats = new ReceiveStats({ startMs: 2000, intervalMs: 1000, sharedClock: true });
    const emit = vi.fn();
    liveIntervals(stats, 2000, 1000, emit)();
    vi.advanceTimersByTime(10_000);
    expect(emit).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('size distributions', () => {
  it('IMIX draws 7:4:1 within the binomial 99.9 % interval over 120k; uniform covers its range evenly', () => {
    const n = 120_000;
    const pick = sizePicker(IMIX, seededRandom(5));
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const s = pick();
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([64, 548, 1472]);
    for (const [size, p] of [
      [64, 7 / 12],
      [548, 4 / 12],
      [1472, 1 / 12],
    ] as const) {
      const sd = Math.sqrt(n * p * (1 - p));
      expect(Math.abs((counts.get(size) as number) - n * p)).toBeLessThan(3.29 * sd);
    }
    const uniform = sizePicker({ uniform: [100, 109] }, seededRandom(6));
    const seen = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      const s = uniform();
      seen.set(s, (seen.get(s) ?? 0) + 1);
    }
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual([
      100, 101, 102, 103, 104, 105, 106, 107, 108, 109,
    ]);
    const sd = Math.sqrt(100_000 * 0.1 * 0.9);
    for (const c of seen.values()) expect(Math.abs(c - 10_000)).toBeLessThan(3.29 * sd);
  });
});

describe('FrameTracker', () => {
  it('complete, missed and late frames from a known log; pieces of a frame', () => {
    expect(framePieces(3000, 1400)).toEqual([1400, 1400, 200]);
    expect(framePieces(1410, 1400)).toEqual([1400, 40]);
    // 20 ms frames of two pieces, sent at 20 k ms.
    const t = new FrameTracker(20);
    const frame = (k: number, arrivals: (number | undefined)[]) => {
      for (const [piece, at] of arrivals.entries())
        if (at !== undefined) t.add(k, piece, 2, k * 20, k * 20 + at);
    };
    frame(0, [5, 6]); // 6 ms: the best
    frame(1, [5, 25]); // 25 ms: within a period of the best (6 + 20 = 26)
    frame(2, [5, 27]); // 27 ms: late
    frame(3, [5, undefined]); // missed
    frame(4, [7, 8]);
    t.add(4, 1, 2, 80, 80 + 9); // a duplicate piece changes nothing
    expect(t.figures(0, 6)).toEqual({ sent: 6, complete: 4, missed: 2, late: 1, bestMs: 6, periodMs: 20 });
  });
});
