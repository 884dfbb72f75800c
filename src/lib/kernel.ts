/**
 * What the kernel knows about a socket that Node does not say: on Linux, the datagrams it
 * dropped because the socket's receive buffer was full (the `drops` column of /proc/net/udp).
 */
import { readFileSync, readlinkSync } from 'node:fs';

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
 * /proc does not say (not Linux, or no such socket). Reads two small files: not for hot paths.
 */
export function socketDrops(fd: number): number | undefined {
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
