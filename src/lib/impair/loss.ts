/**
 * Loss models, as Linux netem has them (net/sched/sch_netem.c: loss_4state, loss_gilb_ell),
 * with probabilities as fractions (0.05 for 5 %). Each model keeps its own state and draws
 * from the Random it is given, the same number of draws per datagram as netem.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Random } from './random.js';

/** A loss model: whether the next datagram is lost. */
export interface LossModel {
  lost(random: Random): boolean;
}

/** How a loss model is described (also what the CLI's --loss forms parse to). */
export type LossSpec =
  | { model: 'random'; p: number }
  | { model: 'state'; p13: number; p31?: number; p32?: number; p23?: number; p14?: number }
  | { model: 'gemodel'; p: number; r?: number; oneMinusH?: number; oneMinusK?: number }
  | { model: 'burst'; rate: number; burst: number };

function fraction(value: number, name: string): number {
  if (!(value >= 0 && value <= 1))
    throw new InvalidArgumentError(`${name} ${value} is not a probability (0-1)`);
  return value;
}

/** Each datagram lost with probability `p`, independently (netem `loss random P`). */
export function randomLoss(p: number): LossModel {
  fraction(p, 'loss');
  return { lost: (random) => p > 0 && random.next() < p };
}

/**
 * netem's 4-state Markov model (`loss state p13 [p31 [p32 [p23 [p14]]]]`): 1 good in a gap,
 * 2 good in a burst, 3 lost in a burst, 4 lost alone. A datagram's fate is the state it moves
 * into. Defaults as iproute2's: p31 = 1 - p13, p32 = 0, p23 = 1, p14 = 0 (with p13 alone,
 * independent loss at p13). One draw per datagram.
 */
export function fourStateLoss(p13: number, p31 = 1 - p13, p32 = 0, p23 = 1, p14 = 0): LossModel {
  for (const [v, n] of [
    [p13, 'p13'],
    [p31, 'p31'],
    [p32, 'p32'],
    [p23, 'p23'],
    [p14, 'p14'],
  ] as const)
    fraction(v, n);
  if (p13 + p14 > 1 || p31 + p32 > 1) {
    throw new InvalidArgumentError('p13 + p14 and p31 + p32 must each be at most 1');
  }
  let state = 1;
  return {
    lost(random) {
      const r = random.next();
      switch (state) {
        case 1:
          if (r < p14) {
            state = 4;
            return true;
          }
          if (r < p13 + p14) {
            state = 3;
            return true;
          }
          return false;
        case 2:
          if (r < p23) {
            state = 3;
            return true;
          }
          return false;
        case 3:
          if (r < p32) state = 2;
          else if (r < p31 + p32) state = 1;
          else return true;
          return false;
        default:
          state = 1; // 4 always goes back to 1 (p41 = 1)
          return false;
      }
    },
  };
}

/**
 * Gilbert-Elliott (`loss gemodel p [r [1-h [1-k]]]`): GOOD moves to BAD with probability p,
 * BAD back with r; a datagram is lost with 1-k in GOOD and 1-h in BAD, decided by the state
 * before this datagram's move. Defaults as iproute2's: r = 1 - p, 1-h = 1, 1-k = 0. Two draws
 * per datagram, as netem makes.
 */
export function gilbertElliottLoss(p: number, r = 1 - p, oneMinusH = 1, oneMinusK = 0): LossModel {
  fraction(p, 'p');
  fraction(r, 'r');
  fraction(oneMinusH, '1-h');
  fraction(oneMinusK, '1-k');
  let bad = false;
  return {
    lost(random) {
      const move = random.next();
      const fate = random.next();
      if (bad) {
        if (move < r) bad = false;
        return fate < oneMinusH;
      }
      if (move < p) bad = true;
      return fate < oneMinusK;
    },
  };
}

/**
 * The simple Gilbert model with a mean loss rate and a mean burst length, the form people
 * think in: a datagram is lost exactly while the chain is BAD, so bursts last 1/r on average
 * and the loss rate is p/(p+r). Hence r = 1/burst and p = rate / (burst (1 - rate)): for 2 %
 * in bursts of 4, p = 0.5102 %, r = 25 % (netem `loss gemodel 0.5102% 25%`).
 */
export function burstLossParameters(rate: number, burst: number): { p: number; r: number } {
  fraction(rate, 'loss');
  if (!(burst >= 1)) throw new InvalidArgumentError(`mean burst length ${burst} is not at least 1`);
  if (rate >= 1) throw new InvalidArgumentError('a mean loss of 100 % has no bursts: use a loss of 100%');
  return { p: rate / (burst * (1 - rate)), r: 1 / burst };
}

/** The model a spec describes. */
export function lossModel(spec: LossSpec): LossModel {
  switch (spec.model) {
    case 'random':
      return randomLoss(spec.p);
    case 'state':
      return fourStateLoss(spec.p13, spec.p31, spec.p32, spec.p23, spec.p14);
    case 'gemodel':
      return gilbertElliottLoss(spec.p, spec.r, spec.oneMinusH, spec.oneMinusK);
    case 'burst': {
      const { p, r } = burstLossParameters(spec.rate, spec.burst);
      return gilbertElliottLoss(p, r, 1, 0);
    }
  }
}
