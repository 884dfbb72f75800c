/**
 * The proxy's impairment words, parsed (src/cli/impairments.ts, pure): how the command line's
 * flags, its --up/--down specs and a scenario's phases stack, each over the one before.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/args.js';
import {
  directionFlags,
  directionImpairments,
  overlayFlags,
  parseScenarioFile,
} from '../../src/cli/impairments.js';

const dir = mkdtempSync(join(tmpdir(), 'udpkit-impairments-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const trace = join(dir, 'lte.trace');
writeFileSync(trace, '1\n2\n');

const scenario = (phases: unknown[]) => JSON.stringify({ phases });

describe('overlayFlags', () => {
  it("replaces what the top gives and keeps the rest of the base's", () => {
    expect(
      overlayFlags({ delay: '5ms', loss: '1%', mtu: '1200' }, { delay: '9ms', loss: undefined }),
    ).toEqual({
      delay: '9ms',
      loss: '1%',
      mtu: '1200',
    });
    // A jitter alone changes the jitter of the delay below.
    expect(overlayFlags({ delay: '5ms', jitter: '1ms' }, { jitter: '2ms' })).toEqual({
      delay: '5ms',
      jitter: '2ms',
    });
  });

  it("a delay is a whole delay (as netem's `delay D` has no jitter), a loss a whole loss", () => {
    expect(overlayFlags({ delay: '5ms', jitter: '1ms', distribution: 'normal' }, { delay: '9ms' })).toEqual({
      delay: '9ms',
    });
    expect(overlayFlags({ loss: '2%', burst: '4' }, { loss: 'gemodel 1%' })).toEqual({ loss: 'gemodel 1%' });
  });

  it('a word replaces the one that sets the same thing: a trace the rate, a distribution file the name', () => {
    expect(overlayFlags({ rate: '1mbit', mtu: '1200' }, { linkTrace: 'f' })).toEqual({
      linkTrace: 'f',
      mtu: '1200',
    });
    expect(overlayFlags({ linkTrace: 'f' }, { rate: '2mbit' })).toEqual({ rate: '2mbit' });
    expect(overlayFlags({ distribution: 'normal' }, { distributionFile: 'x.dist' })).toEqual({
      distributionFile: 'x.dist',
    });
  });
});

describe('--up / --down over the flags for both directions', () => {
  it("a spec's word replaces the flag's value, in its own direction only", () => {
    const both = { delay: '10ms', loss: '1%' };
    expect(directionImpairments(both, 'delay 50ms 5ms', 'up')).toEqual({
      delay: 50,
      jitter: 5,
      loss: { model: 'random', p: 0.01 },
    });
    expect(directionImpairments(both, undefined, 'down')).toEqual({
      delay: 10,
      loss: { model: 'random', p: 0.01 },
    });
  });

  it("a bad value in a spec is said with the spec's name", () => {
    expect(() => directionImpairments({}, 'delay fast', 'down')).toThrow(
      new UsageError("--down: delay 'fast' is not a time with a unit (e.g. 50ms, 1.5s, 200us)"),
    );
  });
});

describe('--scenario phases', () => {
  const parse = (phases: unknown[], up: object, down: object = {}) =>
    parseScenarioFile(scenario(phases), 's.json', { up, down });

  it('stack: the flags, then --up, then the phase, then its own "up", each replacing the one below', () => {
    // As the command line `--delay 10ms --loss 1% --up 'delay 20ms duplicate 1%'` gives them.
    const up = directionFlags({ delay: '10ms', loss: '1%' }, 'delay 20ms duplicate 1%', 'up');
    const down = directionFlags({ delay: '10ms', loss: '1%' }, undefined, 'down');
    const s = parse(
      [
        { duration: '1s' },
        { duration: '1s', delay: '30ms' },
        { duration: '1s', delay: '30ms', up: 'delay 40ms loss 5%' },
        { duration: '1s', up: 'duplicate 2%' },
      ],
      up,
      down,
    );
    const delays = s.phases.map((p) => [p.up?.delay, p.down?.delay]);
    expect(delays).toEqual([
      [20, 10],
      [30, 30],
      [40, 30],
      [20, 10],
    ]);
    expect(s.phases[2]?.up?.loss).toEqual({ model: 'random', p: 0.05 });
    expect(s.phases[2]?.down?.loss).toEqual({ model: 'random', p: 0.01 });
    // The same word in --up and in a phase's "up" is no clash: the phase's holds for its time.
    expect(s.phases[3]?.up?.duplicate).toBe(0.02);
    expect(s.phases[0]?.up?.duplicate).toBe(0.01);
  });

  it('--trace-up holds in every phase unless the phase gives a rate, which replaces it', () => {
    const up = directionFlags({ linkTrace: trace }, undefined, 'up');
    const s = parse(
      [
        { duration: '1s', delay: '5ms' },
        { duration: '1s', rate: '1mbit' },
      ],
      up,
    );
    expect(s.phases[0]?.up?.linkTrace).toBeDefined();
    expect(s.phases[0]?.down?.linkTrace).toBeUndefined();
    expect(s.phases[1]?.up?.linkTrace).toBeUndefined();
    expect(s.phases[1]?.up?.rate).toBe(125_000);
  });

  it('a bad word in a phase is said with the file and the phase', () => {
    expect(() => parse([{ duration: '1s' }, { duration: '1s', up: 'jitterbug 5ms' }], {})).toThrow(
      /^--scenario s\.json, phase 2: "up": 'jitterbug' is not an impairment/,
    );
    expect(() => parse([{ duration: '1s', jitter: '5ms' }], {})).toThrow(
      '--scenario s.json, phase 1: --jitter varies --delay: give --delay',
    );
  });
});
