import { describe, expect, it } from 'vitest';
import { SourceRateLimiter } from '../../src/lib/index.js';

describe('SourceRateLimiter', () => {
  it('gives each source its burst, then its rate, and counts what it refuses', () => {
    let t = 0;
    const rl = new SourceRateLimiter({ rate: 10, burst: 3, now: () => t });
    const first = Array.from({ length: 5 }, () => rl.take('a'));
    expect(first).toEqual([true, true, true, false, false]);
    expect(rl.take('b')).toBe(true); // another source has its own bucket
    // Over 10 s at 10/s, asking 100 times a second: 100 answers, not 1000.
    let answered = 0;
    for (let i = 0; i < 1000; i++) {
      t += 10;
      if (rl.take('a')) answered++;
    }
    expect(answered).toBe(100);
    expect(rl.limited).toBe(2 + 900);
  });

  it('never holds more than maxSources, forgetting the least recently seen once refilled', () => {
    let t = 0;
    // Refilled 1 ms after a take: spoofers 0.02 ms apart find the oldest of 100 refilled.
    const rl = new SourceRateLimiter({ rate: 1000, burst: 1, maxSources: 100, now: () => t });
    for (let i = 0; i < 10_000; i++) {
      t += 0.02;
      expect(rl.take(`spoofed-${i}`)).toBe(true);
      expect(rl.sources).toBeLessThanOrEqual(100);
    }
    expect(rl.evicted).toBe(10_000 - 100);
    expect(rl.refusedNew).toBe(0);
  });

  it('a flood of other sources cannot reset a source: one that still counts is never forgotten', () => {
    let t = 0;
    const rl = new SourceRateLimiter({ rate: 10, maxSources: 16, now: () => t });
    // For 1 s, one source asks 200 times, each time followed by 20 new spoofed sources (more
    // than the table holds): it gets its burst of 10 and 10 a second, not 200.
    let answered = 0;
    let all = 0;
    for (let i = 0; i < 200; i++) {
      if (rl.take('abuser')) answered++;
      for (let k = 0; k < 20; k++) if (rl.take(`spoofed-${i}-${k}`)) all++;
      t += 5;
      expect(rl.sources).toBeLessThanOrEqual(16);
    }
    expect(answered).toBe(19);
    // The spoofers that found the table full of sources still counting were refused, and
    // counted: every call answered or limited.
    expect(rl.refusedNew).toBe(200 * 20 - all);
    expect(rl.limited).toBe(200 * 21 - all - answered);
  });

  it('refuses bad settings', () => {
    expect(() => new SourceRateLimiter({ rate: 0 })).toThrow('rate 0 is not a positive number');
    expect(() => new SourceRateLimiter({ rate: 1, burst: 0.5 })).toThrow('burst 0.5');
    expect(() => new SourceRateLimiter({ rate: 1, maxSources: 0 })).toThrow('maxSources 0');
  });
});
