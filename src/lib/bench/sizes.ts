/**
 * Datagram sizes drawn from a distribution, for traffic that is not all one size: uniform over
 * a range, or sizes with weights (IMIX). Pure, seeded.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Random } from '../impair/random.js';
import { DATA_HEADER } from './wire.js';

/** Uniform over `min`-`max` bytes, or each size with its weight. */
export type SizeDistribution = { uniform: [number, number] } | { weighted: [number, number][] };

/** The simple IMIX, as UDP payloads: 7 of 64 B, 4 of 548 B, 1 of 1472 B (IP packets of 92, 576 and 1500). */
export const IMIX: SizeDistribution = {
  weighted: [
    [64, 7],
    [548, 4],
    [1472, 1],
  ],
};

/** The largest size it gives; throws on a size out of range or no weight. */
export function checkSizes(d: SizeDistribution, limit = 65507): number {
  const sizes = 'uniform' in d ? d.uniform : d.weighted.map(([s]) => s);
  for (const s of sizes) {
    if (!Number.isInteger(s) || s < DATA_HEADER || s > limit)
      throw new InvalidArgumentError(
        `size ${s} is not ${DATA_HEADER}-${limit} bytes (the bench's header takes ${DATA_HEADER})`,
      );
  }
  if ('uniform' in d && d.uniform[0] > d.uniform[1])
    throw new InvalidArgumentError(`size range ${d.uniform[0]}-${d.uniform[1]}: the first is the smaller`);
  if ('weighted' in d && !(d.weighted.length > 0 && d.weighted.every(([, w]) => w > 0)))
    throw new InvalidArgumentError('weighted sizes need at least one size, each with a weight above 0');
  return Math.max(...sizes);
}

/** Draws sizes from `d` with `random`. */
export function sizePicker(d: SizeDistribution, random: Random): () => number {
  checkSizes(d);
  if ('uniform' in d) {
    const [min, max] = d.uniform;
    return () => min + Math.floor(random.next() * (max - min + 1));
  }
  const total = d.weighted.reduce((a, [, w]) => a + w, 0);
  const cumulative = d.weighted.map(
    ([size], i) => [size, d.weighted.slice(0, i + 1).reduce((a, [, w]) => a + w, 0) / total] as const,
  );
  return () => {
    const r = random.next();
    for (const [size, upTo] of cumulative) if (r < upTo) return size;
    return (cumulative.at(-1) as readonly [number, number])[0];
  };
}
