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

  it('never holds more than maxSources, forgetting the least recently seen first', () => {
    let t = 0;
    const rl = new SourceRateLimiter({ rate: 1, burst: 1, maxSources: 100, now: () => t });
    expect(rl.take('keep')).toBe(true);
    for (let i = 0; i < 10_000; i++) {
      t += 0.001;
      rl.take(`spoofed-${i}`);
      // A source seen often stays remembered, so its limit holds through the flood.
      if (i % 50 === 0) expect(rl.take('keep')).toBe(false);
      expect(rl.sources).toBeLessThanOrEqual(100);
    }
    expect(rl.evicted).toBe(10_001 - 100);
  });

  it('refuses bad settings', () => {
    expect(() => new SourceRateLimiter({ rate: 0 })).toThrow('rate 0 is not a positive number');
    expect(() => new SourceRateLimiter({ rate: 1, burst: 0.5 })).toThrow('burst 0.5');
    expect(() => new SourceRateLimiter({ rate: 1, maxSources: 0 })).toThrow('maxSources 0');
  });
});
