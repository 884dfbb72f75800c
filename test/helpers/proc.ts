/** What a process under test shows of itself: its memory in /proc, its `key=value` counters. */
import { readFileSync } from 'node:fs';

/**
 * A memory figure of `/proc/PID/status` in bytes: `VmHWM` the peak resident set, `VmRSS` the
 * resident set now. Undefined once the process has exited.
 */
export function memory(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined; // exited
  }
}

/** The peak resident set of a running process, bytes. */
export function peakRss(pid: number): number {
  const peak = memory(pid, 'VmHWM');
  if (peak === undefined) throw new Error(`process ${pid} has exited: no VmHWM`);
  return peak;
}

/** The `key=value` counters of a line (`--stats`, a summary), as numbers. */
export function parseCounters(line: string): Record<string, number> {
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+(?:\.\d+)?)/g)].map((m) => [m[1], Number(m[2])]));
}

/** The last line of `stderr`, as counters: `names` must all be there. */
export function lastCounters<K extends string>(
  stderr: string,
  ...names: K[]
): Record<K, number> & Record<string, number> {
  const line = stderr.trimEnd().split('\n').at(-1) as string;
  const all = parseCounters(line);
  for (const name of names) if (all[name] === undefined) throw new Error(`no ${name}= in ${line}`);
  return all as Record<K, number> & Record<string, number>;
}
