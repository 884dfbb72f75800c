/**
 * A bench server worker of `bench server --workers`: one server on a socket of the
 * SO_REUSEPORT group; its event lines go to the main thread, which alone writes stdout.
 */
import { parentPort } from 'node:worker_threads';
import { startBenchServer } from '../../lib/bench/server.js';
import { ipFamily } from '../../lib/index.js';
import { serverEventLine } from '../commands/bench.js';
import { refuseTakenPort } from '../receiver.js';
import { linkToMain } from './link.js';
import type { BenchWorkerData } from './protocol.js';

/** True when this thread was started as a bench server worker. */
export function isBenchWorker(data: unknown): data is BenchWorkerData {
  return typeof data === 'object' && data !== null && (data as BenchWorkerData).udpkit === 'bench-server';
}

/** Serves until the main thread says stop. */
export async function runBenchWorker(data: BenchWorkerData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const link = linkToMain(port);
  const { post } = link;
  // A turn's lines go as one message.
  let lines = '';
  const flush = () => {
    if (lines === '') return;
    post({ type: 'lines', text: lines });
    lines = '';
  };
  const given = await link.ready();
  if (given === undefined) {
    link.done({});
    return;
  }
  let server: Awaited<ReturnType<typeof startBenchServer>>;
  try {
    if (data.index === 0)
      await refuseTakenPort(data.host, given, ipFamily(data.host) === 'IPv6' ? 'udp6' : 'udp4');
    server = await startBenchServer({
      address: data.host,
      port: given,
      reusePort: true,
      onEvent: (e) => {
        const line = serverEventLine(e, data.json);
        if (line === undefined) return;
        if (lines === '') setImmediate(flush);
        lines += `${line}\n`;
      },
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    post({ type: 'failed', name: e.name, code: e.code, message: e.message });
    link.close();
    return;
  }
  const here = server.address();
  post({ type: 'bound', address: here.address, port: here.port, granted: 0, names: [] });
  if (!link.signal.aborted) {
    await new Promise((resolve) => link.signal.addEventListener('abort', resolve, { once: true }));
  }
  await server.close();
  flush();
  link.done({ foreign: server.foreign, garbled: server.garbled });
}
