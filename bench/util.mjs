// Helpers the benchmark scripts share.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * The node options of the CLI's `#!` line (`#!/usr/bin/env -S node --max-semi-space-size=2`):
 * the benchmarks run `node OPTIONS cli`, as `udpkit` runs.
 */
export function cliNodeFlags(cli) {
  const first = readFileSync(cli, 'utf8').slice(0, 200).split('\n')[0];
  return /^#!\S*env -S node( .*)?$/.exec(first)?.[1]?.trim().split(/\s+/) ?? [];
}

/** Whether a command is on PATH. */
export function have(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Whether something is bound to a port, on any address, in /proc/net/TABLE or TABLE6. */
function bound(port, table) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return [table, `${table}6`].some((t) => {
    try {
      return readFileSync(`/proc/net/${t}`, 'utf8')
        .split('\n')
        .some((line) => line.trim().split(/\s+/)[1]?.endsWith(hex));
    } catch {
      return false;
    }
  });
}

/** Waits up to 5 s for something to bind `port` (table: udp or tcp). */
export async function waitBound(port, table = 'udp') {
  for (let i = 0; i < 500 && !bound(port, table); i++) await new Promise((r) => setTimeout(r, 10));
  if (!bound(port, table)) throw new Error(`nothing bound to ${port}`);
}
