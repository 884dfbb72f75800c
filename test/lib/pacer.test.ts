import { describe, expect, it } from 'vitest';
import { createSequencedBatch, numberDatagrams, Pacer, readSequence } from '../../src/lib/index.js';

describe('Pacer', () => {
  it('allows exactly rate x time, in bursts of at most a tenth of a millisecond', async () => {
    let t = 1000;
    // A clock that moves 7 microseconds each time it is read.
    const pacer = new Pacer(200_000, { now: () => (t += 0.007) });
    expect(pacer.maxBatch).toBe(20);
    const start = t;
    let biggest = 0;
    while (pacer.taken < 100_000) biggest = Math.max(biggest, await pacer.take(1000));
    const seconds = (t - start) / 1000;
    expect(pacer.taken / seconds).toBeGreaterThan(200_000 * 0.99);
    expect(pacer.taken / seconds).toBeLessThan(200_000 * 1.01);
    expect(biggest).toBeLessThanOrEqual(64);
  });

  it('paces one at a time at low rates', async () => {
    let t = 0;
    const pacer = new Pacer(1000, { now: () => (t += 0.01) });
    const sizes: number[] = [];
    for (let i = 0; i < 50; i++) sizes.push(await pacer.take(64));
    expect(new Set(sizes)).toEqual(new Set([1]));
    expect(t).toBeGreaterThanOrEqual(49);
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
