/** Loopback peers built on the library, for the CLI tests. */
import { execFileSync } from 'node:child_process';
import { onTestFinished } from 'vitest';
import { type Datagram, openUdpSocket, type UdpSocket } from '../../src/lib/index.js';

/** A socket bound to port 0 on `address`, closed when the test ends. */
export async function bound(address = '127.0.0.1'): Promise<UdpSocket> {
  const socket = await openUdpSocket({ address, port: 0 });
  onTestFinished(() => socket.close());
  return socket;
}

/** Sends each payload, in order, from a fresh socket; returns the socket's port. */
export async function sendFrom(
  port: number,
  payloads: (string | Uint8Array)[],
  host = '127.0.0.1',
): Promise<number> {
  const socket = await bound(host.includes(':') ? '::1' : '127.0.0.1');
  for (const p of payloads) await socket.send(p, port, host);
  return socket.address().port;
}

/** Receives `n` datagrams, or rejects after `ms` with what arrived. */
export async function receiveN(socket: UdpSocket, n: number, ms = 5000): Promise<Datagram[]> {
  const got: Datagram[] = [];
  const deadline = Date.now() + ms;
  while (got.length < n) {
    const left = deadline - Date.now();
    try {
      got.push(await socket.receive({ timeout: Math.max(left, 0) }));
    } catch (err) {
      throw new Error(
        `received ${got.length} of ${n}: ${JSON.stringify(got.map((g) => g.data.toString()))}`,
        { cause: err },
      );
    }
  }
  return got;
}

/** True when `command` is on PATH. */
export function have(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a test that needs `command` runs: always in CI (where a missing tool must fail the
 * run, not skip it), elsewhere only when the command is installed.
 */
export function needs(command: string): boolean {
  return Boolean(process.env.CI) || have(command);
}
