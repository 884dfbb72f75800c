/**
 * What the kernel knows about a socket that Node does not say: on Linux, the datagrams it
 * dropped because the socket's receive buffer was full. With the addon, one getsockopt
 * (SO_MEMINFO) per call; without it, the `drops` column of /proc/net/udp.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { ipv6Bytes } from './address.js';
import { nativeAddon } from './native.js';

/** The inode of the socket behind file descriptor `fd` of this process, or undefined. */
function socketInode(fd: number): string | undefined {
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Datagrams the kernel dropped for the UDP socket on descriptor `fd`, or `undefined` where
 * the system does not say (not Linux, or no such socket). With the addon, one system call
 * (SO_MEMINFO): cheap enough to ask per batch, for any number of sockets.
 */
export function socketDrops(fd: number): number | undefined {
  return nativeAddon?.drops(fd) ?? procDrops(fd);
}

/** socketDrops from /proc/net/udp{,6}, found by the socket's inode: two small files read. */
export function procDrops(fd: number): number | undefined {
  const inode = socketInode(fd);
  if (inode === undefined) return undefined;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
      if (f[9] === inode && f[12] !== undefined) return Number(f[12]);
    }
  }
  return undefined;
}

/** How /proc/net/udp{,6} writes a local address and port: 32-bit words in host (little-endian) order. */
export function procEndpoint(address: string, port: number): string {
  const bytes = address.includes(':') ? ipv6Bytes(address) : address.split('.').map(Number);
  let hex = '';
  for (let w = 0; w < bytes.length; w += 4) {
    for (let b = 3; b >= 0; b--) hex += (bytes[w + b] as number).toString(16).padStart(2, '0');
  }
  return `${hex.toUpperCase()}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Datagrams the kernel dropped for the UDP socket bound to `address:port`, found by its local
 * address in /proc/net/udp (for sockets whose descriptor Node does not show). `undefined` where
 * /proc does not say.
 */
export function socketDropsAt(address: string, port: number): number | undefined {
  const local = procEndpoint(address, port);
  const table = address.includes(':') ? '/proc/net/udp6' : '/proc/net/udp';
  let text: string;
  try {
    text = readFileSync(table, 'latin1');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[12] !== undefined) return Number(f[12]);
  }
  return undefined;
}
