/**
 * Network interfaces by name or by one of their addresses, as `--interface` takes them: what
 * multicast membership and sending need (a name for the addon, an address for node:dgram).
 */
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { IpFamily } from './address.js';
import { InvalidArgumentError } from './errors.js';

/** An interface as the transports need it. */
export interface InterfaceRef {
  name: string;
  /** Its first address of the family asked for, if it has one. */
  address: string | undefined;
}

/**
 * Finds an interface by name (`eth0`) or by one of its addresses (`10.0.0.5`, `fe80::1`).
 *
 * @throws {InvalidArgumentError} `UDP_ERR_INVALID_ARG` naming the interfaces there are
 */
export function resolveInterface(nameOrAddress: string, family: IpFamily): InterfaceRef {
  const all = networkInterfaces();
  const pick = (name: string): InterfaceRef => ({
    name,
    address: all[name]?.find((a) => a.family === family)?.address,
  });
  if (all[nameOrAddress]) return pick(nameOrAddress);
  // An interface that is not running (no carrier yet) has no entry, but can still be joined on.
  if (/^[\w.:@-]{1,15}$/.test(nameOrAddress) && existsSync(`/sys/class/net/${nameOrAddress}`)) {
    return { name: nameOrAddress, address: undefined };
  }
  const plain = nameOrAddress.split('%')[0];
  for (const [name, addresses] of Object.entries(all)) {
    if (addresses?.some((a) => a.address === plain)) return pick(name);
  }
  throw new InvalidArgumentError(
    `no interface is named or has the address '${nameOrAddress}' (there are: ${Object.keys(all).join(', ')})`,
  );
}

/** True when `address` is a multicast group of `family` (224.0.0.0/4, ff00::/8). */
export function isMulticast(address: string, family: IpFamily): boolean {
  if (family === 'IPv4') {
    const first = Number(address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return /^ff[0-9a-f]{2}:/i.test(address);
}
