/**
 * Access control by source address: an ordered list of allow and deny rules over CIDR blocks,
 * IPv4 and IPv6, first match wins. Matching is Node's own `net.BlockList` (one per rule, so
 * that order counts), which also matches IPv4-mapped IPv6 senders (`::ffff:10.0.0.1`, as a
 * dual-stack socket reports them) against IPv4 rules; verdicts are cached per address, so a
 * flood from one sender costs a map lookup per datagram.
 */
import { BlockList, SocketAddress } from 'node:net';
import { type IpFamily, ipFamily, ipv6Bytes } from './address.js';
import { InvalidArgumentError } from './errors.js';

/** What a rule does with the senders it matches. */
export type AccessAction = 'allow' | 'deny';

/** One rule: `cidr` is `10.0.0.0/8`, `fe80::/10`, a single address, or `all`. */
export interface AccessRule {
  action: AccessAction;
  cidr: string;
}

/** A parsed CIDR block. */
export interface Cidr {
  /** The network address, as given. */
  address: string;
  prefix: number;
  family: IpFamily;
}

/**
 * Parses `a.b.c.d/n`, `v6/n`, or a single address (a /32 or /128).
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` naming what is wrong, including host
 *   bits set past the prefix (`10.1.2.3/8`: did you mean `10.0.0.0/8`?)
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = ipFamily(address);
  if (family === undefined) {
    throw new InvalidArgumentError(
      `'${text}' is not an address block: give an IPv4 or IPv6 address, optionally with /prefix (10.0.0.0/8, fe80::/10), or 'all'`,
    );
  }
  const max = family === 'IPv4' ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) {
      throw new InvalidArgumentError(`'${text}': the prefix length must be 0-${max} for ${family}`);
    }
    prefix = Number(p);
  }
  const bytes = family === 'IPv4' ? address.split('.').map(Number) : ipv6Bytes(address);
  const network = bytes.map((b, i) => b & ((0xff << (8 - Math.max(0, Math.min(8, prefix - i * 8)))) & 0xff));
  if (network.some((b, i) => b !== bytes[i])) {
    throw new InvalidArgumentError(
      `'${text}' has bits set past its /${prefix} prefix: did you mean ${formatBytes(network, family)}/${prefix}?`,
    );
  }
  return { address, prefix, family };
}

/** The most distinct sender addresses whose verdict is remembered. */
const CACHE_LIMIT = 4096;

/**
 * An ordered list of rules. The first rule that matches a sender decides. A sender no rule
 * matches is denied when the list has any allow rule (`--allow 10.0.0.0/8` alone means only
 * that block), and allowed otherwise (`--deny 192.0.2.7` alone shuts out just that sender).
 */
export class AccessList {
  readonly rules: readonly AccessRule[];
  /** What happens to a sender no rule matches. */
  readonly otherwise: AccessAction;
  #matchers: { action: AccessAction; list: BlockList | undefined }[];
  #cache = new Map<string, boolean>();

  /** @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` on a rule that does not parse */
  constructor(rules: readonly AccessRule[]) {
    this.rules = rules.map((r) => ({ action: r.action, cidr: r.cidr }));
    this.#matchers = rules.map(({ action, cidr }) => {
      if (action !== 'allow' && action !== 'deny') {
        throw new InvalidArgumentError(`rule action '${String(action)}' is not allow or deny`);
      }
      if (cidr === 'all') return { action, list: undefined };
      const { address, prefix, family } = parseCidr(cidr);
      const list = new BlockList();
      list.addSubnet(address, prefix, family === 'IPv4' ? 'ipv4' : 'ipv6');
      return { action, list };
    });
    this.otherwise = rules.some((r) => r.action === 'allow') ? 'deny' : 'allow';
  }

  /** True when a datagram from `address` may pass. */
  allows(address: string): boolean {
    let verdict = this.#cache.get(address);
    if (verdict === undefined) {
      verdict = this.#decide(address);
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(address, verdict);
    }
    return verdict;
  }

  #decide(address: string): boolean {
    const family = ipFamily(address.split('%')[0] as string);
    if (family === undefined) return this.otherwise === 'allow';
    const type = family === 'IPv4' ? 'ipv4' : 'ipv6';
    for (const { action, list } of this.#matchers) {
      if (list === undefined || list.check(address, type)) return action === 'allow';
    }
    return this.otherwise === 'allow';
  }
}

/** An address from its bytes, as Node writes it (`2001:db8::`, RFC 5952). */
function formatBytes(bytes: number[], family: IpFamily): string {
  if (family === 'IPv4') return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2)
    words.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return new SocketAddress({ address: words.join(':'), family: 'ipv6' }).address;
}
