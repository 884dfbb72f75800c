import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  createSequencedBatch,
  numberDatagrams,
  Pacer,
  readSequence,
  Scheduler,
} from '../../src/lib/index.js';
import { virtualTime } from '../helpers/time.js';

describe('Pacer', () => {
  it('allows exactly rate x time, in bursts of what falls due in one granule', async () => {
    const vt = virtualTime(1000);
    const scheduler = new Scheduler({ now: vt.now, timer: vt.timer });
    const pacer = new Pacer(200_000, { scheduler, granularity: 0.1 });
    expect(pacer.maxBatch).toBe(20);
    const start = vt.now();
    let biggest = 0;
    while (pacer.taken < 100_000) biggest = Math.max(biggest, await pacer.take(1000));
    const seconds = (vt.now() - start) / 1000;
    expect(pacer.taken / seconds).toBeGreaterThan(200_000 * 0.99);
    expect(pacer.taken / seconds).toBeLessThan(200_000 * 1.01);
    expect(biggest).toBeLessThanOrEqual(20);
  });

  it('paces one at a time at low rates, waiting on the scheduler', async () => {
    const vt = virtualTime();
    const pacer = new Pacer(1000, { scheduler: new Scheduler({ now: vt.now, timer: vt.timer }) });
    const sizes: number[] = [];
    for (let i = 0; i < 50; i++) sizes.push(await pacer.take(64));
    expect(new Set(sizes)).toEqual(new Set([1]));
    expect(vt.now()).toBe(49);
  });

  it('wakes once a granule at most, sending what fell due as one burst', async () => {
    const vt = virtualTime();
    const scheduler = new Scheduler({ now: vt.now, timer: vt.timer });
    const pacer = new Pacer(10_000, { scheduler, granularity: 0.5 });
    expect(pacer.maxBatch).toBe(5);
    const sizes: number[] = [];
    while (pacer.taken < 1001) sizes.push(await pacer.take(64));
    // The first goes at once; then 5 every half millisecond, for 100 ms.
    expect(sizes.slice(0, 3)).toEqual([1, 5, 5]);
    expect(sizes).toHaveLength(201);
    expect(vt.now()).toBeCloseTo(100, 5);
    expect(() => new Pacer(1, { granularity: 0 })).toThrow(
      'granularity 0 is not a positive number of milliseconds',
    );
  });

  it('sends once a granule even when the next datagram falls due during the send', async () => {
    const vt = virtualTime();
    const scheduler = new Scheduler({ now: vt.now, timer: vt.timer });
    const pacer = new Pacer(10_000, { scheduler, granularity: 0.5 });
    const wakes: number[] = [];
    const sizes: number[] = [];
    while (pacer.taken < 501) {
      sizes.push(await pacer.take(64));
      wakes.push(vt.now());
      vt.advance(0.15); // the send itself takes time: one more datagram is due by its end
    }
    // One call per granule, never a second right after the burst for the one that fell due.
    for (let i = 1; i < wakes.length; i++) {
      expect((wakes[i] as number) - (wakes[i - 1] as number)).toBeGreaterThanOrEqual(0.5 - 1e-9);
    }
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(7);
    expect(wakes.length).toBeLessThanOrEqual(101);
  });

  it('listens to its signal once, not once per wait', async () => {
    const vt = virtualTime();
    const pacer = new Pacer(10_000, { scheduler: new Scheduler({ now: vt.now, timer: vt.timer }) });
    const ac = new AbortController();
    while (pacer.taken < 1000) await pacer.take(64, ac.signal);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
  });

  it('catches up after a late wake-up, 64 at most at once, and keeps the average', async () => {
    const vt = virtualTime();
    const pacer = new Pacer(10_000, { scheduler: new Scheduler({ now: vt.now, timer: vt.timer }) });
    await pacer.take(64);
    vt.advance(50); // the loop was busy for 50 ms: 500 datagrams are due
    const sizes: number[] = [];
    while (pacer.taken < 501) sizes.push(await pacer.take(1000));
    expect(Math.max(...sizes)).toBe(64);
    expect(pacer.taken).toBe(501);
    expect(vt.now()).toBe(50);
  });

  it.each([1, 100, 10_000, 200_000])(
    'holds %i/s within 1 percent on the real clock (rates from 1/s to 200k/s)',
    async (rate) => {
      const pacer = new Pacer(rate);
      // Half a second of datagrams, at least two: the first goes at once.
      const total = Math.max(2, Math.round(rate / 2));
      const start = performance.now();
      while (pacer.taken < total) await pacer.take(total - pacer.taken);
      const elapsed = performance.now() - start;
      const expected = ((total - 1) * 1000) / rate;
      expect(elapsed).toBeGreaterThanOrEqual(expected * 0.99);
      expect(elapsed).toBeLessThan(expected * 1.01 + 2);
    },
  );

  it('uses a fraction of a core at 10k/s and leaves the loop free at 50k/s', async () => {
    const cpu = process.cpuUsage();
    const slow = new Pacer(10_000);
    let t0 = performance.now();
    while (slow.taken < 5000) await slow.take(64);
    const wall = performance.now() - t0;
    const used = process.cpuUsage(cpu);
    // The old pacer spun the core: 100 % of the wall time. Waiting on timers costs little.
    expect((used.user + used.system) / 1000 / wall).toBeLessThan(0.6);

    const fast = new Pacer(50_000);
    const delays: number[] = [];
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      delays.push(now - last - 1);
      last = now;
    }, 1);
    t0 = performance.now();
    while (fast.taken < 25_000) await fast.take(64);
    clearInterval(probe);
    delays.sort((a, b) => a - b);
    // A 1 ms timer on the same loop keeps running while the pacer sends.
    expect(delays.length).toBeGreaterThan(((performance.now() - t0) / 1.5) * 0.5);
    expect(delays[Math.floor(delays.length * 0.99)]).toBeLessThan(10);
  });

  it('gives whole batches when unlimited, and refuses bad rates', async () => {
    const pacer = new Pacer(0);
    expect(await pacer.take(1000)).toBe(64);
    expect(await pacer.take(10)).toBe(10);
    expect(() => new Pacer(-1)).toThrow('rate -1 is not a number of datagrams per second');
  });

  it('stops when the signal fires', async () => {
    await expect(new Pacer(10).take(1, AbortSignal.abort())).rejects.toMatchObject({
      code: 'UDP_ERR_ABORTED',
    });
    const ac = new AbortController();
    const pacer = new Pacer(1);
    await pacer.take(1);
    const waiting = pacer.take(1, ac.signal);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'UDP_ERR_ABORTED' });
  });
});

describe('sequenced datagrams', () => {
  it('lay out a big-endian sequence number and a-z filler, like the C blaster', () => {
    const buf = createSequencedBatch(40, 3);
    numberDatagrams(buf, 40, 3, 2 ** 32 + 5);
    expect(readSequence(buf.subarray(0, 40))).toBe(2 ** 32 + 5);
    expect(readSequence(buf.subarray(80, 120))).toBe(2 ** 32 + 7);
    expect(buf.subarray(0, 8)).toEqual(Buffer.from([0, 0, 0, 1, 0, 0, 0, 5]));
    expect(buf.toString('latin1', 8, 40)).toBe('abcdefghijklmnopqrstuvwxyzabcdef');
    expect(() => createSequencedBatch(7, 1)).toThrow(
      'size 7 is too small: at least 8 bytes hold the sequence number',
    );
  });
});
