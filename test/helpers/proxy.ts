/** The two ends a proxy test needs: a target that answers, and the built CLI's proxy before it. */
import { onTestFinished, type TestContext } from 'vitest';
import { type Datagram, openUdpSocket, type UdpSocket } from '../../src/lib/index.js';
import { type Running, type StartOptions, startCli } from './cli.js';

/**
 * A socket on 127.0.0.1 that sends every datagram back where it came from (after `seen`, if
 * given), closed when the test ends (its own test's end: pass `context` in a concurrent test).
 */
export async function echoServer(
  options: { recvBufferSize?: number; seen?: (m: Datagram) => void; context?: TestContext } = {},
): Promise<UdpSocket> {
  const server = await openUdpSocket({
    address: '127.0.0.1',
    port: 0,
    ...(options.recvBufferSize !== undefined && { recvBufferSize: options.recvBufferSize }),
  });
  (options.context?.onTestFinished ?? onTestFinished)(() => server.close());
  server.consume((m) => {
    options.seen?.(m);
    void server.send(m.data, m.from.port, m.from.address).catch(() => {});
  });
  return server;
}

/** `udpkit proxy` from 127.0.0.1, a free port, to `target` on 127.0.0.1; resolves once it relays. */
export async function startProxy(
  target: number,
  args: string[],
  options: StartOptions = {},
): Promise<{ running: Running; port: number; seed: number }> {
  const running = startCli(
    ['proxy', '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${target}`, ...args],
    options,
  );
  const m = await running.waitFor(
    'stderr',
    /Proxying 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:\d+ \(seed (\d+)\)\n/,
    15_000,
  );
  return { running, port: Number(m[1]), seed: Number(m[2]) };
}
