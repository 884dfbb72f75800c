/**
 * A bench server worker of `bench server --workers`: one server on a socket of the
 * SO_REUSEPORT group; its event lines go to the main thread, which alone writes stdout.
 */
import { parentPort } from 'node:worker_threads';
import { startBenchServer } from '../../lib/bench/server.js';
import { serverEventLine } from '../commands/bench.js';
import { type BenchWorkerData, bindOrStop, type MainMessage, type WorkerMessage } from './protocol.js';

/** True when this thread was started as a bench server worker. */
export function isBenchWorker(data: unknown): data is BenchWorkerData {
  return typeof data === 'object' && data !== null && (data as BenchWorkerData).udpkit === 'bench-server';
}

/** Serves until the main thread says stop. */
export async function runBenchWorker(data: BenchWorkerData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const post = (message: WorkerMessage) => port.postMessage(message);
  const stop = new AbortController();
  let bindTo: ((port: number) => void) | undefined;
  const bindPort = new Promise<number>((resolve) => {
    bindTo = resolve;
  });
  port.on('message', (m: MainMessage) => {
    if (m.type === 'bind') bindTo?.(m.port);
    else if (m.type === 'stop') stop.abort();
  });
  // A turn's lines go as one message.
  let lines = '';
  const flush = () => {
    if (lines === '') return;
    post({ type: 'lines', text: lines });
    lines = '';
  };
  post({ type: 'ready' });
  const given = await bindOrStop(bindPort, stop.signal);
  if (given === undefined) {
    post({ type: 'done', counters: {} });
    port.close();
    return;
  }
  let server: Awaited<ReturnType<typeof startBenchServer>>;
  try {
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
    port.close();
    return;
  }
  const here = server.address();
  post({ type: 'bound', address: here.address, port: here.port, granted: 0, names: [] });
  if (!stop.signal.aborted) {
    await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
  }
  await server.close();
  flush();
  post({ type: 'done', counters: { foreign: server.foreign, garbled: server.garbled } });
  port.close();
}
