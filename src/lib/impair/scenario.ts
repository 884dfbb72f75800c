/**
 * Scenarios: impairments that change over time, in phases (10 s clean, 5 s of 30 % burst loss,
 * 2 s with the link down, 10 s of 200 ms delay, and again). Pure: which phase holds at a time.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Impairments } from './impairer.js';

/** One phase: how long it lasts and what each direction does meanwhile. */
export interface Phase {
  /** Milliseconds. */
  duration: number;
  /** A name for logs and summaries (default: its number, from 1). */
  name?: string | undefined;
  up?: Impairments | undefined;
  down?: Impairments | undefined;
  /** The link is down: every datagram is dropped, both ways (cause `link`). */
  linkDown?: boolean | undefined;
}

/** Phases in order; after the last, from the first again (`repeat`) or the last holds. */
export interface Scenario {
  phases: Phase[];
  repeat?: boolean | undefined;
}

/** Checks a scenario: at least one phase, each lasting more than 0. */
export function checkScenario(scenario: Scenario): void {
  if (!Array.isArray(scenario.phases) || scenario.phases.length === 0) {
    throw new InvalidArgumentError('a scenario needs at least one phase');
  }
  for (const [i, p] of scenario.phases.entries()) {
    if (!(p.duration > 0 && Number.isFinite(p.duration))) {
      throw new InvalidArgumentError(`phase ${i + 1}: duration ${p.duration} is not more than 0 ms`);
    }
  }
}

/** The index of the phase holding `elapsed` ms after the start. */
export function phaseAt(scenario: Scenario, elapsed: number): number {
  const total = scenario.phases.reduce((sum, p) => sum + p.duration, 0);
  let t = scenario.repeat ? elapsed % total : elapsed;
  for (const [i, p] of scenario.phases.entries()) {
    if (t < p.duration) return i;
    t -= p.duration;
  }
  return scenario.phases.length - 1;
}
