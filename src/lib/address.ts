/**
 * Addresses and ports: parsing `host:port`, `[v6]:port`, bare ports and host names, formatting
 * them back, and resolving host names. Everything here but {@link resolveHost} is pure.
 */
import { isIP } from 'node:net';
import { raceAbort, throwIfAborted } from './abort.js';
import { AbortError, fromSystemError, InvalidArgumentError, ResolveError } from './errors.js';

/** An IP address family, spelled as `node:dgram` spells it in `rinfo.family`. */
export type IpFamily = 'IPv4' | 'IPv6';

/** An address and port as a socket sees them. */
export interface Endpoint {
  address: string;
  port: number;
  family: IpFamily;
}

/** The parts of a `host:port` text; either may be absent. */
export interface HostPort {
  host?: string;
  port?: number;
}

/** The largest UDP payload in bytes: 65535 minus the IPv4 and UDP headers (20 + 8). */
export const MAX_PAYLOAD_IPV4 = 65507;
/** The largest UDP payload in bytes over IPv6: 65535 minus the UDP header (8). */
export const MAX_PAYLOAD_IPV6 = 65527;

/** The largest UDP payload in bytes for `family`. */
export function maxPayload(family: IpFamily): number {
  return family === 'IPv6' ? MAX_PAYLOAD_IPV6 : MAX_PAYLOAD_IPV4;
}

const DIGITS = /^[0-9]+$/;
// RFC 1123 host names, plus '_' which real zones contain; labels of 1-63 characters.
const HOSTNAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** True when `text` is a decimal port number in 0-65535. */
export function isPortNumber(text: string): boolean {
  return DIGITS.test(text) && text.length <= 5 && Number(text) <= 65535;
}

/** The family of an IP literal, or `undefined` when `text` is not one. */
export function ipFamily(text: string): IpFamily | undefined {
  const v = isIP(text);
  return v === 4 ? 'IPv4' : v === 6 ? 'IPv6' : undefined;
}

/** The 16 bytes of an IPv6 literal (a zone is ignored; an IPv4 tail is allowed). */
export function ipv6Bytes(address: string): number[] {
  let text = address.split('%')[0] as string;
  const tail: number[] = [];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    tail.push(...v4.slice(1).map(Number));
    text = `${text.slice(0, v4.index)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const bytes = words.flatMap((w) => [(w >> 8) & 255, w & 255]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** True when `text` is an IPv4 or IPv6 literal or a syntactically valid host name. */
export function isHostLike(text: string): boolean {
  return ipFamily(text) !== undefined || HOSTNAME.test(text);
}

/**
 * Parses a port number.
 *
 * @param value the port as text or number
 * @param what names the value in error messages, e.g. `port` or `destination port`
 * @param min 1 where port 0 (any) makes no sense, as a destination
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` when it is not an integer in min-65535
 */
export function parsePort(value: string | number, what = 'port', min: 0 | 1 = 0): number {
  const range = `${min}-65535`;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= min && value <= 65535) return value;
    throw new InvalidArgumentError(`${what} ${value} is out of range (${range})`);
  }
  const text = value.trim();
  if (!DIGITS.test(text)) {
    throw new InvalidArgumentError(`${what} '${value}' is not a number (${range})`);
  }
  const port = Number(text);
  if (port > 65535 || port < min)
    throw new InvalidArgumentError(`${what} ${text} is out of range (${range})`);
  return port;
}

/**
 * Parses an endpoint as people write it: `host:port`, `[v6]:port`, `[v6]`, `:port`, a bare
 * port (`9000`), a bare IPv6 literal (`::1`) or a bare host name. Absent parts stay absent.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a malformed text or a bad port
 */
export function parseHostPort(text: string): HostPort {
  if (text === '') throw new InvalidArgumentError('empty address');
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new InvalidArgumentError(`'${text}' has '[' without ']'`);
    const host = text.slice(1, close);
    if (ipFamily(host) !== 'IPv6') {
      throw new InvalidArgumentError(`'${host}' in '${text}' is not an IPv6 address`);
    }
    const rest = text.slice(close + 1);
    if (rest === '') return { host };
    if (!rest.startsWith(':')) throw new InvalidArgumentError(`unexpected '${rest}' after ']' in '${text}'`);
    return { host, port: parsePort(rest.slice(1)) };
  }
  if (DIGITS.test(text)) return { port: parsePort(text) };
  if (ipFamily(text) === 'IPv6') return { host: text };
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { host: checkHost(text, text) };
  if (text.indexOf(':') !== colon) {
    throw new InvalidArgumentError(`'${text}' is not a valid address; write IPv6 with a port as [addr]:port`);
  }
  const host = text.slice(0, colon);
  const port = parsePort(text.slice(colon + 1));
  return host === '' ? { port } : { host: checkHost(host, text), port };
}

function checkHost(host: string, text: string): string {
  if (!isHostLike(host)) throw new InvalidArgumentError(`'${host}' in '${text}' is not a valid host name`);
  return host;
}

/**
 * True when `text` is a whole `host:port` or `[v6]:port`: a host and a valid port together.
 * Pure; no name is resolved.
 */
export function isHostPort(text: string): boolean {
  try {
    const parsed = parseHostPort(text);
    return parsed.host !== undefined && parsed.port !== undefined;
  } catch {
    return false;
  }
}

/** Formats an address and port: `1.2.3.4:5`, `[::1]:5`. */
export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One address a {@link LookupFunction} found, as `dns.lookup` gives it with `all: true`. */
export interface LookupAddress {
  address: string;
  /** 4 or 6. */
  family: number;
}

/** What {@link resolveHost} asks a {@link LookupFunction} for. */
export interface LookupOptions {
  /** 4 or 6 for that family only, 0 for both. */
  family: 0 | 4 | 6;
  /** Always true: every address is wanted, so that {@link resolveHost} can choose among them. */
  all: true;
}

/**
 * Answer of a {@link LookupFunction}: an error, or the addresses found. A lookup that ignores
 * `all` may answer one address and its family instead, as `dns.lookup` does without `all`.
 */
export type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  addresses: LookupAddress[] | string,
  family?: number,
) => void;

/**
 * Resolves host names in place of the system resolver, with the signature of `dns.lookup`
 * (as the `lookup` option of `dgram.createSocket`), so `dns.lookup` itself can be passed.
 * Errors should carry a `code` as `dns.lookup`'s do (`ENOTFOUND`, `EAI_AGAIN`, ...).
 */
export type LookupFunction = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

/** Options of {@link resolveHost}. */
export interface ResolveOptions {
  /** Only addresses of this family; by default IPv4 is preferred, then IPv6. */
  family?: IpFamily | undefined;
  signal?: AbortSignal | undefined;
  /** Resolves host names instead of `dns.lookup`; IP literals never reach it. */
  lookup?: LookupFunction | undefined;
}

/**
 * Resolves a host name or IP literal to one address. IPv4 comes first unless `family` says
 * otherwise, so `localhost` reaches a server bound to `0.0.0.0` as people expect. Names go to
 * `options.lookup` when given, else to `dns.lookup`.
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` when a literal is of the other family
 * @throws {ResolveError} `UDP_ERR_RESOLVE` when the name does not resolve, or the lookup
 *   answers something that is not an IP address
 * @throws {AbortError} `UDP_ERR_ABORTED` when `signal` fires first
 * @throws {SocketError} `UDP_ERR_SOCKET` when the lookup fails in another way
 */
export async function resolveHost(
  host: string,
  options: ResolveOptions = {},
): Promise<{ address: string; family: IpFamily }> {
  const { family, signal } = options;
  throwIfAborted(signal);
  const literal = ipFamily(host);
  if (literal !== undefined) {
    if (family !== undefined && literal !== family) {
      throw new InvalidArgumentError(`'${host}' is an ${literal} address, but ${family} was asked for`);
    }
    return { address: host, family: literal };
  }
  let found: LookupAddress[];
  try {
    // Loaded on first use: most runs name IP literals and never need the resolver.
    const lookup = options.lookup ?? (await import('node:dns')).lookup;
    const lookups = lookupAll(lookup, host, family === 'IPv6' ? 6 : family ? 4 : 0);
    found = signal ? await raceAbort(lookups, signal) : await lookups;
  } catch (err) {
    if (err instanceof AbortError) throw err;
    throw fromSystemError(err, 'resolve', { address: host });
  }
  let chosen: { address: string; family: IpFamily } | undefined;
  for (const entry of found) {
    const entryFamily = ipFamily(entry.address);
    if (entryFamily === undefined) {
      throw new ResolveError(
        `cannot resolve host '${host}': the lookup answered '${entry.address}', which is not an IP address`,
        host,
        { address: host },
      );
    }
    // A lookup may ignore `family`, so it is applied here too.
    if (family !== undefined && entryFamily !== family) continue;
    if (chosen === undefined || (chosen.family === 'IPv6' && entryFamily === 'IPv4')) {
      chosen = { address: entry.address, family: entryFamily };
    }
  }
  if (chosen === undefined)
    throw fromSystemError(
      Object.assign(new Error('no address'), { code: 'ENOTFOUND', hostname: host }),
      'resolve',
    );
  return chosen;
}

/** Calls a callback-style lookup for every address of `host`, whatever shape it answers in. */
function lookupAll(lookup: LookupFunction, host: string, family: 0 | 4 | 6): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    // A lookup that throws instead of calling back rejects the promise, as the executor catches.
    lookup(host, { family, all: true }, (err, addresses, addressFamily) => {
      if (err) reject(err);
      else if (Array.isArray(addresses)) resolve(addresses);
      else if (typeof addresses === 'string') resolve([{ address: addresses, family: addressFamily ?? 0 }]);
      else resolve([]);
    });
  });
}
