/**
 * The impairment options of `udpkit proxy`, parsed: the flags that apply to both directions,
 * and the `--up` / `--down` specs in netem's own words (`delay 50ms 10ms loss 2%`). Pure.
 */
import { readFileSync } from 'node:fs';
import {
  DISTRIBUTIONS,
  type Distribution,
  type DistributionName,
  type Impairments,
  InputError,
  LinkTrace,
  type LossSpec,
  namedDistribution,
  PathTrace,
  parseDistTable,
  type Scenario,
  type SlotOptions,
} from '../lib/index.js';
import { parseDuration, UsageError, usage } from './args.js';

/** The impairment flags, as commander hands them (and as a direction's spec is read into). */
export interface ImpairmentFlags {
  loss?: string;
  burst?: string;
  delay?: string;
  jitter?: string;
  distribution?: string;
  distributionFile?: string;
  reorderByJitter?: boolean;
  duplicate?: string;
  reorder?: string;
  gap?: string;
  corrupt?: string;
  truncate?: string;
  rate?: string;
  packetOverhead?: string;
  queueLimit?: string;
  mtu?: string;
  /** A file: Mahimahi mm-link trace. */
  linkTrace?: string;
  /** A file: time, delay, loss per line. */
  pathTrace?: string;
  /** netem's slot: `MIN [MAX] [packets N] [bytes B]` or `distribution NAME DELAY JITTER [...]`. */
  slot?: string;
}

/** `5%`, `0.5%`, or a bare number of percent (as tc reads it). As a fraction. */
export function parsePercent(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)%?$/.exec(text.trim());
  const v = m ? Number(m[1]) / 100 : Number.NaN;
  if (!(v >= 0 && v <= 1))
    throw new UsageError(`${what} '${text}' is not a percentage (0-100%, e.g. 5% or 0.1%)`);
  return v;
}

const TIME = /^(\d+(?:\.\d+)?|\.\d+)(us|ms|s)$/;
const TIME_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

/** A delay with its unit: `50ms`, `1.5s`, `200us`. In milliseconds. */
export function parseTime(text: string, what: string): number {
  const m = TIME.exec(text.trim());
  if (!m) throw new UsageError(`${what} '${text}' is not a time with a unit (e.g. 50ms, 1.5s, 200us)`);
  const ms = Number(m[1]) * (TIME_MS[m[2] as string] as number);
  if (ms > 3_600_000) throw new UsageError(`${what} '${text}' is over an hour`);
  return ms;
}

const RATE = /^(\d+(?:\.\d+)?|\.\d+)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?$/i;
const RATE_BYTES: Record<string, number> = {
  bit: 1 / 8,
  kbit: 1000 / 8,
  mbit: 1e6 / 8,
  gbit: 1e9 / 8,
  bps: 1,
  kbps: 1000,
  mbps: 1e6,
  gbps: 1e9,
};

/** A rate as tc writes it: `1mbit`, `100kbit`, `10gbit` (bits), `125kbps` (bytes); bare: bit/s. In bytes per second. */
export function parseLinkRate(text: string): number {
  const m = RATE.exec(text.trim());
  const v = m ? Number(m[1]) * (RATE_BYTES[(m[2] ?? 'bit').toLowerCase()] as number) : Number.NaN;
  if (!(v > 0) || !Number.isFinite(v)) {
    throw new UsageError(`rate '${text}' is not a rate (e.g. 1mbit, 100kbit, 10gbit; kbps is bytes)`);
  }
  return v;
}

function parseInteger(text: string, what: string, min = 1): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} '${text}' is not a whole number of at least ${min}`);
  }
  return Number(text);
}

/** `--loss`: `P` (random), `state p13 [p31 [p32 [p23 [p14]]]]`, `gemodel p [r [1-h [1-k]]]`; with `--burst B`, P is a mean. */
function parseLoss(text: string, burst: string | undefined): LossSpec {
  // netem's `loss random P` is plain P.
  const words = text
    .trim()
    .split(/\s+/)
    .filter((w, i) => !(i === 0 && w === 'random'));
  const [first, ...rest] = words;
  const pct = (w: string, name: string) => parsePercent(w, `loss ${name}`);
  if (first === 'state' || first === 'gemodel') {
    if (burst !== undefined) throw new UsageError('--burst goes with a plain --loss P, not a loss model');
    if (rest.length === 0) throw new UsageError(`loss ${first} needs its first probability`);
    if (first === 'state') {
      if (rest.length > 5)
        throw new UsageError('loss state takes at most 5 probabilities: p13 p31 p32 p23 p14');
      const [p13, p31, p32, p23, p14] = rest.map((w, i) =>
        pct(w, ['p13', 'p31', 'p32', 'p23', 'p14'][i] as string),
      );
      return { model: 'state', p13: p13 as number, p31, p32, p23, p14 };
    }
    if (rest.length > 4) throw new UsageError('loss gemodel takes at most 4 probabilities: p r 1-h 1-k');
    const [p, r, oneMinusH, oneMinusK] = rest.map((w, i) => pct(w, ['p', 'r', '1-h', '1-k'][i] as string));
    return { model: 'gemodel', p: p as number, r, oneMinusH, oneMinusK };
  }
  if (words.length === 2) {
    throw new UsageError(
      `loss '${text}': netem's correlation is not supported (it changes the rate itself); for bursts use --burst, 'gemodel' or 'state'`,
    );
  }
  if (words.length !== 1) throw new UsageError(`loss '${text}' is not P, 'state ...' or 'gemodel ...'`);
  const rate = pct(first as string, 'rate');
  if (burst === undefined) return { model: 'random', p: rate };
  const b = Number(burst);
  if (!(b >= 1) || !/^\d+(\.\d+)?$/.test(burst.trim()))
    throw new UsageError(`burst '${burst}' is not a mean burst length of at least 1`);
  if (rate >= 1) throw new UsageError('a loss of 100% has no bursts: drop --burst');
  // A burst of B at a loss of L needs p = L / (B (1 - L)) to be a probability: L <= B / (B + 1).
  if (rate > b / (b + 1)) {
    throw new UsageError(
      `--loss ${text} --burst ${burst}: bursts of ${b} on average allow at most ${((100 * b) / (b + 1)).toFixed(1)}% loss (burst / (burst + 1))`,
    );
  }
  return { model: 'burst', rate, burst: b };
}

/** The impairments the flags describe. */
export function parseImpairments(flags: ImpairmentFlags): Impairments {
  const im: Impairments = {};
  if (flags.loss !== undefined) im.loss = parseLoss(flags.loss, flags.burst);
  else if (flags.burst !== undefined)
    throw new UsageError('--burst is the mean length of --loss bursts: give --loss');
  if (flags.delay !== undefined) im.delay = parseTime(flags.delay, 'delay');
  if (flags.jitter !== undefined) {
    if (im.delay === undefined) throw new UsageError('--jitter varies --delay: give --delay');
    im.jitter = parseTime(flags.jitter, 'jitter');
  }
  if (flags.distribution !== undefined || flags.distributionFile !== undefined) {
    if (im.jitter === undefined)
      throw new UsageError('a distribution shapes --jitter: give --delay and --jitter');
    im.distribution = parseDistribution(flags);
  }
  if (flags.reorderByJitter === false) im.reorderByJitter = false;
  if (flags.duplicate !== undefined) im.duplicate = parsePercent(flags.duplicate, 'duplicate');
  if (flags.reorder !== undefined) {
    im.reorder = parsePercent(flags.reorder, 'reorder');
    if (!(im.delay !== undefined && im.delay > 0)) {
      throw new UsageError('--reorder sends some datagrams ahead of delayed ones: give --delay too');
    }
  }
  if (flags.gap !== undefined) {
    if (im.reorder === undefined) throw new UsageError('--gap applies to --reorder: give --reorder');
    im.gap = parseInteger(flags.gap, 'gap');
  }
  if (flags.corrupt !== undefined) im.corrupt = parsePercent(flags.corrupt, 'corrupt');
  if (flags.truncate !== undefined) im.truncate = parsePercent(flags.truncate, 'truncate');
  if (flags.rate !== undefined) im.rate = parseLinkRate(flags.rate);
  if (flags.packetOverhead !== undefined) {
    if (flags.rate === undefined && flags.slot === undefined) {
      throw new UsageError('--packet-overhead counts towards --rate and --slot bytes: give one');
    }
    im.packetOverhead = parseInteger(flags.packetOverhead, 'packet overhead', 0);
  }
  if (flags.queueLimit !== undefined) im.queueLimit = parseInteger(flags.queueLimit, 'queue limit');
  if (flags.mtu !== undefined) {
    im.mtu = parseInteger(flags.mtu, 'mtu');
    if (im.mtu <= 28)
      throw new UsageError(`mtu ${im.mtu} leaves no room for a payload (the IPv4 and UDP headers take 28)`);
  }
  if (flags.slot !== undefined) im.slot = parseSlot(flags.slot);
  if (flags.linkTrace !== undefined) {
    if (im.rate !== undefined)
      throw new UsageError('a link trace sets the rate: give --rate or a trace, not both');
    const file = flags.linkTrace;
    const text = readText(file, 'link trace');
    im.linkTrace = usage(() => new LinkTrace(text, file));
  }
  if (flags.pathTrace !== undefined) {
    const file = flags.pathTrace;
    const text = readText(file, 'path trace');
    im.pathTrace = usage(() => new PathTrace(text, file));
  }
  return im;
}

/** `--slot`: `MIN [MAX] [packets N] [bytes B]`, or `distribution NAME DELAY JITTER [packets N] [bytes B]`. */
function parseSlot(text: string): SlotOptions {
  const words = text.trim().split(/\s+/);
  const slot: SlotOptions = { min: 0 };
  let i = 0;
  if (words[0] === 'distribution') {
    const [, name, delay, jitter] = words;
    if (name === undefined || delay === undefined || jitter === undefined) {
      throw new UsageError(`slot '${text}': 'distribution' takes a name, a delay and a jitter`);
    }
    const distribution = parseDistribution({ distribution: name });
    slot.distribution = {
      distribution,
      delay: parseTime(delay, 'slot delay'),
      jitter: parseTime(jitter, 'slot jitter'),
    };
    i = 4;
  } else {
    if (words[0] === undefined || words[0] === '')
      throw new UsageError('slot needs a time: MIN [MAX] [packets N] [bytes B]');
    slot.min = parseTime(words[0], 'slot min');
    i = 1;
    if (words[1] !== undefined && words[1] !== 'packets' && words[1] !== 'bytes') {
      slot.max = parseTime(words[1], 'slot max');
      if (slot.max < slot.min) throw new UsageError(`slot '${text}': max is less than min`);
      i = 2;
    }
  }
  for (; i < words.length; i += 2) {
    const [key, value] = [words[i], words[i + 1]];
    if ((key !== 'packets' && key !== 'bytes') || value === undefined) {
      throw new UsageError(`slot '${text}': after the times come 'packets N' and 'bytes B'`);
    }
    slot[key] = parseInteger(value, `slot ${key}`);
  }
  return slot;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function parseDistribution(flags: ImpairmentFlags): Distribution {
  if (flags.distribution !== undefined && flags.distributionFile !== undefined) {
    throw new UsageError('--distribution and --distribution-file: give one');
  }
  if (flags.distributionFile !== undefined) {
    const file = flags.distributionFile;
    const text = readText(file, 'distribution file');
    return usage(() => parseDistTable(text, file));
  }
  const name = flags.distribution as string;
  if (!(DISTRIBUTIONS as readonly string[]).includes(name)) {
    throw new UsageError(
      `distribution '${name}' is not one of ${DISTRIBUTIONS.join(', ')} (or give --distribution-file)`,
    );
  }
  return namedDistribution(name as DistributionName);
}

/** The words of a direction's spec, and the flag each sets; `loss` takes words up to the next keyword. */
const SPEC_WORDS: Record<string, keyof ImpairmentFlags> = {
  loss: 'loss',
  burst: 'burst',
  delay: 'delay',
  jitter: 'jitter',
  distribution: 'distribution',
  'distribution-file': 'distributionFile',
  duplicate: 'duplicate',
  reorder: 'reorder',
  gap: 'gap',
  corrupt: 'corrupt',
  truncate: 'truncate',
  rate: 'rate',
  'packet-overhead': 'packetOverhead',
  limit: 'queueLimit',
  'queue-limit': 'queueLimit',
  mtu: 'mtu',
  trace: 'linkTrace',
  'path-trace': 'pathTrace',
  slot: 'slot',
};

/**
 * A direction's spec (`--up 'delay 50ms 10ms distribution normal loss 2% burst 4'`), in the
 * words of tc-netem(8) and of the flags without their dashes, read into flags: `delay D [J]`
 * also takes the jitter, as netem's does; `no-reorder-by-jitter` alone.
 */
export function parseDirectionSpec(spec: string, where: string): ImpairmentFlags {
  const words = spec.trim().split(/\s+/).filter(Boolean);
  const flags: ImpairmentFlags = {};
  for (let i = 0; i < words.length; ) {
    const word = words[i++] as string;
    if (word === 'no-reorder-by-jitter') {
      flags.reorderByJitter = false;
      continue;
    }
    const key = SPEC_WORDS[word];
    if (key === undefined) {
      throw new UsageError(
        `${where}: '${word}' is not an impairment (${Object.keys(SPEC_WORDS).join(', ')})`,
      );
    }
    const values: string[] = [];
    // A slot may begin with 'distribution' (netem's `slot distribution NAME DELAY JITTER`).
    if (word === 'slot' && words[i] === 'distribution') values.push(words[i++] as string);
    while (i < words.length && !((words[i] as string) in SPEC_WORDS) && words[i] !== 'no-reorder-by-jitter') {
      values.push(words[i++] as string);
    }
    if (values.length === 0) throw new UsageError(`${where}: '${word}' needs a value`);
    if (flags[key] !== undefined) throw new UsageError(`${where}: '${word}' is given twice`);
    if (key === 'delay' && values.length === 3) {
      throw new UsageError(
        `${where}: 'delay ${values.join(' ')}': netem's correlation is not supported; give delay and jitter`,
      );
    }
    if (key === 'delay' && values.length === 2) {
      flags.delay = values[0];
      flags.jitter = values[1];
    } else if (key === 'loss' || key === 'slot') flags[key] = values.join(' ');
    else if (values.length > 1)
      throw new UsageError(`${where}: '${word}' takes one value, got '${values.join(' ')}'`);
    else (flags as Record<string, string>)[key] = values[0] as string;
  }
  return flags;
}

/**
 * Words that describe one thing together: giving the first of a group replaces all of it below
 * (a `delay` its jitter and distribution, as netem's `delay D` has none; a `loss` its burst);
 * giving any other replaces its own word and those that say the same (a trace sets the rate).
 */
const SAME_THING: (keyof ImpairmentFlags)[][] = [
  ['delay', 'jitter', 'distribution', 'distributionFile'],
  ['loss', 'burst'],
  ['distribution', 'distributionFile'],
  ['distributionFile', 'distribution'],
  ['rate', 'linkTrace'],
  ['linkTrace', 'rate'],
];

/**
 * `over`'s words on top of `base`'s: each replaces the value `base` gave it, and what sets the
 * same thing (see SAME_THING); the rest of `base` holds.
 */
export function overlayFlags(base: ImpairmentFlags, over: ImpairmentFlags): ImpairmentFlags {
  const out: ImpairmentFlags = { ...base };
  for (const [head, ...rest] of SAME_THING) {
    if (over[head as keyof ImpairmentFlags] !== undefined) for (const k of rest) delete out[k];
  }
  for (const [key, value] of Object.entries(over)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

/**
 * One direction's flags: those for both directions, with the direction's own spec on top (a
 * spec's word replaces the flag's value).
 */
export function directionFlags(
  both: ImpairmentFlags,
  spec: string | undefined,
  which: 'up' | 'down',
): ImpairmentFlags {
  return spec === undefined ? both : overlayFlags(both, parseDirectionSpec(spec, `--${which}`));
}

/** One direction's impairments: {@link directionFlags}, parsed. */
export function directionImpairments(
  both: ImpairmentFlags,
  spec: string | undefined,
  which: 'up' | 'down',
): Impairments {
  const flags = directionFlags(both, spec, which);
  try {
    return parseImpairments(flags);
  } catch (err) {
    // A bad value is said with where it came from; a file that cannot be read is not a usage error.
    if (err instanceof UsageError && spec !== undefined) throw new UsageError(`--${which}: ${err.message}`);
    throw err;
  }
}

/** The keys a scenario's phase may hold besides impairment words. */
const PHASE_KEYS = new Set(['duration', 'name', 'link', 'up', 'down']);

/**
 * A `--scenario` file: `{ "repeat": true, "phases": [ { "duration": "10s", ... }, ... ] }`. A
 * phase holds `duration` (`5s`, `500ms`; a bare number is seconds), an optional `name`,
 * `"link": "down"`, and impairments in the flags' words (`"loss": "30%"`, `"burst": 4`,
 * `"delay": "200ms"`) for both directions, and `up` / `down` specs as `--up` takes them. Per
 * direction, a phase's words go on top of the command line's (`base`: its flags with its
 * `--up` or `--down` on top), the phase's own spec last: each replaces the value below it.
 */
export function parseScenarioFile(
  text: string,
  file: string,
  base: Record<'up' | 'down', ImpairmentFlags>,
): Scenario {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--scenario ${file}: not JSON (${(err as Error).message})`);
  }
  const { phases, repeat } = (doc ?? {}) as { phases?: unknown; repeat?: unknown };
  if (!Array.isArray(phases) || phases.length === 0) {
    throw new UsageError(`--scenario ${file}: needs "phases", a list of at least one phase`);
  }
  if (repeat !== undefined && typeof repeat !== 'boolean')
    throw new UsageError(`--scenario ${file}: "repeat" is true or false`);
  return {
    repeat: repeat === true,
    phases: phases.map((raw, i) => {
      const where = `--scenario ${file}, phase ${i + 1}`;
      if (typeof raw !== 'object' || raw === null) throw new UsageError(`${where}: not an object`);
      const phase = raw as Record<string, unknown>;
      const own: ImpairmentFlags = {};
      for (const [key, value] of Object.entries(phase)) {
        if (PHASE_KEYS.has(key)) continue;
        const flag =
          SPEC_WORDS[key] ??
          (Object.values(SPEC_WORDS).includes(key as keyof ImpairmentFlags)
            ? (key as keyof ImpairmentFlags)
            : undefined);
        if (flag === undefined)
          throw new UsageError(
            `${where}: '${key}' is not an impairment (${Object.keys(SPEC_WORDS).join(', ')})`,
          );
        if (typeof value !== 'string' && typeof value !== 'number')
          throw new UsageError(`${where}: '${key}' is a string or a number`);
        (own as Record<string, string>)[flag] = String(value);
      }
      if (phase.duration === undefined) throw new UsageError(`${where}: needs a "duration"`);
      const duration = parseDuration(String(phase.duration), `${where}: duration`);
      if (phase.link !== undefined && phase.link !== 'down' && phase.link !== 'up') {
        throw new UsageError(`${where}: "link" is "down" or "up"`);
      }
      for (const k of ['up', 'down'] as const) {
        if (phase[k] !== undefined && typeof phase[k] !== 'string')
          throw new UsageError(`${where}: "${k}" is a spec, as --${k} takes`);
      }
      try {
        const at = (which: 'up' | 'down') => {
          const spec = phase[which] as string | undefined;
          const flags = overlayFlags(
            overlayFlags(base[which], own),
            spec === undefined ? {} : parseDirectionSpec(spec, `"${which}"`),
          );
          return usage(() => parseImpairments(flags), where);
        };
        return {
          duration,
          name: typeof phase.name === 'string' ? phase.name : undefined,
          linkDown: phase.link === 'down',
          up: at('up'),
          down: at('down'),
        };
      } catch (err) {
        if (err instanceof UsageError && !err.message.startsWith(where))
          throw new UsageError(`${where}: ${err.message}`);
        throw err;
      }
    }),
  };
}
