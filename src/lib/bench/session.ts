/**
 * What both ends of a bench run agree on: the parameters the client sends in its hello, and
 * how each end tells whether the other shares its clock (the same host).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export const PROTOCOL_VERSION = 1;

/** A run's parameters, as the client's hello carries them. */
export interface BenchParams {
  mode: 'throughput' | 'pingpong';
  /** Bytes per datagram. */
  size: number;
  /** Datagrams per second; 0: as fast as possible (throughput) or one in flight (pingpong). */
  rate: number;
  count?: number | undefined;
  durationMs?: number | undefined;
  intervalMs: number;
  omitMs: number;
  /** The server sends, the client receives. */
  reverse: boolean;
  /** How long the receiver waits after the sender's last datagram before counting losses. */
  graceMs: number;
}

/**
 * This host, as far as its clock goes: the kernel's boot id (one per boot) with the host
 * name. Two ends that give the same share a clock, so one-way delays are absolute.
 */
export function clockId(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()}/${boot}`;
}
