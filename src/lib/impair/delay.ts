/**
 * Delay with jitter drawn from a distribution, as netem's tabledist() gives it: mu + sigma * t,
 * with t drawn from a distribution of scale 1 (one draw per datagram, none when sigma is 0).
 * Instead of netem's 4096-entry tables (iproute2's netem/normal.c, pareto.c, paretonormal.c),
 * udpkit draws from the same inverse distribution functions exactly, so a delay follows its
 * distribution with no table steps and no clipping at 4 sigma. A netem `.dist` table (integers
 * scaled by 8192) is taken as it is, and drawn from as netem draws from it.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Random } from './random.js';

/** The named distributions: `tc ... delay D J distribution NAME`'s, and uniform (netem's default). */
export const DISTRIBUTIONS = ['uniform', 'normal', 'pareto', 'paretonormal'] as const;
export type DistributionName = (typeof DISTRIBUTIONS)[number];

/** A distribution of scale 1, by its quantile function (inverse CDF) on [0, 1). */
export interface Distribution {
  readonly name: string;
  quantile(u: number): number;
}

/**
 * The standard normal quantile: Acklam's rational approximation (relative error under
 * 1.15e-9 over the whole range).
 */
export function normalQuantile(p: number): number {
  if (p <= 0) return Number.NEGATIVE_INFINITY;
  if (p >= 1) return Number.POSITIVE_INFINITY;
  if (p < P_LOW) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - P_LOW) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((A0 * r + A1) * r + A2) * r + A3) * r + A4) * r + A5) * q) /
    (((((B0 * r + B1) * r + B2) * r + B3) * r + B4) * r + 1)
  );
}
const [A0, A1, A2, A3, A4, A5] = [
  -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
  2.506628277459239,
];
const [B0, B1, B2, B3, B4] = [
  -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
];
const [C0, C1, C2, C3, C4, C5] = [
  -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
  2.938163982698783,
];
const [D0, D1, D2, D3] = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
const P_LOW = 0.02425;
function tail(q: number): number {
  return (
    (((((C0 * q + C1) * q + C2) * q + C3) * q + C4) * q + C5) / ((((D0 * q + D1) * q + D2) * q + D3) * q + 1)
  );
}

/**
 * netem's pareto (iproute2 netem/pareto.c): a Pareto of shape 3 and scale 1, shifted to mean
 * 0 and scaled by 4/3: ((1 - u)^(-1/3) - 1.5) * 4/3. From -2/3 up, with a long right tail.
 */
export function paretoQuantile(u: number): number {
  return ((1 - u) ** (-1 / 3) - 1.5) * (4 / 3);
}

/** The distributions by name. paretonormal is netem's (normal + 3 pareto) / 4, quantile by quantile. */
export function namedDistribution(name: DistributionName): Distribution {
  switch (name) {
    case 'uniform':
      return { name, quantile: (u) => 2 * u - 1 };
    case 'normal':
      return { name, quantile: normalQuantile };
    case 'pareto':
      return { name, quantile: paretoQuantile };
    case 'paretonormal':
      return { name, quantile: (u) => (normalQuantile(u) + 3 * paretoQuantile(u)) / 4 };
  }
}

/**
 * A netem `.dist` table: `#` comments and blank lines skipped, otherwise whitespace-separated
 * integers (each t * 8192), at most 16384 of them, as iproute2's tc reads it. Drawn from as
 * netem does: entry floor(u * size).
 *
 * @throws {InvalidArgumentError} on anything else, naming the line
 */
export function parseDistTable(text: string, name = 'table'): Distribution {
  const values: number[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    const content = line.trim();
    if (content === '' || content.startsWith('#')) continue;
    for (const word of content.split(/\s+/)) {
      if (!/^[-+]?\d+$/.test(word)) {
        throw new InvalidArgumentError(`${name}, line ${i + 1}: '${word}' is not an integer`);
      }
      values.push(Number(word) / 8192);
    }
  }
  if (values.length === 0 || values.length > 16384) {
    throw new InvalidArgumentError(`${name} has ${values.length} values: a table has 1 to 16384`);
  }
  return { name, quantile: (u) => values[Math.floor(u * values.length)] as number };
}

/** Draws delays: mu, plus sigma times the distribution (no draw when sigma is 0). */
export class DelayModel {
  readonly mu: number;
  readonly sigma: number;
  readonly distribution: Distribution;

  constructor(mu: number, sigma = 0, distribution: Distribution = namedDistribution('uniform')) {
    if (!(mu >= 0) || !(sigma >= 0)) throw new InvalidArgumentError('delay and jitter must be 0 or more');
    this.mu = mu;
    this.sigma = sigma;
    this.distribution = distribution;
  }

  /** A delay in milliseconds; below 0 counts as 0 (netem sends such a datagram at once). */
  draw(random: Random): number {
    if (this.sigma === 0) return this.mu;
    const d = this.mu + this.sigma * this.distribution.quantile(random.next());
    return d > 0 ? d : 0;
  }
}
