/**
 * A receive worker of `--workers`: one socket of the SO_REUSEPORT group, listen's loop on it,
 * its output posted to the main thread in whole records, its counters in shared memory.
 */
import { parentPort } from 'node:worker_threads';
import { AccessList, createByteFormatter, type Datagram, type UdpSocket } from '../../lib/index.js';
import { type EchoOptions, echoHooks } from '../commands/echo.js';
import type { ListenOptions } from '../commands/listen.js';
import type { CliIO } from '../io.js';
import {
  openReceiver,
  type ReceiverHooks,
  receiveLoop,
  receiverNeedsMetadata,
  SocketReadings,
  socketCounters,
  warmUp,
} from '../receiver.js';
import type { Counters } from '../stats.js';
import { RingChannel } from './channel.js';
import { linkToMain } from './link.js';
import { COUNTER_SLOTS, toSlot, type WorkerData } from './protocol.js';

/** True when this thread was started as a receive worker. */
export function isReceiverWorker(data: unknown): data is WorkerData {
  return typeof data === 'object' && data !== null && (data as WorkerData).udpkit === 'receiver';
}

/** The same hooks the main thread's verb made, from their plain options. */
function hooksFor(data: WorkerData, io: CliIO): ReceiverHooks {
  if (data.verb === 'echo') return echoHooks(data.spec as EchoOptions, io, data.workers);
  return { verb: data.verb };
}

/** Runs one worker until the main thread says stop (or --count is reached, or it fails). */
export async function runReceiverWorker(data: WorkerData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  let channel: RingChannel | undefined;
  let socket: UdpSocket | undefined;
  const link = linkToMain(port, (m) => {
    if (m.type === 'pause') channel?.pause();
    else if (m.type === 'resume') channel?.resume();
    else if (m.type === 'release') channel?.release(m.count);
    else if (m.type === 'steer') socket?.steerByCpu(data.workers);
  });
  const { post } = link;
  const io: CliIO = {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    signal: link.signal,
    argv: [],
  };
  const opts: ListenOptions = {
    ...data.opts,
    access: data.rules === undefined ? undefined : new AccessList(data.rules),
  };
  const hooks = hooksFor(data, io);
  const out = new RingChannel(data.ring, post);
  channel = out;
  const format = createByteFormatter(opts.format, { timestamps: opts.timestamps, destination: opts.showDst });
  if (!opts.receiveThread) await warmUp(format, receiverNeedsMetadata(opts, hooks), link.signal, false);
  const given = await link.ready();
  try {
    if (given !== undefined) {
      socket = await openReceiver(opts, hooks, link.signal, {
        reusePort: true,
        port: given,
        first: data.index === 0,
      });
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    post({ type: 'failed', name: e.name, code: e.code, message: e.message });
    link.close();
    return;
  }
  if (socket === undefined) {
    link.done({});
    return;
  }
  const bound = socket;
  const readings = new SocketReadings(bound);
  const slots = new Float64Array(data.counters, data.index * COUNTER_SLOTS * 8, COUNTER_SLOTS);
  const claims = data.claims === undefined ? undefined : new Int32Array(data.claims);
  const count = opts.count ?? 0;
  let past = 0;
  const counters = (): Counters => ({
    ...socketCounters(bound, readings, opts, hooks),
    ...(claims !== undefined && { past_count: past }),
  });
  const names = Object.keys(counters()).slice(0, COUNTER_SLOTS);
  const store = () => {
    const c = counters();
    for (const [i, name] of names.entries()) slots[i] = toSlot(c[name]);
  };
  store();
  const local = bound.address();
  post({ type: 'bound', address: local.address, port: local.port, granted: bound.recvBufferSize, names });
  hooks.onStart?.(bound);
  // Often enough for --stats and --idle-timeout; `received` and `bytes` (slots 0 and 1) are
  // kept at each datagram.
  const ticker = setInterval(store, 50);
  const admit = (_msg: Datagram): boolean => {
    slots[0] = bound.packetsReceived;
    slots[1] = bound.bytesReceived;
    if (claims === undefined) return true;
    // One ticket per datagram, shared by all workers: exactly --count of them are taken.
    const ticket = Atomics.add(claims, 0, 1);
    if (ticket >= count) {
      past++;
      return false;
    }
    if (ticket === count - 1) post({ type: 'count' });
    return true;
  };
  try {
    await receiveLoop(bound, out, format, hooks, readings, {
      signal: link.signal,
      limit: opts.count,
      admit,
    });
  } catch (err) {
    // Stopped by something other than the main thread (the socket failed): said as one line.
    const e = err as Error & { code?: string };
    post({ type: 'failed', name: e.name, code: e.code, message: e.message });
  } finally {
    clearInterval(ticker);
    out.flush();
    store();
    link.done(counters());
  }
}
