/**
 * The impairment models against their definitions, with fixed seeds and tolerances derived
 * from the sample size (binomial intervals at 99.9 %, Kolmogorov-Smirnov at 0.1 %), so that
 * they neither flake nor pass by luck: a wrong model lands far outside them.
 */
import { describe, expect, it } from 'vitest';
import {
  burstLossParameters,
  checkScenario,
  DelayModel,
  fourStateLoss,
  gilbertElliottLoss,
  Impairer,
  LinkTrace,
  lossModel,
  namedDistribution,
  normalQuantile,
  type Outcome,
  PathTrace,
  parseDistTable,
  phaseAt,
  type Random,
  randomLoss,
  seededRandom,
} from '../../src/lib/index.js';

/** z of a two-sided 99.9 % interval. */
const Z = 3.29;

/** Expects `count` successes of `n` trials at probability `p`, within the 99.9 % interval. */
function expectBinomial(count: number, n: number, p: number, inflation = 1): void {
  const sd = Math.sqrt(n * p * (1 - p) * inflation);
  expect(Math.abs(count - n * p)).toBeLessThanOrEqual(Z * sd);
}

/** The Kolmogorov-Smirnov statistic of `samples` against `cdf`. */
function ks(samples: number[], cdf: (x: number) => number): number {
  const s = [...samples].sort((a, b) => a - b);
  let d = 0;
  for (const [i, x] of s.entries()) {
    const f = cdf(x);
    d = Math.max(d, Math.abs(f - i / s.length), Math.abs((i + 1) / s.length - f));
  }
  return d;
}
/** The critical KS statistic at 0.1 % for n samples. */
const ksCritical = (n: number) => 1.95 / Math.sqrt(n);

/** The standard normal CDF (Abramowitz and Stegun 7.1.26, absolute error under 1.5e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

describe('loss models', () => {
  it('random loss lands in the binomial interval over 200k datagrams', () => {
    const n = 200_000;
    for (const p of [0.001, 0.05, 0.3]) {
      const model = randomLoss(p);
      const random = seededRandom(7);
      let lost = 0;
      for (let i = 0; i < n; i++) if (model.lost(random)) lost++;
      expectBinomial(lost, n, p);
    }
  });

  it('--loss 2% --burst 4 gives 2 % in bursts of 4 on average (Gilbert-Elliott)', () => {
    const { p, r } = burstLossParameters(0.02, 4);
    expect(p).toBeCloseTo(0.02 / (4 * 0.98), 12);
    expect(r).toBe(0.25);
    const model = gilbertElliottLoss(p, r, 1, 0);
    const random = seededRandom(11);
    const n = 500_000;
    let lost = 0;
    let bursts = 0;
    let inBurst = false;
    for (let i = 0; i < n; i++) {
      const l = model.lost(random);
      if (l) lost++;
      if (l && !inBurst) bursts++;
      inBurst = l;
    }
    // A two-state chain's count varies more than a binomial's: by (1 + l) / (1 - l), l = 1 - p - r.
    const l = 1 - p - r;
    expectBinomial(lost, n, 0.02, (1 + l) / (1 - l));
    // Burst lengths are geometric with mean 1/r: the mean of `bursts` of them is within Z of it.
    const mean = lost / bursts;
    const sd = Math.sqrt((1 - r) / (r * r) / bursts);
    expect(Math.abs(mean - 4)).toBeLessThanOrEqual(Z * sd);
  });

  it('the 4-state model with p13 alone is independent loss; with bursts it holds its stationary rate', () => {
    const n = 200_000;
    const alone = fourStateLoss(0.1);
    const random = seededRandom(3);
    let lost = 0;
    for (let i = 0; i < n; i++) if (alone.lost(random)) lost++;
    expectBinomial(lost, n, 0.1);
    // p13 = 1 %, p31 = 30 %, p32 = 0, p23 = 1, p14 = 0: gaps end at 1 %, bursts end at 30 %:
    // the same chain as Gilbert with p 1 %, r 30 %: loss 1 / 31.
    const bursty = fourStateLoss(0.01, 0.3);
    let lost2 = 0;
    for (let i = 0; i < n; i++) if (bursty.lost(random)) lost2++;
    const l = 1 - 0.01 - 0.3;
    expectBinomial(lost2, n, 0.01 / 0.31, (1 + l) / (1 - l));
  });

  /** A Random that gives these numbers, in order, and fails the test if asked for one more. */
  function scripted(values: number[]): Random & { used: () => number } {
    let i = 0;
    return {
      next: () => {
        if (i >= values.length) throw new Error('a draw more than scripted');
        return values[i++] as number;
      },
      used: () => i,
    };
  }

  it("4-state: each move of netem's loss_4state, one draw per datagram", () => {
    const model = lossModel({ model: 'state', p13: 0.1, p31: 0.5, p32: 0.2, p23: 0.3, p14: 0.05 });
    // state 1 stays (0.9); to 4, lost (0.01 < p14); 4 back to 1 (any); to 3, lost (0.12 < p13 +
    // p14); 3 stays, lost (0.9 >= p31 + p32); to 2 (0.1 < p32); 2 stays (0.5 >= p23); to 3,
    // lost (0.2 < p23); to 1 (0.5 < p31 + p32); 1 stays.
    const random = scripted([0.9, 0.01, 0.99, 0.12, 0.9, 0.1, 0.5, 0.2, 0.5, 0.9]);
    const lost = Array.from({ length: 10 }, () => model.lost(random));
    expect(lost).toEqual([false, true, false, true, true, false, false, true, false, false]);
    expect(random.used()).toBe(10);
  });

  it("Gilbert-Elliott: the move, then the fate by the state before it, as netem's loss_gilb_ell", () => {
    const model = lossModel({ model: 'gemodel', p: 0.2, r: 0.4, oneMinusH: 0.7, oneMinusK: 0.1 });
    // (move, fate): GOOD stays, lost (0.05 < 1-k); GOOD to BAD, kept (0.5 >= 1-k); BAD stays,
    // lost (0.6 < 1-h); BAD to GOOD, kept (0.8 >= 1-h); GOOD stays, kept.
    const random = scripted([0.5, 0.05, 0.1, 0.5, 0.9, 0.6, 0.3, 0.8, 0.9, 0.9]);
    const lost = Array.from({ length: 5 }, () => model.lost(random));
    expect(lost).toEqual([true, false, true, false, false]);
    expect(random.used()).toBe(10);
  });

  it('--loss 2% --burst 4: lost exactly while BAD, bursts ending with probability 1/4', () => {
    const model = lossModel({ model: 'burst', rate: 0.02, burst: 4 });
    // p = 0.02 / (4 * 0.98): a move below it goes BAD (that datagram still passes); then each
    // datagram is lost, the last one being that whose move is below 1/4.
    const p = 0.02 / (4 * 0.98);
    const random = scripted([p / 2, 0.9, 0.9, 0.1, 0.9, 0.1, 0.2, 0.5, p * 2, 0.5]);
    const lost = Array.from({ length: 5 }, () => model.lost(random));
    expect(lost).toEqual([false, true, true, true, false]);
  });

  it('refuses what is not a probability', () => {
    expect(() => randomLoss(1.5)).toThrow('loss 1.5 is not a probability (0-1)');
    expect(() => fourStateLoss(0.8, 0.5, 0.6)).toThrow('p31 + p32');
    expect(() => burstLossParameters(0.02, 0.5)).toThrow('mean burst length 0.5 is not at least 1');
  });
});

describe('delay distributions', () => {
  const n = 20_000;
  const paretoCdf = (x: number) => (x < -2 / 3 ? 0 : 1 - ((3 * x) / 4 + 1.5) ** -3);
  it.each([
    ['uniform', (x: number) => Math.min(1, Math.max(0, (x + 1) / 2))],
    ['normal', normalCdf],
    ['pareto', paretoCdf],
  ] as const)('%s follows its distribution (Kolmogorov-Smirnov)', (name, cdf) => {
    const model = new DelayModel(50, 10, namedDistribution(name));
    const random = seededRandom(5);
    // Scaled back to the distribution of scale 1; none of these go below 0 ms.
    const samples = Array.from({ length: n }, () => (model.draw(random) - 50) / 10);
    expect(ks(samples, cdf)).toBeLessThan(ksCritical(n));
    // And a wrong distribution is told apart: the test can fail.
    const other = name === 'normal' ? paretoCdf : normalCdf;
    expect(ks(samples, other)).toBeGreaterThan(ksCritical(n));
  });

  it('paretonormal is (normal + 3 pareto) / 4, quantile by quantile, as netem builds it', () => {
    const d = namedDistribution('paretonormal');
    for (const u of [0.001, 0.1, 0.5, 0.9, 0.999]) {
      expect(d.quantile(u)).toBeCloseTo(
        (normalQuantile(u) + (3 * (((1 - u) ** (-1 / 3) - 1.5) * 4)) / 3) / 4,
        12,
      );
    }
  });

  it('the normal quantile is accurate to 1e-8 where it matters', () => {
    for (const [u, x] of [
      [0.5, 0],
      [0.975, 1.959963984540054],
      [0.001, -3.090232306167813],
      [1e-6, -4.753424308822899],
    ] as const) {
      expect(Math.abs(normalQuantile(u) - x)).toBeLessThan(1e-8 * Math.max(1, Math.abs(x)));
    }
  });

  it('no jitter: exactly the delay, with no draw; a negative draw is 0', () => {
    const random = { next: () => 0 };
    expect(new DelayModel(20).draw({ next: () => Number.NaN })).toBe(20);
    expect(new DelayModel(5, 10, namedDistribution('uniform')).draw(random)).toBe(0);
  });

  it('takes a netem .dist table and draws from it as netem does', () => {
    const table = parseDistTable('# a table\n-8192 0\n\n8192 16384\n', 'mine.dist');
    expect([0, 0.25, 0.5, 0.99].map((u) => table.quantile(u))).toEqual([-1, 0, 1, 2]);
    expect(() => parseDistTable('1 2 x', 'bad.dist')).toThrow("bad.dist, line 1: 'x' is not an integer");
    expect(() => parseDistTable('# nothing', 'empty.dist')).toThrow('empty.dist has 0 values');
  });
});

describe('Impairer (netem order)', () => {
  const payload = Buffer.alloc(100, 0x61);
  function run(impairer: Impairer, n: number, spacing = 1): Outcome[][] {
    return Array.from({ length: n }, (_, i) => impairer.decide(i * spacing, payload));
  }

  it('the same seed gives the same decisions; another seed does not', () => {
    const im = {
      loss: { model: 'random', p: 0.1 } as const,
      delay: 20,
      jitter: 5,
      duplicate: 0.05,
      corrupt: 0.05,
    };
    const a = run(new Impairer(im, seededRandom(42)), 2000);
    const b = run(new Impairer(im, seededRandom(42)), 2000);
    const c = run(new Impairer(im, seededRandom(43)), 2000);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(c));
  });

  it('duplicates and corrupts at their rates; a corrupt datagram differs by exactly one bit', () => {
    const n = 100_000;
    const out = run(new Impairer({ duplicate: 0.02, corrupt: 0.01 }, seededRandom(9)), n).flat();
    const copies = out.filter((o) => o.copy).length;
    expectBinomial(copies, n, 0.02);
    const corrupted = out.filter((o) => o.action === 'send' && o.corrupted);
    // Originals are corrupted at 1 %; copies make a pass of their own.
    expectBinomial(corrupted.length, n + copies, 0.01);
    for (const o of corrupted.slice(0, 200)) {
      if (o.action !== 'send') continue;
      let bits = 0;
      for (const [i, b] of o.data.entries())
        bits += (b ^ (payload[i] as number)).toString(2).replace(/0/g, '').length;
      expect(bits).toBe(1);
    }
    expect(payload.every((b) => b === 0x61)).toBe(true);
  });

  it('truncates to a shorter length', () => {
    const out = run(new Impairer({ truncate: 1 }, seededRandom(1)), 1000).flat();
    expect(out.every((o) => o.action === 'send' && o.truncated && o.data.length < payload.length)).toBe(true);
  });

  it('reorder 100% gap 5: every fifth is sent at once, ahead of the four delayed before it', () => {
    const out = run(new Impairer({ delay: 10, reorder: 1, gap: 5 }, seededRandom(1)), 20).map((o) => o[0]);
    const ahead = out.flatMap((o, i) => (o?.action === 'send' && o.delay === 0 ? [i] : []));
    expect(ahead).toEqual([4, 9, 14, 19]);
    expect(out.every((o) => o?.action === 'send' && (o.delay === 0) === o.reordered)).toBe(true);
  });

  it('rate: back-to-back datagrams leave one transmission time apart; the queue limit drops the rest', () => {
    // 128 bytes with 28 of overhead at 12800 B/s: 10 ms each; 100 arrive at once, 5 may wait.
    const impairer = new Impairer({ rate: 12_800, queueLimit: 5 }, seededRandom(1));
    const out = Array.from({ length: 8 }, () => impairer.decide(0, payload)).map((o) => o[0]);
    expect(out.map((o) => (o?.action === 'send' ? o.at : o?.cause))).toEqual([
      10,
      20,
      30,
      40,
      50,
      'queue',
      'queue',
      'queue',
    ]);
    // Once two have left, two more fit, after the last.
    expect(impairer.queued(25)).toBe(3);
    expect(impairer.decide(25, payload)[0]).toMatchObject({ action: 'send', at: 60 });
  });

  it('jitter reorders unless told not to', () => {
    const im = { delay: 50, jitter: 40 };
    const free = run(new Impairer(im, seededRandom(2)), 1000).flat();
    expect(free.filter((o) => o.action === 'send' && o.reordered).length).toBeGreaterThan(100);
    const kept = run(new Impairer({ ...im, reorderByJitter: false }, seededRandom(2)), 1000).flat();
    expect(kept.filter((o) => o.action === 'send' && o.reordered).length).toBe(0);
    const at = kept.map((o) => (o.action === 'send' ? o.at : 0));
    expect(at).toEqual([...at].sort((a, b) => a - b));
  });

  it('drops what is over the MTU, and refuses impossible settings', () => {
    expect(new Impairer({ mtu: 50 }, seededRandom(1)).decide(0, payload)).toEqual([
      { action: 'drop', cause: 'mtu', copy: false },
    ]);
    expect(() => new Impairer({ reorder: 0.1 }, seededRandom(1))).toThrow('it needs a delay');
    expect(() => new Impairer({ gap: 5 }, seededRandom(1))).toThrow('gap applies to reorder');
  });
});

describe('rate over 10 s of arrivals (virtual time)', () => {
  it('holds the configured bit rate within 1 % when offered more', () => {
    // 1 Mbit/s, 1000-byte datagrams (+28 of overhead) offered at 150/s for 10 s: more than
    // the link carries, so it runs full; the queue holds what waits.
    const rate = 1e6 / 8;
    const impairer = new Impairer({ rate, queueLimit: 100_000 }, seededRandom(1));
    const data = Buffer.alloc(1000);
    const departures: number[] = [];
    for (let t = 0; t < 10_000; t += 1000 / 150) {
      for (const o of impairer.decide(t, data)) if (o.action === 'send') departures.push(o.at);
    }
    const within = departures.filter((at) => at <= 10_000);
    const achieved = (within.length * 1028 * 8) / 10; // bit/s over the 10 s
    expect(Math.abs(achieved / 1e6 - 1)).toBeLessThan(0.01);
  });
});

describe('scenarios', () => {
  const scenario = {
    phases: [
      { duration: 10_000 },
      { duration: 5000, up: { loss: { model: 'random' as const, p: 0.3 } } },
      { duration: 2000, linkDown: true },
    ],
  };
  it('says which phase holds when, and repeats or holds the last', () => {
    expect(
      [0, 9999, 10_000, 14_999, 15_000, 16_999, 17_000, 99_000].map((t) => phaseAt(scenario, t)),
    ).toEqual([0, 0, 1, 1, 2, 2, 2, 2]);
    expect([17_000, 27_000, 34_000].map((t) => phaseAt({ ...scenario, repeat: true }, t))).toEqual([0, 1, 0]);
    expect(() => checkScenario({ phases: [] })).toThrow('at least one phase');
    expect(() => checkScenario({ phases: [{ duration: 0 }] })).toThrow('phase 1: duration 0');
  });
});

describe('traces', () => {
  it('mm-link: one 1504-byte opportunity per line, shared by small datagrams, spanned by large ones, wasted when idle', () => {
    const link = new LinkTrace('1\n2\n3\n4\n', 'four.trace');
    expect(link.period).toBe(4);
    // IP sizes: 1500 fills one opportunity (with Mahimahi's 4-byte header); 100 + 4 leaves room.
    expect([link.depart(0, 1500), link.depart(0, 1500), link.depart(0, 100), link.depart(0, 100)]).toEqual([
      1, 2, 3, 3,
    ]);
    // Idle until 10.5 ms: the opportunities at 4 to 10 went unused; the next is at 11 (period 4: 9, 10, 11, 12).
    expect(link.depart(10.5, 100)).toBe(11);
    // 3000 bytes span two opportunities and leave with the last byte.
    expect(link.depart(20, 3000)).toBe(22);
    expect(() => new LinkTrace('0\n', 'zero.trace')).toThrow('zero.trace has no opportunity after 0 ms');
    expect(() => new LinkTrace('5\n3\n', 'back.trace')).toThrow('back.trace, line 2: 3 comes before 5');
  });

  it('mm-link through the Impairer: a line a millisecond carries 1000 full packets a second', () => {
    const impairer = new Impairer({ linkTrace: new LinkTrace('1\n'), queueLimit: 100_000 }, seededRandom(1));
    const data = Buffer.alloc(1472); // + 28 = 1500 bytes of IP packet
    const departures: number[] = [];
    for (let t = 0; t < 1000; t += 0.5) {
      for (const o of impairer.decide(t, data))
        if (o.action === 'send' && o.at <= 1000) departures.push(o.at);
    }
    expect(departures.length).toBe(1000);
    expect(new Set(departures).size).toBe(1000);
  });

  it('a path trace sets the delay and the loss from each line on', () => {
    const path = new PathTrace('# t delay loss\n0 20 0\n1000, 80, 100%\n2000\t40\t0.0\n', 'path.txt');
    expect([path.at(0), path.at(999), path.at(1000), path.at(5000)]).toEqual([
      { time: 0, delay: 20, loss: 0 },
      { time: 0, delay: 20, loss: 0 },
      { time: 1000, delay: 80, loss: 1 },
      { time: 2000, delay: 40, loss: 0 },
    ]);
    const impairer = new Impairer({ pathTrace: path }, seededRandom(1), 500);
    const at = (t: number) => impairer.decide(t, Buffer.alloc(10))[0];
    expect(at(600)).toMatchObject({ action: 'send', delay: 20 });
    expect(at(1600)).toMatchObject({ action: 'drop', cause: 'loss' });
    expect(at(2600)).toMatchObject({ action: 'send', delay: 40 });
    expect(() => new PathTrace('0 20\n', 'short.txt')).toThrow(
      "short.txt, line 1: '0 20' is not 'time delay loss'",
    );
    // A bare number is percent, as --loss reads it: 0.5 is 0.5 %, not a half.
    expect(new PathTrace('0 20 0.5\n', 'p.txt').at(0)).toMatchObject({ delay: 20, loss: 0.005 });
    expect(() => new PathTrace('0 20 150\n', 'p.txt')).toThrow('a loss of 0-100%');
  });
});

describe('slot (netem)', () => {
  it('releases what waits in slots of at most N datagrams, the next slot drawn when one closes', () => {
    // Slots every 10 ms exactly, 4 datagrams each; 10 datagrams arrive at 0.
    const impairer = new Impairer({ slot: { min: 10, max: 10, packets: 4 } }, seededRandom(1), 0);
    const at = Array.from({ length: 10 }, () => impairer.decide(0, Buffer.alloc(100))[0]).map((o) =>
      o?.action === 'send' ? o.at : undefined,
    );
    // A slot is open from the start (as netem's): it carries 4, the next opens 10 ms later.
    expect(at).toEqual([0, 0, 0, 0, 10, 10, 10, 10, 20, 20]);
    // Later, an idle link: a datagram due at 100 waits for a slot drawn from then.
    expect(impairer.decide(100, Buffer.alloc(100))[0]).toMatchObject({ at: 110 });
  });

  it('with a rate, the serializer runs before the slots: what it sends meanwhile leaves in one slot', () => {
    // 44 + 28 bytes at 7200 B/s: 10 ms each. Three arrive at 0, 1 and 2 ms and are serialized
    // by 10, 20 and 30 ms; the slot open from the start is stale for the first, so one is drawn
    // as it is queued (at 0), 50 ms on, and carries all three at 50 ms, as netem's dequeue does.
    const impairer = new Impairer({ rate: 7200, slot: { min: 50, max: 50, packets: 8 } }, seededRandom(1), 0);
    const at = [0, 1, 2]
      .map((t) => impairer.decide(t, Buffer.alloc(44))[0])
      .map((o) => (o?.action === 'send' ? o.at : undefined));
    expect(at).toEqual([50, 50, 50]);
  });

  it('a stale slot is drawn from the arrival, and again from the due time if that one opens too soon', () => {
    // Delay 5 ms, slots 10 ms apart: at 1 ms, a slot from 1 opens at 11, after the due time (6).
    const a = new Impairer({ delay: 5, slot: { min: 10 } }, seededRandom(1), -100);
    expect(a.decide(1, Buffer.alloc(10))[0]).toMatchObject({ at: 11 });
    // Delay 50 ms, slots 10 ms apart: one from the arrival (10) would be stale at 50: from 50, 60.
    const b = new Impairer({ delay: 50, slot: { min: 10 } }, seededRandom(1), -100);
    expect(b.decide(0, Buffer.alloc(10))[0]).toMatchObject({ at: 60 });
  });

  it('a fixed gap (min = max) makes no draw; a range makes one per slot', () => {
    let draws = 0;
    const counting = {
      next: () => {
        draws++;
        return 0.5;
      },
    };
    const fixed = new Impairer({ slot: { min: 10, max: 10, packets: 1 } }, counting, 0);
    for (let i = 0; i < 5; i++) fixed.decide(0, Buffer.alloc(10));
    expect(draws).toBe(0);
    const range = new Impairer({ slot: { min: 10, max: 20, packets: 1 } }, counting, 0);
    const at = Array.from({ length: 3 }, () => range.decide(0, Buffer.alloc(10))[0]).map((o) =>
      o?.action === 'send' ? o.at : undefined,
    );
    expect(at).toEqual([0, 15, 30]);
    expect(draws).toBe(3);
  });

  it('a slot closes on bytes too, and its gap can come from a distribution', () => {
    const impairer = new Impairer({ slot: { min: 5, max: 5, bytes: 300 } }, seededRandom(1), 0);
    // 128 bytes each (100 + 28): the third goes past 300 and closes the slot (it still goes).
    const at = Array.from({ length: 4 }, () => impairer.decide(0, Buffer.alloc(100))[0]).map((o) =>
      o?.action === 'send' ? o.at : undefined,
    );
    expect(at).toEqual([0, 0, 0, 5]);
    const drawn = new Impairer(
      {
        slot: {
          min: 0,
          packets: 1,
          distribution: { distribution: namedDistribution('uniform'), delay: 20, jitter: 5 },
        },
      },
      seededRandom(2),
      0,
    );
    // The slot open from the start takes the first; the next opens 20 ± 5 ms later.
    expect(drawn.decide(0, Buffer.alloc(10))[0]).toMatchObject({ at: 0 });
    const second = drawn.decide(0, Buffer.alloc(10))[0];
    expect(second?.action === 'send' && second.at >= 15 && second.at < 25).toBe(true);
  });
});
