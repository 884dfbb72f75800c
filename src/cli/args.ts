/**
 * Pure parsers for the CLI's arguments: durations, counts, and the positional address rules of
 * `listen` and `send`. Every failure is a {@link UsageError} with a message a person can act on.
 */
import {
  AccessList,
  type AccessRule,
  type HostPort,
  type IpFamily,
  ipFamily,
  isHostLike,
  parseCidr,
  parseHostPort,
  parsePort,
} from '../lib/index.js';

/** A mistake in the command line: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code = 'UDP_ERR_USAGE';
}

/** Runs `fn`, turning any error it throws into a {@link UsageError} with its message, after `what: ` when given. */
export function usage<T>(fn: () => T, what?: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new UsageError(what === undefined ? message : `${what}: ${message}`, { cause: err });
  }
}

const DURATION = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration: `250ms`, `1.5s`, `2m`, `1h`; a bare number is seconds, as with `nc -w`.
 *
 * @returns milliseconds, more than 0
 * @throws {UsageError} on anything else
 */
export function parseDuration(text: string, what: string): number {
  const m = DURATION.exec(text.trim());
  if (!m)
    throw new UsageError(
      `${what} '${text}' is not a duration (e.g. 500ms, 5s, 2m; a bare number is seconds)`,
    );
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 's'] as number);
  if (!(ms > 0) || !Number.isFinite(ms)) throw new UsageError(`${what} must be more than 0, got '${text}'`);
  if (ms > 2_147_483_647) throw new UsageError(`${what} '${text}' is too long (at most 24 days)`);
  return ms;
}

/**
 * Parses a count of at least 1.
 *
 * @throws {UsageError} when `text` is not a positive integer
 */
export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} '${text}' is not a positive integer`);
  }
  return Number(text);
}

/** `-4` / `-6`, as `nc` spells them; both at once is a usage error. */
export function parseFamilyFlags(flags: { ipv4?: boolean; ipv6?: boolean }): IpFamily | undefined {
  if (flags.ipv4 && flags.ipv6) throw new UsageError('-4 and -6 cannot be used together');
  return flags.ipv4 ? 'IPv4' : flags.ipv6 ? 'IPv6' : undefined;
}

/**
 * A host given where a port could also be: `-4` and `-6` say which family, so an IP literal of
 * the other one is a usage error, caught before any I/O. Names are left to the resolver.
 *
 * @param host the host as the positional parsers return it (no brackets, no port)
 * @throws {UsageError} when `host` is an IP literal of the other family
 */
export function checkFamily(host: string | undefined, family: IpFamily | undefined): void {
  if (host === undefined || family === undefined) return;
  const literal = ipFamily(host);
  if (literal !== undefined && literal !== family) {
    throw new UsageError(
      `${family === 'IPv4' ? '-4' : '-6'} asks for ${family}, but ${host} is an ${literal} address`,
    );
  }
}

const DIGITS = /^\d+$/;
// A digit first and no '.' or ':': a port or nothing (`12345abc`, `1e3`, `250ms`).
const PORT_LIKE = /^\d[^.:]*$/;
/** What inet_aton reads as a number: digits and dots, or hexadecimal parts (`0x7f000001`). */
const NUMERIC_HOST = /^(?:0x[\da-f]*|\d*)(?:\.(?:0x[\da-f]*|\d*))*$/i;

/**
 * A host that starts like a number must be a number: the resolver would otherwise query DNS for
 * `12345abc`, and getaddrinfo reads `1.2.3` as 1.2.0.3 and `9000` as 0.0.35.40.
 */
function checkPortLike(text: string): void {
  if (PORT_LIKE.test(text) && !DIGITS.test(text)) {
    throw new UsageError(`'${text}' is not a port number (0-65535) or an address`);
  }
}

/** A host that looks like a number must be a dotted quad (getaddrinfo reads `1.2.3` as 1.2.0.3). */
export function checkDottedQuad(host: string): void {
  if (NUMERIC_HOST.test(host) && ipFamily(host) === undefined) {
    throw new UsageError(`'${host}' is not a valid IPv4 address`);
  }
}

/** {@link parseHostPort} with the checks above: its host part resolves as what it looks like. */
function parseAddress(text: string): HostPort {
  checkPortLike(text);
  // Checked before parsing too, for this message rather than "not a valid host name" (`1..2`).
  if (!DIGITS.test(text) && !text.includes(':')) checkDottedQuad(text);
  const parsed = usage(() => parseHostPort(text));
  if (parsed.host !== undefined) checkDottedQuad(parsed.host);
  return parsed;
}

/**
 * The local address of `listen` from its positionals, in `nc`'s order: `[host] [port]`, or
 * one `host:port`, `[v6]:port`, bare port or bare host. A positional that starts with a digit
 * is a port or an IPv4 address, never a name to look up (`12345abc`, `1e3`, `1.2.3`).
 *
 * @throws {UsageError} on a malformed address or port, or too many positionals
 */
export function parseListenPositionals(args: readonly string[]): HostPort {
  if (args.length > 2) throw new UsageError(`too many arguments: expected [host] [port], got ${args.length}`);
  const [first, second] = args;
  if (first === undefined) return {};
  const address = parseAddress(first);
  if (second === undefined) return address;
  if (address.port !== undefined || address.host === undefined) {
    throw new UsageError(`'${first}' is not a host; write either 'host port' or 'host:port'`);
  }
  return { host: address.host, port: usage(() => parsePort(second)) };
}

const HOST_COLON_PORT = /^(?:\[[^\]]*\]|[^:[\]\s]+):\d+$/;

/** What `send`'s positionals mean: an optional target, then the messages. */
export interface SendPositionals extends HostPort {
  messages: string[];
}

/**
 * Splits `send`'s positionals. The first ones name the target when
 *
 * - the first starts with `[` or `:`, or is an IP literal: always a target (`[::1]`, `:9000`,
 *   `127.0.0.1`, `[::1]:9000`), followed by a port number when it has none (`::1 9000`);
 * - the first is a `host:port`;
 * - or the first is a host name followed by a port number (`localhost 9000`).
 *
 * Otherwise every positional is a message to the default target, so `send Hello World UDP`
 * sends three messages. A target without a port leaves `port` absent for the caller's default.
 * A target that looks like one but is malformed (`[fe80::1%`, port 70000, `1.2.3 9000`) is an
 * error, not a message.
 *
 * @throws {UsageError} on a malformed target
 */
export function parseSendPositionals(args: readonly string[]): SendPositionals {
  const [first, second] = args;
  if (first === undefined) return { messages: [] };
  if (
    first.startsWith('[') ||
    first.startsWith(':') ||
    ipFamily(first) !== undefined ||
    HOST_COLON_PORT.test(first)
  ) {
    const target = parseAddress(first);
    if (target.port === undefined && second !== undefined && DIGITS.test(second)) {
      return { ...target, port: usage(() => parsePort(second)), messages: args.slice(2) };
    }
    return { ...target, messages: args.slice(1) };
  }
  if (second !== undefined && DIGITS.test(second) && isHostLike(first)) {
    checkPortLike(first);
    checkDottedQuad(first);
    return { host: first, port: usage(() => parsePort(second)), messages: args.slice(2) };
  }
  return { messages: [...args] };
}

const SIZE = /^(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?$/i;

/**
 * Parses a byte size: `65536`, `512K`, `4M`, `1G` (K, M and G are binary: 1024, 1048576, 2^30).
 *
 * @throws {UsageError} on anything else, or a size out of 1 byte - 1 GiB
 */
export function parseByteSize(text: string, what: string): number {
  const m = SIZE.exec(text.trim());
  if (!m) throw new UsageError(`${what} '${text}' is not a size (e.g. 262144, 512K, 4M)`);
  const unit = (m[2] ?? '').toLowerCase().charAt(0);
  const bytes =
    Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : unit === 'g' ? 1024 ** 3 : 1);
  if (bytes < 1 || bytes > 1024 * 1024 * 1024)
    throw new UsageError(`${what} '${text}' is out of range (1 byte to 1G)`);
  return bytes;
}

/**
 * Parses a rate in datagrams per second: `5000`, `50k`, `1.5M`.
 *
 * @throws {UsageError} on anything else, or a rate of 0
 */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`rate '${text}' is not a number of datagrams per second (e.g. 1000, 50k, 1M)`);
  const rate = Number(m[1]) * (m[2] === '' ? 1 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1e6);
  if (!(rate >= 1)) throw new UsageError(`rate '${text}' must be at least 1 datagram per second`);
  return rate;
}

/** The `--stats` interval when `--stats-interval` does not give one. */
export const DEFAULT_STATS_INTERVAL_MS = 1000;

/**
 * `--stats` and `--stats-interval <duration>`: undefined when neither is given, else the
 * interval in milliseconds, 1000 unless `--stats-interval` says otherwise (it implies `--stats`).
 *
 * @throws {UsageError} on a bad duration
 */
export function parseStatsFlags(flags: { stats?: boolean; statsInterval?: string }): number | undefined {
  if (flags.statsInterval !== undefined) return parseDuration(flags.statsInterval, 'stats interval');
  return flags.stats ? DEFAULT_STATS_INTERVAL_MS : undefined;
}

/**
 * The --allow and --deny rules, in the order given, as an access list; undefined for none.
 *
 * @throws {UsageError} naming the option and the block that does not parse
 */
export function parseAccessRules(rules: readonly AccessRule[] | undefined): AccessList | undefined {
  if (rules === undefined || rules.length === 0) return undefined;
  for (const { action, cidr } of rules) {
    if (cidr !== 'all') usage(() => parseCidr(cidr), `--${action}`);
  }
  return new AccessList(rules);
}
