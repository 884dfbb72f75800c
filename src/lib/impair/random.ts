/**
 * Seeded randomness for the impairment models: one stream per use, so that the same seed and
 * the same input give the same decisions in the same order. pure-rand's xoroshiro128+ (the
 * generator fast-check relies on), 53-bit doubles.
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

/** A source of uniform doubles in [0, 1). */
export interface Random {
  next(): number;
}

/** A seeded stream: the same `seed` and `stream` give the same numbers, on every platform. */
export function seededRandom(seed: number, stream = 0): Random {
  // The stream's seed mixes both 32-bit halves, so streams of one seed are unrelated.
  const generator = xoroshiro128plus(
    (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) | 0,
  );
  return { next: () => uniformFloat64(generator) };
}

/** A seed for when none was given: shown, so that the run can be repeated. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}
